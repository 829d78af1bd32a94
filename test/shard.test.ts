/**
 * Sharding (`--shard i/n`, `--shards n` with JOB_COMPLETION_INDEX): the shards of one list
 * together handle every patient once, records without a pid in shard 0 only, and every output
 * (report, JSON logs, metrics, pushes, pings) says which shard it is.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { resolveConfig, runSweep } from "../src/index.ts";
import { lastSuccessIn } from "../src/notify/metrics.ts";
import { configProblems, NO_ENV_FILE, parseArgs, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { startPing } from "./stand-ins/ping.ts";
import { startPushgateway } from "./stand-ins/pushgateway.ts";
import { makePatients } from "./stand-ins/seed.ts";

const VALID = 50;

function record(pid: unknown, status: unknown = { id: 9, text: "Normal" }) {
  const base = { admit_time: "2026-11-01T00:00:00", firstname: "A", lastname: "B" };
  return { pid, ...base, age: null, gender: null, status };
}

/** 50 valid patients, two records without a usable pid and one invalid record with pid 51. */
const LIST = [
  ...Array.from({ length: VALID }, (_, i) => record(i + 1)),
  record(undefined),
  record("7"),
  record(VALID + 1, { id: "9" }),
];

/** The stand-ins, the backend answering LIST for the patient list. */
async function sharded(t: TestContext) {
  const services = await startServices(t, { backend: { patients: makePatients(VALID) } });
  services.backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "body",
    body: JSON.stringify(LIST),
  });
  return services;
}

interface ShardReport {
  shard: { index: number; count: number } | null;
  patients: Array<{ pid: number | null; reason: string | null }>;
}

/** Every valid pid (and pid 51) exactly once over the shards, pid-less records in shard 0 only. */
function assertPartition(reports: ShardReport[]): void {
  const pids = reports.flatMap((r) => r.patients.map((p) => p.pid).filter((p) => p !== null));
  assert.deepEqual(
    pids.toSorted((a, b) => a - b),
    Array.from({ length: VALID + 1 }, (_, i) => i + 1),
  );
  const count = reports.length;
  for (const [index, report] of reports.entries()) {
    assert.deepEqual(report.shard, { index, count });
    for (const p of report.patients) if (p.pid !== null) assert.equal(p.pid % count, index);
    const nulls = report.patients.filter((p) => p.pid === null);
    assert.equal(nulls.length, index === 0 ? 2 : 0, `shard ${index}'s pid-less records`);
    for (const p of nulls) assert.equal(p.reason, "invalid_record");
  }
}

/** One shard's report: exactly the pids of its shard (pid 51 included), and the pid-less in shard 0. */
function assertShard(report: ShardReport, index: number, count: number): void {
  assert.deepEqual(report.shard, { index, count });
  const pids = report.patients.map((p) => p.pid).filter((p) => p !== null);
  assert.deepEqual(
    pids.toSorted((a, b) => a - b),
    Array.from({ length: VALID + 1 }, (_, i) => i + 1).filter((pid) => pid % count === index),
  );
  const nulls = report.patients.filter((p) => p.pid === null);
  assert.equal(nulls.length, index === 0 ? 2 : 0, `shard ${index}'s pid-less records`);
  for (const p of nulls) assert.equal(p.reason, "invalid_record");
}

/** The report of a bin run, whose exit code is 1 when the shard held an invalid record, else 0. */
function exitsByItsReport(res: { code: number | null; stdout: string; stderr: string }) {
  const report = parseReport(res.stdout);
  assert.equal(res.code, report.counts.failed > 0 ? 1 : 0, res.stderr);
  return report;
}

test("runSweep: shards 0..n-1 together handle every patient once; pid-less records in shard 0 only", async (t) => {
  const { env } = await sharded(t);
  const count = 4;
  const reports = [];
  for (let index = 0; index < count; index++) {
    reports.push(await runSweep(sweepConfig(env, { dryRun: true, shard: { index, count } })));
  }
  assertPartition(reports);
  const unsharded = await runSweep(sweepConfig(env, { dryRun: true }));
  assert.equal(unsharded.shard, null);
  assert.equal(unsharded.patients.length, VALID + 3);
});

test("the invalid-record limit is judged on the whole list in every shard", async (t) => {
  const { backend, env } = await startServices(t);
  // Four pid-less records of seven: more than half, though shard 1 would see one valid patient.
  const list = [record(1), record(2), record(3), ...Array.from({ length: 4 }, () => record(null))];
  backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "body",
    body: JSON.stringify(list),
  });
  const report = await runSweep(sweepConfig(env, { dryRun: true, shard: { index: 1, count: 2 } }));
  assert.equal(report.exitCode, 5);
  assert.match(report.error?.message ?? "", /breaks the contract: 4 of its 7 records/);
  assert.deepEqual(report.shard, { index: 1, count: 2 });
});

