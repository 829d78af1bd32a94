/**
 * runSweep's stop paths: a bug, the deadline as a hard bound, a stop during login, and the breaker
 * per service hearing 429s and never reset by a patient that did not reach the service.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pickExitCode } from "../src/errors.ts";
import { type PatientResult, runSweep, SchedulerError } from "../src/index.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";
const isPredict = (r: RecordedRequest) => r.path === "/predict" && r.body !== "[]";
const route = (path: string) => (r: RecordedRequest) => r.path === path;
const outcomes = (patients: PatientResult[]) => patients.map((p) => p.outcome);

/** Resolves as `promise` does, or rejects after `ms`; leaves no timer behind. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

test("exit precedence: signals, then a bug (70), then the table, an unwritable report (74) before 1", () => {
  assert.equal(pickExitCode([1, 74]), 74);
  assert.equal(pickExitCode([8, 74]), 8);
  assert.equal(pickExitCode([7, 70]), 70);
  assert.equal(pickExitCode([70, 129]), 129);
  assert.equal(pickExitCode([143, 129]), 129);
});

test("a bug in a callback stops starting patients, aborts in-flight requests and rejects with it", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(40) } });
  const hold = backend.hold((r) => isVitals(r) && r.query.get("key") === "2");
  const bug = new TypeError("a bug in a reporter");
  let calls = 0;
  let sawAbort = () => {};
  const aborted = new Promise<void>((resolve) => {
    sawAbort = resolve;
  });
  const sweep = runSweep(sweepConfig(env, { concurrency: 2 }), {
    onEvent: (event) => {
      if (event.type === "request_done" && event.reason === "aborted") sawAbort();
      if (event.type !== "patient_done") return;
      calls++;
      throw bug;
    },
  });
  await assert.rejects(sweep, (error) => error === bug);
  // The held request's record says it was aborted, not awaited: nothing of the sweep is left in
  // flight, so the release below can set nothing going.
  await within(aborted, 5_000, "the held request's aborted record");
  hold.release();
  assert.equal(calls, 1, "no patient was reported after the bug");
  assert.ok(
    backend.requests.filter(isVitals).length <= 3,
    "no patient started after the bug; the held one was aborted, not awaited",
  );
  assert.ok(!backend.writes.some((w) => w.pid === 2), "the held patient's write never happened");
});

test("--deadline bounds login too: a stalled login ends the run at deadline + grace, exit 8", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(route("/api/login/"), { kind: "stall" });
  const stops: string[] = [];
  const report = await runSweep(
    sweepConfig(env, { deadlineSeconds: 0.1, graceSeconds: 0.1, requestTimeoutMs: 60_000 }),
    { onEvent: (e) => e.type === "stopped" && stops.push(e.code) },
  );
  assert.equal(report.exitCode, 8, report.error?.message);
  assert.equal(report.error?.code, "deadline");
  assert.deepEqual(stops, ["deadline"]);
  assert.equal(backend.requests.filter(route("/api/patient/fetchAllPatients")).length, 0);
});

test("--deadline with a stalled /predict: in-flight patients get the grace, then are interrupted, exit 8", async (t) => {
  const { ml, env } = await startServices(t);
  ml.fault(isPredict, { kind: "stall" });
  const report = await runSweep(
    sweepConfig(env, {
      deadlineSeconds: 2, // past the login and the list even on a loaded machine
      graceSeconds: 0.1,
      requestTimeoutMs: 60_000,
      retries: 2,
      concurrency: 2,
    }),
  );
  assert.equal(report.exitCode, 8, report.error?.message);
  const interrupted = report.patients.filter((p) => p.outcome === "interrupted");
  assert.ok(interrupted.length >= 1, JSON.stringify(outcomes(report.patients)));
  for (const p of interrupted) assert.equal(p.stage, "predict");
  assert.ok(report.counts.not_started >= 1);
});

test("a deadline that passes with nothing left to start and in-flight work done in the grace is a normal run", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold((r) => isVitals(r) && r.query.get("key") === "2");
  const stops: string[] = [];
  const started = Date.now();
  const sweep = runSweep(sweepConfig(env, { patients: [2], deadlineSeconds: 1, graceSeconds: 5 }), {
    onEvent: (e) => e.type === "stopped" && stops.push(e.code),
  });
  await hold.waitFor();
  // The deadline passes while the patient is held (1 s: past the login and the list).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + 1_300 - Date.now())));
  hold.release();
  const report = await sweep;
  assert.equal(report.exitCode, 0, report.error?.message);
  assert.equal(report.error, null);
  assert.deepEqual(stops, [], "nothing was said about the deadline");
});

test("a stop during login ends the run before the patient list is fetched", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(route("/api/login/"));
  const stop = new AbortController();
  const sweep = runSweep(sweepConfig(env), { stop: stop.signal });
  await hold.waitFor();
  stop.abort(new SchedulerError("sigterm", "Stopped by SIGTERM."));
  hold.release();
  const report = await sweep;
  assert.equal(report.exitCode, 143);
  assert.equal(backend.requests.filter(route("/api/patient/fetchAllPatients")).length, 0);
  assert.equal(backend.requests.filter(isVitals).length, 0);
});

test("the breaker hears 429s: patients answered 429 with a long Retry-After trip it", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(200) } });
  backend.fault(isVitals, {
    kind: "status",
    status: 429,
    body: '{"detail":"Too Many Requests"}',
    headers: { "retry-after": "3600" },
  });
  const report = await runSweep(sweepConfig(env, { breaker: 5, concurrency: 1, retries: 2 }));
  assert.equal(report.exitCode, 6, report.error?.message);
  assert.equal(report.counts.failed, 5);
  assert.equal(backend.requests.filter(isVitals).length, 5, "the rest were never sent");
  assert.match(report.error?.message ?? "", /the backend is unavailable/);
});

test("the breaker counts per service: skipped patients do not reset a dead ML server's count", async (t) => {
  const patients = makePatients(60).map((p, i) => {
    if (i % 2 === 1) p.vitals = p.vitals.slice(0, 3); // skipped: never reaches the ML server
    return p;
  });
  const { ml, env } = await startServices(t, { backend: { patients } });
  ml.fault(isPredict, { kind: "reset" });
  const report = await runSweep(sweepConfig(env, { breaker: 10, concurrency: 1 }));
  assert.equal(report.exitCode, 6, report.error?.message);
  assert.equal(ml.requests.filter(isPredict).length, 10);
  assert.match(report.error?.message ?? "", /the ML server is unavailable/);
});
