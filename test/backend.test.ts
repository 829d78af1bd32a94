/**
 * The backend client's failure paths against the stand-ins: one login, a re-login that fails
 * halts the sweep, the login's own retry policy, what a login's 403/404 mean, writes the backend
 * does not confirm, and zone-less vital timestamps.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type PatientResult, runSweep } from "../src/index.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { makePatients } from "./stand-ins/seed.ts";
import type { Fault, RecordedRequest } from "./stand-ins/server.ts";

const route = (path: string) => (r: RecordedRequest) => r.path === path;
const isLogin = route("/api/login/");
const vitalsOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);
const writeOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/updateStatus" && r.query.get("pid") === String(pid);
const expired = {
  kind: "status",
  status: 401,
  body: '{"detail":"Signature has expired"}',
} as const;
const vital = { heart_rate: 80, sao2: 97, respiration: 16, systolic: 120, diastolic: 80 };

const reloginFailures: Array<[string, Fault, 4 | 5, string]> = [
  ["401", { kind: "status", status: 401, body: '{"detail":"Password is incorrect!"}' }, 4, "auth"],
  [
    "404 unknown user",
    { kind: "status", status: 404, body: '{"detail":"Failed to find username"}' },
    4,
    "auth",
  ],
  ["404 not the backend's", { kind: "status", status: 404, body: '{"detail":"Not Found"}' }, 5, ""],
  ["429", { kind: "status", status: 429 }, 5, ""],
  ["500", { kind: "status", status: 500 }, 5, ""],
  ["503", { kind: "status", status: 503 }, 5, ""],
  ["a bad body", { kind: "body", body: '{"tok":"x"}' }, 5, ""],
  [
    "a refused redirect",
    {
      kind: "status",
      status: 307,
      body: "",
      headers: { location: "http://127.0.0.1:9/api/login/" },
    },
    5,
    "",
  ],
  ["a timeout", { kind: "stall" }, 5, ""],
  ["a reset", { kind: "reset" }, 5, ""],
];

for (const [what, fault, exitCode, reason] of reloginFailures) {
  test(`a re-login failing with ${what} halts the sweep after one attempt, exit ${exitCode}`, async (t) => {
    const { backend, env } = await startServices(t);
    let loginsBefore = -1;
    const report = await runSweep(
      sweepConfig(env, { concurrency: 1, retries: 2, requestTimeoutMs: 500 }),
      {
        onEvent: (event) => {
          if (event.type !== "patient_done" || loginsBefore >= 0) return;
          // The token expires after the first patient; every login from now on fails.
          loginsBefore = backend.requests.filter(isLogin).length;
          backend.expireTokens();
          backend.fault(isLogin, fault);
        },
      },
    );
    assert.equal(loginsBefore, 1);
    assert.equal(backend.requests.filter(isLogin).length - loginsBefore, 1, "one login attempt");
    assert.equal(report.exitCode, exitCode, report.error?.message);
    assert.equal(report.error?.code, exitCode === 4 ? "auth" : "upstream");
    if (exitCode === 5) assert.match(report.error?.message ?? "", /^Re-login after a 401 failed: /);
    const failed = report.patients.filter((p) => p.outcome === "failed");
    assert.deepEqual(
      failed.map((p) => [p.stage, p.reason]),
      [["vitals", reason || "relogin_failed"]],
    );
    assert.equal(report.counts.not_started, 6, "no patient starts after the failed re-login");
  });
}

test("a failed re-login is shared and remembered: 300 patients, one login after the expiry, exit 5", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(300) } });
  const hold = backend.hold(route("/api/patient/fetchVitals"));
  const sweep = runSweep(sweepConfig(env, { concurrency: 4, retries: 2 }));
  await hold.waitFor(4);
  backend.expireTokens();
  backend.fault(isLogin, { kind: "status", status: 500 });
  hold.release();
  const report = await sweep;
  assert.equal(backend.requests.filter(isLogin).length, 2, "the first login and one re-login");
  assert.equal(report.exitCode, 5);
  assert.match(report.error?.message ?? "", /Re-login after a 401 failed: .*HTTP 500/);
  assert.deepEqual(
    report.patients.filter((p) => p.outcome === "failed").map((p) => p.reason),
    ["relogin_failed", "relogin_failed", "relogin_failed", "relogin_failed"],
  );
  assert.equal(report.counts.not_started, 296);
  assert.equal(backend.requests.filter(route("/api/patient/fetchVitals")).length, 4);
});

test("through the bin: a failed re-login is exit 5 and says so once", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(route("/api/patient/fetchVitals"));
  const res = await run(["--json", "--concurrency", "1"], {
    env,
    onSpawn: async () => {
      await hold.waitFor();
      backend.expireTokens();
      backend.fault(isLogin, { kind: "status", status: 502 });
      hold.release();
    },
  });
  assert.equal(res.code, 5, res.stderr);
  assert.equal(
    res.stderr.match(/Re-login after a 401 failed: POST \/api\/login\/: HTTP 502/g)?.length,
    1,
  );
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "upstream");
  assert.equal(report.counts.not_started, 7);
  assert.equal(backend.requests.filter(isLogin).length, 2);
  assert.ok(!(res.stdout + res.stderr).includes(env.BACKEND_PASSWORD as string));
});

test("a fresh token equal to the stale one (same second) never causes an extra login", async (t) => {
  const { backend, env } = await startServices(t);
  // The real backend's JWTs carry only sub, iat and exp: two logins in the same second give the
  // same string. Every login here answers one fixed, valid token.
  const token = backend.issueToken("demo");
  backend.fault(isLogin, { kind: "body", body: JSON.stringify({ token, user: { id: 1 } }) });
  backend.fault(vitalsOf(1), expired, 1);
  backend.fault(vitalsOf(2), expired, 1);
  // Patient 2's first request went out with the token before patient 1's re-login; its 401
  // arrives only after that re-login is done.
  const hold = backend.hold(vitalsOf(2));
  const sweep = runSweep(sweepConfig(env, { concurrency: 2, patients: [1, 2] }));
  await hold.waitFor();
  await backend.waitForRequests(vitalsOf(1), 2);
  hold.release();
  const report = await sweep;
  assert.equal(report.exitCode, 0, report.error?.message);
  assert.equal(backend.requests.filter(isLogin).length, 2, "the first login and one re-login");
  assert.equal(backend.requests.filter(vitalsOf(2)).length, 2);
  assert.equal(report.counts.updated, 1);
});

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

test("BACKEND_TOKEN whose validation cannot say yes: one login with the username and password, else exit 5 as before", async (t) => {
  const isValidate = route("/api/validate/");
  const cases: Array<[string, Fault]> = [
    ["500", { kind: "status", status: 500 }],
    ["404", { kind: "status", status: 404, body: '{"detail":"Not Found"}' }],
    ["an HTML 200", { kind: "html" }],
    ["a reset", { kind: "reset" }],
  ];
  for (const [what, fault] of cases) {
    const { backend, env } = await startServices(t);
    backend.fault(isValidate, fault);
    const token = backend.issueToken("demo");
    const { credentials } = sweepConfig(env);
    const withLogin = await runSweep(
      sweepConfig(env, { credentials: { ...credentials, token }, dryRun: true }),
    );
    assert.equal(withLogin.error, null, what);
    assert.equal(backend.logins, 1, `${what}: one login`);

    // Without a username and password there is nothing to fall back on: the failure stands.
    const alone = await runSweep(sweepConfig(env, { credentials: { token }, dryRun: true }));
    assert.equal(alone.exitCode, 5, what);
    assert.match(alone.error?.message ?? "", /^Login failed: GET \/api\/validate\//, what);
    assert.equal(backend.logins, 1, `${what}: no login without credentials`);
  }
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

test("a 2xx write that does not confirm the status is failed unconfirmed_write; others keep http_<status>", async (t) => {
  const { backend, env } = await startServices(t);
  const patient = (pid: number, id: number) => JSON.stringify({ pid, status: { id, text: "x" } });
  backend.fault(writeOf(2), { kind: "body", status: 204, body: "" }, 1);
  backend.fault(writeOf(3), { kind: "body", body: "" }, 1);
  backend.fault(writeOf(5), { kind: "body", body: patient(5, 1) }, 1);
  backend.fault(writeOf(6), { kind: "body", body: patient(99, 1) }, 1);
  const report = await runSweep(sweepConfig(env, { retries: 2, patients: [2, 3, 5, 6] }));
  const byPid = (pid: number) => report.patients.find((p) => p.pid === pid) as PatientResult;
  for (const pid of [2, 3, 5, 6]) {
    const p = byPid(pid);
    assert.deepEqual([p.outcome, p.stage, p.reason], ["failed", "update", "unconfirmed_write"]);
    assert.match(
      p.detail ?? "",
      /HTTP 20[04] does not confirm status \d for this patient; it may nevertheless have been stored/,
    );
  }
  assert.equal(backend.requests.filter(writeOf(2)).length, 1, "a 2xx is not retried");

  backend.fault(writeOf(2), { kind: "status", status: 500 }, 3);
  const again = await runSweep(sweepConfig(env, { retries: 2, patients: [2] }));
  assert.deepEqual(
    again.patients.map((p) => [p.pid, p.outcome, p.reason]),
    [[2, "failed", "http_500"]],
  );
});

test("zone-less vital timestamps are UTC, whatever the machine's time zone", async (t) => {
  const { backend, ml, env } = await startServices(t);
  // Newest first in UTC: 65, 62, 63, 61, 64. Read in New York time (UTC-5 in November), the
  // zone-less ones would move five hours later and overtake the zoned ones.
  const stamps: Array<[number, string]> = [
    [61, "2026-11-26T12:00:00"],
    [62, "2026-11-26T14:00:00Z"],
    [63, "2026-11-26T13:00:00"],
    [64, "2026-11-26T11:00:00+00:00"],
    [65, "2026-11-26T15:00:00.250000"],
  ];
  const records = stamps.map(([heart_rate, timestamp]) => ({
    ...vital,
    heart_rate,
    pid: 1,
    timestamp,
  }));
  backend.fault(vitalsOf(1), { kind: "body", body: JSON.stringify(records) });
  const res = await run(["--json", "--patient", "1"], {
    env: { ...env, TZ: "America/New_York" },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(
    ml.predictions[0]?.vitals.map((v) => v.heart_rate),
    [65, 62, 63, 61, 64],
  );
});