test("the bin: --shard i/n and --shards n with JOB_COMPLETION_INDEX each partition the list", async (t) => {
  // How each form resolves to the run's shard, in-process (runSweep's partition is tested above).
  const shardOf = (args: string[], env: Record<string, string> = {}) =>
    resolveConfig({
      flags: parseArgs(args).flags,
      env: { ...USABLE_ENV, ...env },
      cwd: NO_ENV_FILE,
    }).shard;
  for (let i = 0; i < 3; i++)
    assert.deepEqual(shardOf(["--shard", `${i}/3`]), { index: i, count: 3 });
  for (let i = 0; i < 2; i++) {
    const env = { JOB_COMPLETION_INDEX: String(i) };
    assert.deepEqual(shardOf(["--shards", "2"], env), { index: i, count: 2 });
  }
  assert.deepEqual(shardOf([], { SHARDS: "2", JOB_COMPLETION_INDEX: "1" }), { index: 1, count: 2 });
  assert.deepEqual(shardOf([], { SHARD: "2/5" }), { index: 2, count: 5 });

  // Through the bin, one run by each flag: the report holds its shard's patients, and only those.
  const { env } = await sharded(t);
  const byFlag = await run(["--json", "--dry-run", "--shard", "0/3"], { env });
  assertShard(exitsByItsReport(byFlag), 0, 3);
  const byIndex = await run(["--json", "--dry-run", "--shards", "2"], {
    env: { ...env, JOB_COMPLETION_INDEX: "1" },
  });
  assertShard(exitsByItsReport(byIndex), 1, 2);
});

