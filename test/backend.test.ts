/**
 * The backend client's failure paths against the stand-ins: the login's own retry policy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSweep } from "../src/index.ts";
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
