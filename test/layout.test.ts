/**
 * src/ grows in role folders whose imports only run downward:
 * cli -> notify -> config -> output -> host -> core -> services -> errors.ts / defaults.ts
 * (index.ts is the public API and imports nothing from cli/), and no file reaches itself again
 * through its imports, type-only ones included.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
const FLOORS = ["ground", "services", "core", "host", "output", "config", "notify", "cli"] as const;

function floorOf(file: string): number {
  const [top] = relative(SRC, file).split("/");
  const floor = FLOORS.indexOf(top as (typeof FLOORS)[number]);
  return floor === -1 ? 0 : floor;
}

/** Each file of src/ (by its path under src/) and the files of src/ it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const name of readdirSync(SRC, { recursive: true, encoding: "utf8" })) {
    if (!name.endsWith(".ts")) continue;
    const file = join(SRC, name);
    const text = readFileSync(file, "utf8");
    const targets = [...text.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)].map(([, spec]) =>
      relative(SRC, resolve(dirname(file), spec as string)),
    );
    graph.set(name, targets);
  }
  return graph;
}

test("imports in src/ only run downward: cli -> notify -> config -> output -> host -> core -> services -> errors/defaults", () => {
  const graph = importGraph();
  assert.ok(graph.size > 10);
  const upward: string[] = [];
  for (const [file, targets] of graph) {
    for (const target of file === "index.ts" ? [] : targets) {
      if (target === "index.ts" || floorOf(join(SRC, target)) > floorOf(join(SRC, file))) {
        upward.push(`${file} -> ${target}`);
      }
    }
  }
  assert.deepEqual(upward, []);
  const fromIndex = (graph.get("index.ts") ?? []).filter((t) => t.startsWith("cli/"));
  assert.deepEqual(fromIndex, [], "the library imports nothing from cli/");
});

test("no file of src/ imports itself again through others, type-only imports included", () => {
  const graph = importGraph();
  const cycles: string[] = [];
  const done = new Set<string>();
  const visit = (file: string, path: string[]) => {
    if (path.includes(file)) {
      cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    if (done.has(file)) return;
    for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});
