/**
 * The sweep's typed events: facts for reporters, one per patient and per request, never prose and
 * never patient data beyond pids and status ids.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { SweepEvent } from "../src/core/events.ts";
import { runSweep } from "../src/index.ts";
import { secretsOf, startServices, sweepConfig } from "./helpers/services.ts";
import { demoPatients } from "./stand-ins/seed.ts";

test("a sweep emits run_started, one patient_done per patient and one request_done per request", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const events: SweepEvent[] = [];
  const report = await runSweep(sweepConfig(env), { onEvent: (e) => events.push(e) });
  assert.equal(report.exitCode, 0);
  assert.deepEqual(
    events.filter((e) => e.type === "run_started"),
    [{ type: "run_started", patients: 8 }],
  );
  const started = events.findIndex((e) => e.type === "run_started");
  const done = events.filter((e) => e.type === "patient_done");
  assert.equal(done.length, 8);
  assert.ok(events.findIndex((e) => e.type === "patient_done") > started);
  for (const e of done) assert.ok(Number.isInteger(e.durationMs) && e.durationMs >= 0);

  const requests = events.filter((e) => e.type === "request_done");
  assert.equal(requests.length, backend.requests.length + ml.requests.length);
  assert.deepEqual([...new Set(requests.map((r) => `${r.service} ${r.route}`))].toSorted(), [
    "backend GET /api/patient/fetchAllPatients",
    "backend GET /api/patient/fetchVitals",
    "backend POST /api/login/",
    "backend PUT /api/patient/updateStatus",
    "ml GET /health",
    "ml POST /predict",
  ]);
  for (const r of requests) {
    assert.equal(r.status, 200);
    assert.equal(r.attempts, 1);
    assert.equal(r.reason, null);
  }
  const text = JSON.stringify(events);
  for (const word of secretsOf(demoPatients())) assert.ok(!text.includes(word), word);
  assert.doesNotMatch(text, /key=|pid=/, "routes carry no query");
});

test("request_done carries the attempts and the final status; reason is set only when no answer came", async (t) => {
  const { backend, ml, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/patient/fetchVitals" && r.query.get("key") === "2", {
    kind: "status",
    status: 503,
  });
  ml.fault((r) => r.path === "/health", { kind: "html" });
  const events: SweepEvent[] = [];
  await runSweep(sweepConfig(env, { retries: 2, patients: [2] }), {
    onEvent: (e) => events.push(e),
  });
  const vitals = events
    .filter((e) => e.type === "request_done")
    .find((e) => e.route.includes("fetchVitals"));
  assert.deepEqual(
    vitals && { status: vitals.status, attempts: vitals.attempts, reason: vitals.reason },
    { status: 503, attempts: 3, reason: null },
  );
  assert.ok(events.some((e) => e.type === "ml_probe_used"));
});

test("a request that got no answer is recorded with its reason and no status", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/patient/fetchVitals", { kind: "reset" });
  const events: SweepEvent[] = [];
  await runSweep(sweepConfig(env, { retries: 1, patients: [2] }), {
    onEvent: (e) => events.push(e),
  });
  const vitals = events
    .filter((e) => e.type === "request_done")
    .find((e) => e.route.includes("fetchVitals"));
  assert.deepEqual(
    vitals && { status: vitals.status, attempts: vitals.attempts, reason: vitals.reason },
    { status: null, attempts: 2, reason: "unreachable" },
  );
});
