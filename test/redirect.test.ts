/**
 * Redirects: only a same-origin redirect that keeps the method is followed. A service that points
 * anywhere else gets nothing from us: not the password, not vitals, not a write.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { type PatientResult, runSweep } from "../src/index.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

/** Another origin on 127.0.0.1 that counts every request it receives and answers all of them. */
async function startOtherOrigin(t: TestContext): Promise<{ url: string; hits: string[] }> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: "stolen", status: { id: 1 }, pid: 2 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

const route = (path: string) => (r: RecordedRequest) => r.path === path;
const redirect = (status: number, location: string) => ({
  kind: "status" as const,
  status,
  body: "",
  headers: { location },
});
const outcomes = (patients: PatientResult[]) =>
  patients.map((p) => [p.pid, p.outcome, p.reason] as const);

test("a login redirected to another origin sends it nothing and ends the run with exit 5", async (t) => {
  const other = await startOtherOrigin(t);
  const { backend, env } = await startServices(t);
  backend.fault(route("/api/login/"), redirect(307, `${other.url}/steal?password=1`));
  const report = await runSweep(sweepConfig(env, { retries: 2 }));
  assert.deepEqual(other.hits, [], "nothing reached the other origin");
  assert.equal(report.exitCode, 5);
  assert.equal(report.error?.code, "upstream");
  assert.match(report.error?.message ?? "", /redirect to http:\/\/127\.0\.0\.1:\d+ refused/);
  assert.doesNotMatch(report.error?.message ?? "", /steal|password=/, "the origin only, no path");
  assert.equal(backend.requests.filter(route("/api/login/")).length, 1, "a refusal is not retried");
});

test("the patient list redirected to another origin is exit 5; the ML probe's too", async (t) => {
  const other = await startOtherOrigin(t);
  const { backend, ml, env } = await startServices(t);
  backend.fault(route("/api/patient/fetchAllPatients"), redirect(308, `${other.url}/list`), 1);
  const list = await runSweep(sweepConfig(env));
  assert.equal(list.exitCode, 5);
  assert.equal(list.counts.selected, 0);

  ml.fault(route("/health"), redirect(302, `${other.url}/health`), 1);
  ml.fault(route("/predict"), redirect(307, `${other.url}/predict`), 1);
  const probe = await runSweep(sweepConfig(env));
  assert.equal(probe.exitCode, 5);
  assert.deepEqual(other.hits, []);
});

test("vitals, predict and writes redirected elsewhere fail their patient; nothing is reported updated that was not stored", async (t) => {
  const other = await startOtherOrigin(t);
  const { backend, ml, env } = await startServices(t);
  const vitalsOf = (pid: number) => (r: RecordedRequest) =>
    r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);
  backend.fault(vitalsOf(2), redirect(302, `${other.url}/vitals`));
  backend.fault(route("/api/patient/updateStatus"), redirect(307, `${other.url}/write`));
  ml.fault((r) => r.path === "/predict" && r.body !== "[]", redirect(307, `${other.url}/p`), 1);
  const report = await runSweep(sweepConfig(env, { retries: 2 }));
  assert.deepEqual(other.hits, [], "nothing reached the other origin");
  assert.equal(report.counts.updated, 0);
  assert.deepEqual(backend.writes, [], "no status was stored");
  const failed = report.patients.filter((p) => p.outcome === "failed");
  assert.ok(failed.length >= 2, JSON.stringify(outcomes(report.patients)));
  for (const p of failed) assert.equal(p.reason, "redirect_refused");
  assert.ok(failed.some((p) => p.stage === "vitals" && p.pid === 2));
  assert.ok(failed.some((p) => p.stage === "predict"));
  assert.ok(failed.some((p) => p.stage === "update"));
  assert.equal(report.exitCode, 1);
});

test("same origin but a changed method (301/302 on POST, 303) or scheme is refused too", async (t) => {
  const { backend, env } = await startServices(t);
  const sameHttps = backend.url.replace("http:", "https:");
  for (const [status, location] of [
    [301, `${backend.url}/api/login/`],
    [302, `${backend.url}/api/login/`],
    [303, `${backend.url}/api/login/`],
    [307, `${sameHttps}/api/login/`],
  ] as const) {
    backend.fault(route("/api/login/"), redirect(status, location), 1);
    const report = await runSweep(sweepConfig(env, { patients: [2] }));
    assert.equal(report.exitCode, 5, `${status} ${location}`);
    assert.match(report.error?.message ?? "", /refused/);
  }
  assert.equal(backend.logins, 0, "no login ever reached the handler as a GET or elsewhere");
  // A GET may follow any same-origin 3xx: 303 on the patient list still works.
  backend.fault(
    route("/api/patient/fetchAllPatients"),
    redirect(303, `${backend.url}/api/patient/fetchAllPatients`),
    1,
  );
  const ok = await runSweep(sweepConfig(env, { patients: [2] }));
  assert.equal(ok.exitCode, 0, ok.error?.message);
});

test("through the bin: a redirected login is exit 5 and the password goes nowhere", async (t) => {
  const other = await startOtherOrigin(t);
  const { backend, env } = await startServices(t);
  backend.fault(route("/api/login/"), redirect(307, `${other.url}/x?y=z`));
  const res = await run(["--json"], { env });
  assert.equal(res.code, 5, res.stderr);
  assert.equal(parseReport(res.stdout).error.code, "upstream");
  assert.match(res.stderr, /refused/);
  assert.doesNotMatch(res.stderr + res.stdout, /x\?y=z|demo-password/);
  assert.deepEqual(other.hits, []);
});