test("conflicting or incomplete shard settings: exit 2 for both flags, exit 3 from the environment", async (t) => {
  // The bin once: a shard setting refused by config is exit 3 with its line, and nothing is sent.
  const { backend, env } = await startServices(t);
  const res = await run(["--shards", "3"], { env });
  assert.equal(res.code, 3, res.stderr);
  assert.match(res.stderr, /JOB_COMPLETION_INDEX is not set/);
  assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
  assert.equal(backend.requests.length, 0, "nothing reached the backend");
  // Each case in-process: a usage error (exit 2) from commander, or config's (exit 3).
  const cases: Array<[string[], Record<string, string>, number, RegExp]> = [
    [["--shards", "2", "--shard", "0/2"], {}, 2, /--shard <i\/n>' cannot be used with .*--shards/],
    [["--shard", "0/2"], { SHARDS: "2" }, 3, /--shard and SHARDS \(in the environment\)/],
    [[], { SHARD: "0/2", SHARDS: "2" }, 3, /SHARD \(in the environment\) and SHARDS/],
    [["--shards", "3"], { JOB_COMPLETION_INDEX: "3" }, 3, /JOB_COMPLETION_INDEX must be .* 0 to 2/],
    [["--shards", "3"], { JOB_COMPLETION_INDEX: "-1" }, 3, /JOB_COMPLETION_INDEX must be/],
    [["--shard", "4/4"], {}, 2, /--shard.*must be i\/n with 0 <= i < n/],
    [["--shard", "0/0"], {}, 2, /must be i\/n/],
    [["--shards", "1025"], {}, 2, /--shards.*from 1 to 1024/],
    [[], { SHARD: "1-2" }, 3, /SHARD must be i\/n/],
  ];
  for (const [args, extra, code, pattern] of cases) {
    const what = `${args.join(" ")} ${JSON.stringify(extra)}`;
    const lines =
      code === 2
        ? [usageError(args)]
        : configProblems({ ...USABLE_ENV, ...extra }, parseArgs(args).flags);
    assert.equal(lines.length, 1, `${what}: ${lines.join("\n")}`);
    assert.match(lines[0] as string, pattern, what);
  }
});

test("--shard with --patient handles the intersection; an absent pid is reported by its shard only", async (t) => {
  const { env } = await sharded(t);
  const args = ["--json", "--dry-run", "--patient", "3,4,5,61,62"];
  const one = parseReport((await run([...args, "--shard", "1/2"], { env })).stdout);
  const pids = one.patients.map((p: { pid: number }) => p.pid);
  assert.deepEqual(pids, [3, 5, 61]);
  assert.equal(one.patients[2].reason, "not_found");
  const zero = parseReport((await run([...args, "--shard", "0/2"], { env })).stdout);
  assert.deepEqual(
    zero.patients.map((p: { pid: number }) => p.pid),
    [4, 62],
  );
});

test("--log-format json: every line carries the shard", async (t) => {
  const { env } = await sharded(t);
  const res = await run(["--log-format", "json", "--verbose", "--dry-run", "--shard", "1/3"], {
    env,
  });
  const lines = res.stderr.trim().split("\n");
  assert.ok(lines.length > 3, res.stderr);
  for (const line of lines) assert.deepEqual(JSON.parse(line).shard, { index: 1, count: 3 });
  const plain = await run(["--log-format", "json", "--dry-run"], { env });
  for (const line of plain.stderr.trim().split("\n"))
    assert.equal("shard" in JSON.parse(line), false);
});

test("metrics: a shard label on every sample of the file, /shard/<i> in the push's grouping key", async (t) => {
  const { env } = await sharded(t);
  // Shard 2 of 3 holds neither pid 51 (an invalid record) nor the pid-less ones: exit 0.
  const gateway = await startPushgateway();
  t.after(() => gateway.close());
  const file = join(tempDir(t, "shard"), "ml.prom");
  const res = await run(
    ["--dry-run", "--metrics-file", file, "--pushgateway", gateway.url, "--shards", "3"],
    { env: { ...env, JOB_COMPLETION_INDEX: "2" } },
  );
  assert.equal(res.code, 0, res.stderr);
  const samples = readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  assert.ok(samples.length > 10);
  for (const line of samples) assert.match(line, /^ml_scheduler_\w+\{shard="2"[,}]/);
  assert.deepEqual(
    gateway.pushes.map((p) => p.path),
    ["/metrics/job/ml_scheduler/shard/2"],
  );
  assert.ok(gateway.groups.has("job/ml_scheduler/shard/2"));
});

test("a shard's failed run carries its own last success forward, never another label set's", () => {
  const line = 'ml_scheduler_last_success_timestamp_seconds{shard="2"} 1767225600';
  const text = `# TYPE x gauge\n${line}\n`;
  assert.equal(lastSuccessIn(text, { shard: "2" }), 1767225600);
  assert.equal(lastSuccessIn(text, { shard: "1" }), undefined, "shard 2's time is not shard 1's");
  assert.equal(lastSuccessIn(text), undefined, "nor an unsharded run's");
  assert.equal(lastSuccessIn(`${LAST}{shard="1"} 5\n${LAST} 7\n`), 7);
  assert.equal(lastSuccessIn(`${LAST}{shard="12"} 5\n${LAST}{shard="1"} 6\n`, { shard: "1" }), 6);
});

const LAST = "ml_scheduler_last_success_timestamp_seconds";

/** The last success a metrics file records for one shard, or undefined when it has none. */
function lastSuccessOf(file: string, shard: number): number | undefined {
  const line = readFileSync(file, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${LAST}{shard="${shard}"} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

test("two shards writing one metrics file alternately, shard 1 always failing: shard 1 never shows shard 0's success", async (t) => {
  const { env } = await startServices(t);
  const failing = { ...env, BACKEND_PASSWORD: "not-the-password" };
  const dir = tempDir(t, "shard-metrics");
  const shared = join(dir, "ml.prom");
  for (let round = 0; round < 2; round++) {
    const zero = await run(["--dry-run", "--metrics-file", shared, "--shard", "0/2"], { env });
    assert.equal(zero.code, 0, zero.stderr);
    assert.ok((lastSuccessOf(shared, 0) ?? 0) > 0);
    const one = await run(["--dry-run", "--metrics-file", shared, "--shard", "1/2"], {
      env: failing,
    });
    assert.equal(one.code, 4, one.stderr);
    assert.equal(lastSuccessOf(shared, 1), 0, `round ${round}: shard 1 has never succeeded`);
  }

  // With {shard} in the path each shard keeps its own file, and shard 0's success stays in its own.
  const perShard = join(dir, "ml_{shard}.prom");
  const zero = await run(["--dry-run", "--metrics-file", perShard, "--shard", "0/2"], { env });
  assert.equal(zero.code, 0, zero.stderr);
  const success = lastSuccessOf(join(dir, "ml_0.prom"), 0);
  const one = await run(["--dry-run", "--shard", "1/2"], {
    env: { ...failing, METRICS_FILE: perShard },
  });
  assert.equal(one.code, 4, one.stderr);
  assert.equal(lastSuccessOf(join(dir, "ml_1.prom"), 1), 0);
  assert.equal(lastSuccessOf(join(dir, "ml_0.prom"), 0), success, "shard 0's file untouched");

  // {shard} without a shard: which file is unknowable, so none is written, and a warning says so.
  const unsharded = await run(["--dry-run", "--metrics-file", perShard], { env });
  assert.equal(unsharded.code, 0, unsharded.stderr);
  assert.match(unsharded.stderr, /--metrics-file has \{shard\} but this run has no shard/);
  assert.deepEqual(readdirSync(dir).toSorted(), ["ml.prom", "ml_0.prom", "ml_1.prom"]);
});

test("--ping-url: {shard} is replaced by the index, so each index pings its own check", async (t) => {
  const { env } = await sharded(t);
  const ping = await startPing();
  t.after(() => ping.close());
  const res = await run(["--dry-run", "--ping-url", `${ping.checkUrl}?check=ward-{shard}`], {
    env: { ...env, SHARDS: "4", JOB_COMPLETION_INDEX: "3" },
  });
  assert.equal(res.code, 1, res.stderr);
  assert.deepEqual(
    ping.pings.map((p) => [p.signal, p.query.get("check")]),
    [
      ["start", "ward-3"],
      ["1", "ward-3"],
    ],
  );
  const unsharded = await run(["--dry-run", "--ping-url", `${ping.checkUrl}?check={shard}`], {
    env,
  });
  assert.match(unsharded.stderr, /--ping-url has \{shard\} but this run has no shard/);
  assert.equal(ping.pings.length, 2, "no ping to an unknowable check");
});
