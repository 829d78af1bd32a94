/**
 * The production install path: `npm pack`, install the tarball with production dependencies only
 * into an empty folder, and run the installed bin from there (the Dockerfile does the same).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseReport, run } from "../helpers/exec.ts";
import { scratchNpm } from "../helpers/npm.ts";
import { startServices } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("the packed tarball installs without dev dependencies and runs a sweep from dist/", async (t) => {
  const dir = tempDir(t, "pack");
  const npm = scratchNpm(dir);

  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], root));
  const files: string[] = packed[0].files.map((f: { path: string }) => f.path);
  assert.ok(files.includes("dist/cli/main.js"), "dist/ is built by prepack and shipped");
  assert.ok(files.includes("bin/ml-scheduler.js"));
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "sources stay out");

  const app = join(dir, "app");
  execFileSync("mkdir", [app]);
  writeFileSync(join(app, "package.json"), '{"name":"pack-check","private":true}\n');
  npm(
    [
      "install",
      "--omit=dev",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      join(dir, packed[0].filename),
    ],
    app,
  );
  const installed = join(app, "node_modules", "ml-scheduler");
  assert.ok(!existsSync(join(installed, "src")));
  assert.ok(!existsSync(join(app, "node_modules", "typescript")), "no dev dependency installed");
  const bin = join(installed, "bin", "ml-scheduler.js");

  const version = await run(["--version"], { bin, cwd: app });
  assert.equal(version.code, 0, version.stderr);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(version.stdout.trim(), pkg.version);

  const { backend, env } = await startServices(t);
  const sweep = await run(["--json"], { bin, cwd: app, env });
  assert.equal(sweep.code, 0, sweep.stderr);
  assert.equal(parseReport(sweep.stdout).counts.updated, 4);
  assert.equal(backend.writes.length, 4);
});
