/**
 * 2,000 patients under seeded transient faults, permanent faults and a token expiry mid-sweep:
 * every patient reported once, every write the prediction for that patient's vitals, every
 * transient fault recovered, every permanent one reported with its stage.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSweep } from "../../src/index.ts";
import { startServices, sweepConfig } from "../helpers/services.ts";
import { predictStatus } from "../stand-ins/ml.ts";
import { makePatients } from "../stand-ins/seed.ts";
import type { Fault, RecordedRequest } from "../stand-ins/server.ts";

const N = 2_000;
const TRANSIENT: Fault[] = [
  { kind: "status", status: 500 },
  { kind: "status", status: 502, body: "<html>Bad Gateway</html>", contentType: "text/html" },
  { kind: "status", status: 503 },
  { kind: "status", status: 429, headers: { "retry-after": "0" } },
  { kind: "reset" },
  { kind: "stall" },
];

const pidOf = (r: RecordedRequest) => Number(r.query.get("key") ?? r.query.get("pid"));
/** Patients whose every vitals fetch answers HTML, and whose every write is refused. */
const brokenVitals = (pid: number) => pid % 97 === 0;
const refusedWrite = (pid: number) => pid % 89 === 0;

const config = (env: Record<string, string>) =>
  sweepConfig(env, {
    concurrency: 32,
    // Long enough that only injected stalls time out, even on a loaded machine.
    requestTimeoutMs: 2_000,
    retries: 5,
    maxRetryAfterMs: 1_000,
    breaker: 50,
  });

test("chaos: 2,000 patients under transient and permanent faults", {
  timeout: 120_000,
}, async (t) => {
  const seed = makePatients(N, { seed: 7 });
  const { backend, ml, env } = await startServices(t, {
    backend: { patients: seed, shuffleSeed: 3 },
  });
  const patientRoutes = (r: RecordedRequest) =>
    r.path !== "/api/login/" && r.path !== "/api/patient/fetchAllPatients";
  backend.fault((r) => r.path === "/api/patient/fetchVitals" && brokenVitals(pidOf(r)), {
    kind: "html",
  });
  backend.fault((r) => r.path === "/api/patient/updateStatus" && refusedWrite(pidOf(r)), {
    kind: "status",
    status: 404,
    body: '{"detail":"Failed to find patient"}',
  });
  backend.chaos({ seed: 11, rate: 0.04, faults: TRANSIENT, match: patientRoutes });
  ml.chaos({
    seed: 12,
    rate: 0.04,
    faults: TRANSIENT,
    match: (r) => r.path === "/predict" && r.body !== "[]",
  });

  const sweep = runSweep(config(env));
  // The token expires a quarter of the way in.
  await backend.waitForRequests((r) => r.path === "/api/patient/fetchVitals", N / 4, 60_000);
  backend.expireTokens();
  const report = await sweep;

  // Every patient exactly once.
  assert.equal(report.counts.selected, N);
  assert.deepEqual(
    report.patients.map((p) => p.pid),
    seed.map((p) => p.pid),
  );
  assert.equal(report.counts.not_started + report.counts.interrupted, 0);

  // Every write equals the prediction for that patient's vitals. A write whose answer timed out is
  // repeated, which the contract allows: it sets the same value again.
  const byPid = new Map(seed.map((p) => [p.pid, p]));
  const written = new Map<number, number>();
  for (const w of backend.writes) {
    written.set(w.pid, w.status);
    const patient = byPid.get(w.pid);
    assert.ok(patient);
    assert.equal(w.status, predictStatus(patient.vitals.slice(0, 5)), `pid ${w.pid}`);
  }

  // Permanent faults are reported with their stage; nothing else failed, so every transient fault
  // was recovered by a retry or the shared re-login.
  for (const p of report.patients) {
    const pid = p.pid as number;
    if (brokenVitals(pid)) {
      assert.deepEqual([p.outcome, p.stage, p.reason], ["failed", "vitals", "invalid_response"]);
      assert.ok(!written.has(pid));
    } else if (p.outcome === "failed") {
      assert.ok(refusedWrite(pid), `pid ${pid} failed: ${p.reason} at ${p.stage}`);
      assert.deepEqual([p.stage, p.reason], ["update", "http_404"]);
    } else {
      assert.ok(["updated", "unchanged"].includes(p.outcome), `pid ${pid}: ${p.outcome}`);
      assert.equal(p.outcome === "updated", written.has(pid));
      assert.equal(p.to, predictStatus(byPid.get(pid)?.vitals.slice(0, 5) ?? []));
    }
  }
  const refused = seed.filter(
    (p) =>
      refusedWrite(p.pid) &&
      !brokenVitals(p.pid) &&
      p.status !== predictStatus(p.vitals.slice(0, 5)),
  );
  assert.equal(
    report.counts.failed,
    seed.filter((p) => brokenVitals(p.pid)).length + refused.length,
  );
  assert.ok(backend.faulted.length + ml.faulted.length > 200, "the chaos really happened");
  assert.equal(backend.logins, 2, "one login, one shared re-login after the expiry");
  assert.equal(report.exitCode, 1);
});

test("chaos: the ML server dies mid-sweep; the breaker stops it and nothing is lost", {
  timeout: 60_000,
}, async (t) => {
  const seed = makePatients(N, { seed: 8 });
  const { backend, ml, env } = await startServices(t, { backend: { patients: seed } });
  const sweep = runSweep({ ...config(env), retries: 1, breaker: 10 });
  await ml.waitForRequests((r) => r.path === "/predict" && r.body !== "[]", 300, 60_000);
  ml.down();
  const report = await sweep;
  assert.equal(report.exitCode, 6);
  assert.equal(report.counts.selected, N);
  assert.equal(new Set(report.patients.map((p) => p.pid)).size, N);
  assert.ok(report.counts.not_started > N / 2, `${report.counts.not_started} not started`);
  const failed = report.patients.filter((p) => p.outcome === "failed");
  assert.ok(failed.length >= 10);
  for (const p of failed) {
    assert.equal(p.stage, "predict");
    assert.ok(!backend.writes.some((w) => w.pid === p.pid), "no write after a failed predict");
  }
});
