/**
 * Every input has a bound: flags, environment, secret files, the env file, the working directory
 * and the patient list. Each bad input is refused at once with one line, before any request.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSweep } from "../src/index.ts";
import { parseReport, type RunResult, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";

/** Exit code `code`, exactly one line on stderr, and with --json exactly one JSON document. */
function assertRefused(res: RunResult, code: number, pattern: RegExp, what: string): void {
  assert.equal(res.code, code, `${what}: ${res.stderr}`);
  const lines = res.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: one line, got ${res.stderr}`);
  assert.match(res.stderr, pattern, what);
  assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: no stack trace`);
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, code, what);
}

test("durations past Node's timer limit are a usage error, the largest that fits is not", async (t) => {
  const { backend, env } = await startServices(t);
  for (const args of [
    ["--deadline", "2200000"],
    ["--deadline", "2147483.5"],
    ["--grace", "2147484"],
    ["--request-timeout", "2147483648"],
  ]) {
    const res = await run(["--json", ...args], { env });
    assertRefused(
      res,
      2,
      new RegExp(`^ml-scheduler: .*'${args[0]} .*at most 2147483`),
      String(args[0]),
    );
  }
  assert.equal(backend.requests.length, 0, "a usage error sends nothing");

  const res = await run(
    [
      "--json",
      ...["--deadline", "2147483", "--grace", "2147483", "--request-timeout", "2147483647"],
    ],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).counts.not_started, 0);
  assert.ok(backend.writes.length > 0, "the sweep ran");
});

test("--concurrency and CONCURRENCY refuse the same values, past 1024 included", async (t) => {
  const { backend, env } = await startServices(t);
  for (const value of ["1025", "99999999999", "Infinity", "0", "1e3"]) {
    const flag = await run(["--json", "--concurrency", value], { env });
    assertRefused(
      flag,
      2,
      /'--concurrency <n>' .* must be a positive integer, at most 1024/,
      value,
    );
    const variable = await run(["--json"], { env: { ...env, CONCURRENCY: value } });
    assertRefused(
      variable,
      3,
      /^\[error\] CONCURRENCY must be a positive integer, at most 1024$/m,
      value,
    );
  }
  assert.equal(backend.requests.length, 0);
  const res = await run(["--json"], { env: { ...env, CONCURRENCY: "1024" } });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).concurrency, 1024);
});

const good = (pid: number) => ({
  pid,
  admit_time: "2026-01-01T00:00:00",
  firstname: "A",
  lastname: "B",
  age: null,
  gender: null,
  status: { id: 9, text: "Normal" },
});
const isPatientWork = (r: { path: string }) =>
  r.path === "/api/patient/fetchVitals" || r.path === "/api/patient/updateStatus";

test("a patient list mostly invalid, or with over 1000 invalid records, is a contract break: exit 5 before any patient", async (t) => {
  const cases: Array<[string, unknown[], number[] | undefined, RegExp]> = [
    // More than half invalid, judged on the whole list even when --patient picks a good one.
    [
      "more than half",
      [good(1), good(2), 0, "x", { pid: 3 }],
      [1],
      /: 3 of its 5 records are invalid/,
    ],
    [
      "over 1000 of a list mostly good",
      [...Array.from({ length: 2000 }, (_, i) => good(i + 1)), ...Array(1001).fill(null)],
      undefined,
      /: more than 1000 of its 3001 records are invalid/,
    ],
    [
      "100,000 invalid",
      Array(100_000).fill(0),
      undefined,
      /: more than 1000 of its 100000 records are invalid/,
    ],
  ];
  for (const [what, list, patients, pattern] of cases) {
    const { backend, ml, env } = await startServices(t);
    backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
      kind: "body",
      body: JSON.stringify(list),
    });
    const report = await runSweep(sweepConfig(env, { patients }));
    assert.equal(report.exitCode, 5, what);
    assert.equal(report.error?.code, "upstream", what);
    assert.match(report.error?.message ?? "", pattern, what);
    assert.match(report.error?.message ?? "", /check that PATIENT_SERVER is the patient backend/);
    assert.ok((report.error?.message ?? "").length < 300, `${what}: the records are not listed`);
    assert.equal(report.patients.length, 0, what);
    assert.ok(!backend.requests.some(isPatientWork), `${what}: no patient was started`);
    assert.ok(!ml.requests.some((r) => r.path === "/predict" && r.body !== "[]"), what);
  }
});

test("duplicates are not invalid: a list of only duplicates fails per record, not as a whole", async (t) => {
  const { backend, env } = await startServices(t);
  const list = [good(1), good(1), good(1), good(2), good(2), good(3), 0];
  backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "body",
    body: JSON.stringify(list),
  });
  const report = await runSweep(sweepConfig(env));
  assert.equal(report.exitCode, 1);
  assert.equal(report.error, null);
  const reasons = report.patients.map((p) => `${p.pid}:${p.reason ?? p.outcome}`).sort();
  assert.deepEqual(reasons, [
    "1:duplicate_record",
    "2:duplicate_record",
    "3:unchanged",
    "null:invalid_record",
  ]);
});
