/**
 * How a start goes: --help and --version skip the heap-bound re-execution; values given with a
 * flag are parsed by their rules whatever else the line asks for.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { run } from "./helpers/exec.ts";

const HEAP_PROBE = fileURLToPath(new URL("./fixtures/heap-probe.mjs", import.meta.url));

test("a flag's value is checked by its rule, written as --flag=value too, even beside --help", async () => {
  const res = await run(["--retries=abc", "--help"]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /^ml-scheduler: option '--retries <n>' argument 'abc' is invalid\./m);
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
