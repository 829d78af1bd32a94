/**
 * What a start costs: --help and --version load commander and our own few modules, not zod, got
 * or the rest, and skip the heap-bound re-execution; values given with a flag are still parsed; a
 * sweep loads neither Node's bundled undici nor the notifiers it was not asked for.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";

const PROBE = fileURLToPath(new URL("./fixtures/module-probe.mjs", import.meta.url));
const HEAP_PROBE = fileURLToPath(new URL("./fixtures/heap-probe.mjs", import.meta.url));

/** The modules a run loaded, from the probe's line on stderr. */
function loadedModules(stderr: string): string[] {
  const line = /^module-probe (.*)$/m.exec(stderr)?.[1];
  assert.ok(line, `no probe line in: ${stderr}`);
  return JSON.parse(line) as string[];
}

for (const args of [["--help"], ["--version"], ["check", "--help"]]) {
  test(`${args.join(" ")} loads commander and none of the other packages`, async () => {
    const res = await run(args, { nodeArgs: ["--import", PROBE] });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.length > 0);
    const loaded = loadedModules(res.stderr);
    assert.ok(loaded.includes("commander"), loaded.join(" "));
    const packages = loaded.filter((m) => !/^(node:|file:|src\/|dist\/|bin\/)/.test(m));
    assert.deepEqual(packages, ["commander"]);
    for (const heavy of ["src/config/rules.ts", "src/core/report.ts", "node:crypto", "node:http"])
      assert.ok(!loaded.includes(heavy), `${heavy} is loaded`);
  });
}

test("a flag's value is still checked by its rule, written as --flag=value too", async () => {
  const res = await run(["--retries=abc", "--help"], { nodeArgs: ["--import", PROBE] });
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /^ml-scheduler: option '--retries <n>' argument 'abc' is invalid\./m);
  assert.ok(loadedModules(res.stderr).includes("zod"));
});

test("--help and --version under a heap cap start once: no re-execution to bound the heap", async () => {
  for (const arg of ["--help", "--version"]) {
    const res = await run([arg], {
      env: { NODE_OPTIONS: `--max-old-space-size=128 --import=${HEAP_PROBE}` },
    });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr.match(/^heap-probe .*$/gm)?.length, 1, res.stderr);
  }
});

test("a sweep loads got but neither Node's bundled undici nor the notifiers it was not asked for", async (t) => {
  const { env } = await startServices(t);
  const res = await run(["--json"], { env, nodeArgs: ["--import", PROBE] });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).counts.updated, 4);
  const loaded = loadedModules(res.stderr);
  assert.ok(loaded.includes("got") && loaded.includes("zod"), loaded.join(" "));
  assert.ok(!loaded.includes("undici"), "node:http's ES module loaded undici");
  assert.deepEqual(
    loaded.filter((m) => m.includes("notifiers/")),
    [],
    "no notifier option was set",
  );
});

test("node:http's exports made without undici: the WebSocket getters are back afterwards", () => {
  const module = new URL("../src/cli/http-exports.ts", import.meta.url).href;
  const script = `
    const { importHttpWithoutUndici } = await import(${JSON.stringify(module)});
    await importHttpWithoutUndici();
    const undici = () => process.moduleLoadList.some((m) => m.includes("internal/deps/undici"));
    const esm = await import("node:http");
    const before = undici();
    const kinds = [typeof esm.request, typeof esm.default.WebSocket, typeof process.getBuiltinModule("node:http").CloseEvent];
    console.log(JSON.stringify({ before, kinds, after: undici() }));
  `;
  const res = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(res.status, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout), {
    before: false,
    kinds: ["function", "function", "function"],
    after: true,
  });
});
