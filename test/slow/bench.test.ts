/**
 * `npm run bench` keeps working: its quick mode (tiny sizes, one run each) prints every row of the
 * table with a figure, judges every target, exits 0 and leaves no file and no process behind. Its
 * timings are not asserted: speed is the benchmark's business, not a test's.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ROWS } from "../../scripts/bench/table.ts";
import { tempDir } from "../helpers/temp.ts";

const BENCH = fileURLToPath(new URL("../../scripts/bench/main.ts", import.meta.url));
const JUDGED: Array<keyof typeof ROWS> = [
  "eff8",
  "eff32",
  "rssCapped",
  "cpuCapRatio",
  "cpuTool",
  "pacingRatio",
  "pacing429",
  "reusePredictions",
  "reuseRatio",
  "reuseRss",
];

/** Processes whose working directory is inside `dir` (the benchmark runs every child there). */
function processesIn(dir: string): number[] {
  if (process.platform !== "linux") return []; // no /proc to look in
  return readdirSync("/proc").flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      return readlinkSync(`/proc/${entry}/cwd`).startsWith(dir) ? [Number(entry)] : [];
    } catch {
      return []; // gone, or not ours to look at
    }
  });
}

test("npm run bench -- --quick prints the whole table and leaves nothing behind", async (t) => {
  // The benchmark's own temporary folder lands here, so what it leaves is visible.
  const tmp = tempDir(t, "bench");
  const child = spawn(process.execPath, [BENCH, "--quick"], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearTimeout(timer);

  assert.equal(code, 0, stderr);
  assert.match(stdout, /^ml-scheduler benchmark, quick mode .* took \d+ min \d+ s$/m);
  const lines = stdout.split("\n");
  for (const [key, label] of Object.entries(ROWS)) {
    const line = lines.find((l) => l.startsWith(`${label} `));
    assert.ok(line, `row "${label}" is printed`);
    const median = line
      .slice(label.length)
      .trim()
      .split(/\s{2,}/)[0];
    assert.match(median ?? "", /^[\d,.]+( \S+)?$/, `row "${label}" has a figure: ${line}`);
    if (JUDGED.includes(key as keyof typeof ROWS)) {
      assert.match(line, /(met|MISSED) by /, `row "${label}" is judged against its target`);
    }
  }
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  assert.deepEqual(readdirSync(tmp), [], "nothing left in the temporary folder");
  assert.deepEqual(processesIn(tmp), [], "no process left running there");
});
