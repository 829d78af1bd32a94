/**
 * The backend client's failure paths against the stand-ins: the login's own retry policy and what
 * a login's 403/404 mean.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSweep } from "../src/index.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import type { Fault, RecordedRequest } from "./stand-ins/server.ts";

const route = (path: string) => (r: RecordedRequest) => r.path === path;
const isLogin = route("/api/login/");

const loginAttempts: Array<[string, Fault, number, number, RegExp]> = [
  ["a 500", { kind: "status", status: 500 }, 1, 5, /HTTP 500/],
  ["a stall past the timeout", { kind: "stall" }, 1, 5, /timed out/],
  ["a reset mid-request", { kind: "reset" }, 1, 5, /ECONNRESET/],
  ["a 429 without Retry-After", { kind: "status", status: 429 }, 1, 5, /HTTP 429/],
  [
    "a 503 with a Retry-After over the cap",
    { kind: "status", status: 503, headers: { "retry-after": "3600" } },
    1,
    5,
    /HTTP 503/,
  ],
  [
    "a 503 with Retry-After: 1",
    { kind: "status", status: 503, headers: { "retry-after": "1" } },
    2,
    0,
    /^$/,
  ],
  [
    "a 429 with Retry-After: 0",
    { kind: "status", status: 429, headers: { "retry-after": "0" } },
    2,
    0,
    /^$/,
  ],
];

for (const [what, fault, attempts, exitCode, message] of loginAttempts) {
  test(`the login after ${what} is sent ${attempts === 1 ? "once" : "again"}`, async (t) => {
    const { backend, env } = await startServices(t);
    backend.fault(isLogin, fault, 1);
    const report = await runSweep(sweepConfig(env, { retries: 2, requestTimeoutMs: 500 }));
    assert.equal(backend.requests.filter(isLogin).length, attempts);
    assert.equal(report.exitCode, exitCode, report.error?.message);
    assert.match(report.error?.message ?? "", message);
  });
}

test("predict and the write keep their retries after a 500 and a reset", async (t) => {
  const { backend, ml, env } = await startServices(t);
  ml.fault((r) => r.path === "/predict" && r.body !== "[]", { kind: "status", status: 500 }, 1);
  backend.fault(route("/api/patient/updateStatus"), { kind: "reset" }, 1);
  const report = await runSweep(sweepConfig(env, { retries: 2, concurrency: 1, patients: [2] }));
  assert.equal(report.exitCode, 0, report.error?.message);
  assert.deepEqual(backend.writes, [{ pid: 2, status: 1 }]);
});

test("a login 404 that is not the backend's unknown user is exit 5 naming PATIENT_SERVER", async (t) => {
  const { backend, ml, env } = await startServices(t);
  // PATIENT_SERVER and ML_SERVER swapped: the ML server answers the login 404 {"detail":"Not Found"}.
  const swapped = await run(["--json"], {
    env: { ...env, PATIENT_SERVER: ml.url, ML_SERVER: backend.url },
  });
  assert.equal(swapped.code, 5, swapped.stderr);
  assert.match(swapped.stderr, /Login failed: POST \/api\/login\/: HTTP 404 .*PATIENT_SERVER/);
  assert.equal(parseReport(swapped.stdout).error.code, "upstream");

  const unknown = await run(["--json"], { env: { ...env, BACKEND_USERNAME: "nobody" } });
  assert.equal(unknown.code, 4, unknown.stderr);
  assert.match(unknown.stderr, /does not know the username/);
});

test("a login 403 says what it likely is and never blames the Authorization header", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(isLogin, { kind: "status", status: 403, body: "<html>Forbidden</html>" });
  const res = await run(["--json"], { env });
  assert.equal(res.code, 4, res.stderr);
  assert.doesNotMatch(res.stderr, /authorization/i);
  assert.match(res.stderr, /HTTP 403.*proxy, firewall or WAF/);
  assert.equal(backend.requests.filter(isLogin).length, 1);
});
