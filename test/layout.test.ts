/**
 * src/ grows in role folders whose imports only run downward:
 * cli -> config -> notify -> output -> host -> core -> services -> errors.ts / defaults.ts
 * (index.ts is the public API and imports nothing from cli/).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
const FLOORS = ["ground", "services", "core", "host", "output", "notify", "config", "cli"] as const;

function floorOf(file: string): number {
  const [top] = relative(SRC, file).split("/");
  const floor = FLOORS.indexOf(top as (typeof FLOORS)[number]);
  return floor === -1 ? 0 : floor;
}

test("imports in src/ only run downward: cli -> config -> notify -> output -> host -> core -> services -> errors/defaults", () => {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && f !== "index.ts")
    .map((f) => join(SRC, f));
  assert.ok(files.length > 10);
  const upward: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const [, spec] of text.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = resolve(dirname(file), spec as string);
      if (target === join(SRC, "index.ts") || floorOf(target) > floorOf(file)) {
        upward.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
  }
  assert.deepEqual(upward, []);
});
