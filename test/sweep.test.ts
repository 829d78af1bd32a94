/**
 * runSweep against the stand-ins: per-record validation, contract breaks, token expiry, retries,
 * the breaker and the stop paths. Each test starts its own services on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type PatientResult, runSweep } from "../src/index.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const vitalsOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);
const route = (path: string) => (r: RecordedRequest) => r.path === path;
const byPid = (patients: PatientResult[], pid: number | null) =>
  patients.find((p) => p.pid === pid);
const vital = { heart_rate: 80, sao2: 97, respiration: 16, systolic: 120, diastolic: 80 };

test("each patient record is validated on its own; bad ones fail at select, the rest go on", async (t) => {
  const { backend, env } = await startServices(t);
  const good = {
    pid: 1,
    admit_time: "2026-01-01T00:00:00",
    firstname: "A",
    lastname: "B",
    age: null,
    gender: null,
    status: { id: 9, text: "Normal" },
  };
  const list = [
    good,
    { ...good, pid: undefined },
    { ...good, pid: "2" },
    { ...good, pid: 3, status: { id: "9" } },
    { ...good, pid: 4 },
    { ...good, pid: 4, status: { id: 1, text: "Alert" } },
    { ...good, pid: 5 },
  ];
  backend.fault(
    route("/api/patient/fetchAllPatients"),
    { kind: "body", body: JSON.stringify(list) },
    1,
  );
  const report = await runSweep(sweepConfig(env));
  assert.equal(report.exitCode, 1);
  assert.equal(report.counts.selected, 6);
  const nulls = report.patients.filter((p) => p.pid === null);
  assert.equal(nulls.length, 2);
  for (const p of nulls) {
    assert.equal(p.outcome, "failed");
    assert.equal(p.stage, "select");
    assert.equal(p.reason, "invalid_record");
    assert.match(p.detail ?? "", /^record [12]: pid: expected number$/);
  }
  assert.equal(byPid(report.patients, 3)?.reason, "invalid_record");
  assert.equal(byPid(report.patients, 3)?.detail, "status.id: expected number");
  assert.equal(byPid(report.patients, 4)?.reason, "duplicate_record");
  assert.equal(report.patients.filter((p) => p.pid === 4).length, 1);
  assert.equal(byPid(report.patients, 1)?.outcome, "unchanged");
  assert.equal(byPid(report.patients, 5)?.stage, null);
  assert.ok(!backend.requests.some(vitalsOf(4)), "a duplicated pid is not handled");
  assert.ok(!backend.requests.some(vitalsOf(3)));
});

test("vitals with timestamps are put newest first before predicting", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const records = [0, 1, 2, 3, 4].map((i) => ({
    ...vital,
    heart_rate: 60 + i,
    pid: 1,
    timestamp: `2026-11-26T10:0${i}:00`,
  }));
  backend.fault(vitalsOf(1), { kind: "body", body: JSON.stringify(records) });
  const report = await runSweep(sweepConfig(env, { patients: [1] }));
  assert.equal(byPid(report.patients, 1)?.stage, null);
  const sent = ml.predictions[0]?.vitals.map((v) => v.heart_rate);
  assert.deepEqual(sent, [64, 63, 62, 61, 60]);
  const body = JSON.parse(
    ml.requests.find((r) => r.path === "/predict" && r.body !== "[]")?.body ?? "[]",
  );
  assert.deepEqual(Object.keys(body[0]).toSorted(), [
    "diastolic",
    "heart_rate",
    "respiration",
    "sao2",
    "systolic",
  ]);
});

test("answers that break the contract fail the patient with a reason and never cause a write", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const five = JSON.stringify([vital, vital, vital, vital, vital]);
  backend.fault(vitalsOf(1), {
    kind: "body",
    body: JSON.stringify([{ ...vital, pid: 99 }, vital, vital, vital, vital]),
  });
  backend.fault(vitalsOf(2), {
    kind: "body",
    body: JSON.stringify([vital, vital, vital, vital, vital, vital]),
  });
  backend.fault(vitalsOf(3), { kind: "oversize", bytes: 2 * 1024 * 1024 });
  backend.fault(vitalsOf(4), { kind: "html" });
  backend.fault(vitalsOf(5), { kind: "body", body: five });
  backend.fault(vitalsOf(6), { kind: "body", body: five });
  backend.fault(vitalsOf(7), {
    kind: "body",
    body: JSON.stringify([{ ...vital, sao2: "97" }, vital, vital, vital, vital]),
  });
  let predicts = 0;
  ml.fault((r) => r.path === "/predict" && r.body !== "[]" && predicts++ === 0, {
    kind: "body",
    body: '{"status":{"id":10,"text":"Unobserved"}}',
  });
  ml.fault(
    (r) => r.path === "/predict" && r.body !== "[]",
    { kind: "body", body: '{"vitals":{}}' },
    1,
  );
  const report = await runSweep(
    sweepConfig(env, { concurrency: 1, patients: [1, 2, 3, 4, 5, 6, 7] }),
  );
  const reasons = Object.fromEntries(report.patients.map((p) => [p.pid, [p.stage, p.reason]]));
  assert.deepEqual(reasons, {
    1: ["vitals", "invalid_response"],
    2: ["vitals", "invalid_response"],
    3: ["vitals", "body_too_large"],
    4: ["vitals", "invalid_response"],
    5: ["predict", "invalid_response"],
    6: ["predict", "invalid_response"],
    7: ["vitals", "invalid_response"],
  });
  assert.equal(
    byPid(report.patients, 7)?.detail,
    "GET /api/patient/fetchVitals: 0.sao2: expected number",
  );
  assert.equal(backend.writes.length, 0);
  for (const p of report.patients)
    assert.ok(!(p.detail ?? "").includes("97"), "no received value in a detail");
});

test("a write refused by the backend fails at update", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(route("/api/patient/updateStatus"), {
    kind: "status",
    status: 404,
    body: '{"detail":"Failed to find patient"}',
  });
  const report = await runSweep(sweepConfig(env, { patients: [2] }));
  assert.deepEqual(
    [
      byPid(report.patients, 2)?.stage,
      byPid(report.patients, 2)?.reason,
      byPid(report.patients, 2)?.to,
    ],
    ["update", "http_404", 1],
  );
});

test("a token that expires mid-sweep costs exactly one shared re-login", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(route("/api/patient/fetchVitals"));
  const sweep = runSweep(sweepConfig(env, { concurrency: 4 }));
  await hold.waitFor(4);
  backend.expireTokens();
  hold.release();
  const report = await sweep;
  assert.equal(report.exitCode, 0);
  assert.equal(backend.logins, 2, "four requests saw the 401; they shared one login");
  assert.equal(report.counts.updated, 4);
  assert.equal(backend.requests.filter(route("/api/patient/fetchVitals")).length, 8 + 4);
});

test("a 401 right after a fresh login is exit 4: no new patient starts", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(route("/api/patient/fetchVitals"), {
    kind: "status",
    status: 401,
    body: '{"detail":"Invalid token"}',
  });
  const report = await runSweep(sweepConfig(env, { concurrency: 1 }));
  assert.equal(report.exitCode, 4);
  assert.equal(report.error?.code, "auth");
  assert.equal(backend.logins, 2);
  assert.equal(report.counts.failed, 1);
  assert.equal(report.counts.not_started, 7);
  assert.equal(backend.writes.length, 0);
});

test("transient faults are retried, predict and the write included; Retry-After is honoured", async (t) => {
  const { backend, ml, env } = await startServices(t);
  backend.fault(vitalsOf(2), { kind: "status", status: 503 }, 1);
  backend.fault(vitalsOf(3), { kind: "reset" }, 1);
  ml.fault((r) => r.path === "/predict" && r.body !== "[]", { kind: "status", status: 500 }, 2);
  backend.fault(
    route("/api/patient/updateStatus"),
    { kind: "status", status: 429, headers: { "retry-after": "0" } },
    1,
  );
  const report = await runSweep(sweepConfig(env, { retries: 2, concurrency: 1 }));
  assert.equal(
    report.exitCode,
    0,
    JSON.stringify(report.patients.filter((p) => p.outcome === "failed")),
  );
  assert.equal(report.counts.updated, 4);
  assert.equal(backend.faulted.length, 3);
  assert.equal(ml.faulted.length, 2);
});

test("a Retry-After past the cap fails the request at once; other 4xx are not retried", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(vitalsOf(1), { kind: "status", status: 429, headers: { "retry-after": "3600" } });
  backend.fault(vitalsOf(2), { kind: "status", status: 400, body: '{"detail":"bad"}' });
  const report = await runSweep(sweepConfig(env, { retries: 2, patients: [1, 2] }));
  assert.equal(byPid(report.patients, 1)?.reason, "http_429");
  assert.equal(byPid(report.patients, 2)?.reason, "http_400");
  assert.equal(backend.requests.filter(vitalsOf(1)).length, 1);
  assert.equal(backend.requests.filter(vitalsOf(2)).length, 1);
});

test("a request that stalls past the timeout fails that patient with reason timeout", async (t) => {
  const { env, backend } = await startServices(t);
  backend.fault(vitalsOf(2), { kind: "stall" });
  const report = await runSweep(sweepConfig(env, { requestTimeoutMs: 300, patients: [1, 2] }));
  assert.deepEqual(
    [byPid(report.patients, 2)?.stage, byPid(report.patients, 2)?.reason],
    ["vitals", "timeout"],
  );
  assert.equal(byPid(report.patients, 1)?.outcome, "unchanged");
});

test("the breaker stops starting patients after n in a row failed because a service is down", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(40) } });
  backend.fault(route("/api/patient/fetchVitals"), { kind: "status", status: 503 });
  const report = await runSweep(sweepConfig(env, { breaker: 5, concurrency: 1 }));
  assert.equal(report.exitCode, 6);
  assert.equal(report.counts.failed, 5);
  assert.equal(report.counts.not_started, 35);
  assert.equal(report.error?.code, "aborted");
  assert.equal(backend.requests.filter(route("/api/patient/fetchVitals")).length, 5);
});

test("--max-failures stops after n failed patients of any kind", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(20) } });
  backend.fault(route("/api/patient/fetchVitals"), { kind: "html" });
  const report = await runSweep(sweepConfig(env, { maxFailures: 3, concurrency: 1 }));
  assert.equal(report.exitCode, 6);
  assert.equal(report.counts.failed, 3);
  assert.equal(report.counts.not_started, 17);
});

test("a stop lets in-flight patients finish, writes included; an abort interrupts them", async (t) => {
  const { backend, env } = await startServices(t);
  const stop = new AbortController();
  const signal = new AbortController();
  const hold = backend.hold(vitalsOf(2));
  const sweep = runSweep(sweepConfig(env, { concurrency: 2, patients: [2, 3, 5, 6] }), {
    stop: stop.signal,
    signal: signal.signal,
  });
  await hold.waitFor();
  stop.abort(new Error("test stop"));
  await backend.waitForRequests((r) => r.method === "PUT", 1);
  hold.release();
  const report = await sweep;
  assert.equal(
    byPid(report.patients, 2)?.outcome,
    "updated",
    "the held patient finished, its write included",
  );
  assert.equal(report.counts.not_started, 2);
  assert.equal(backend.writes.length, 2);

  const hold2 = backend.hold(vitalsOf(5));
  const stop2 = new AbortController();
  const sweep2 = runSweep(sweepConfig(env, { concurrency: 1, patients: [5, 6] }), {
    stop: stop2.signal,
    signal: stop2.signal,
  });
  await hold2.waitFor();
  stop2.abort(new Error("abort now"));
  const aborted = await sweep2;
  hold2.release();
  assert.deepEqual(
    [byPid(aborted.patients, 5)?.outcome, byPid(aborted.patients, 5)?.stage],
    ["interrupted", "vitals"],
  );
  assert.equal(byPid(aborted.patients, 6)?.outcome, "not_started");
  assert.equal(aborted.exitCode, 143, "a caller's own abort reason counts as an interruption");
});

test("a same-origin 307 is followed with method and body kept; a base URL may end in a slash", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(
    route("/api/login/"),
    { kind: "status", status: 307, body: "", headers: { location: `${backend.url}/api/login` } },
    1,
  );
  const report = await runSweep(
    sweepConfig({ ...env, PATIENT_SERVER: `${backend.url}/` }, { patients: [2] }),
  );
  assert.equal(report.exitCode, 0, report.error?.message);
  assert.equal(backend.logins, 1, "the login reached the handler once, body intact");
  const logins = backend.requests.filter((r) => r.path.startsWith("/api/login"));
  assert.deepEqual(
    logins.map((r) => [r.method, r.path, JSON.parse(r.body).username]),
    [
      ["POST", "/api/login/", "demo"],
      ["POST", "/api/login", "demo"],
      ["POST", "/api/login/", "demo"],
    ],
  );
});

test("an abort with any reason, a TimeoutError included, reports in-flight patients interrupted", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(vitalsOf(2));
  const controller = new AbortController();
  const sweep = runSweep(sweepConfig(env, { patients: [2] }), { signal: controller.signal });
  await hold.waitFor();
  controller.abort(new DOMException("The operation timed out.", "TimeoutError"));
  const report = await sweep;
  hold.release();
  assert.deepEqual(
    [byPid(report.patients, 2)?.outcome, byPid(report.patients, 2)?.reason],
    ["interrupted", "aborted"],
  );
});
