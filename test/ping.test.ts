/**
 * `--ping-url`: the healthchecks.io protocol through the real bin, against a ping stand-in on
 * 127.0.0.1 that records every ping (method, path, query, body) in arrival order.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { OUTCOMES } from "../src/core/report.ts";
import { pingBody, pingUrl } from "../src/notify/ping.ts";
import { sendWithin, sideChannel } from "../src/notify/send.ts";
import { usageError } from "./helpers/argv.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { demoPatients, secretsOf, startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { CHECK_UUID, type Ping, startPing } from "./stand-ins/ping.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";

async function pingServer(t: TestContext) {
  const ping = await startPing();
  t.after(() => ping.close());
  return ping;
}

/** The pings as `METHOD signal`, in arrival order. */
const sequence = (pings: Ping[]) => pings.map((p) => `${p.method} ${p.signal}`);

/** The end ping's body, checked to hold the exit code, the error code and the counts only. */
function endBody(ping: Ping | undefined) {
  assert.ok(ping, "an end ping");
  const body = JSON.parse(ping.body);
  assert.deepEqual(Object.keys(body).toSorted(), ["counts", "error", "exitCode"]);
  if (body.counts !== null) {
    assert.deepEqual(Object.keys(body.counts).toSorted(), ["selected", ...OUTCOMES].toSorted());
  }
  return body;
}

/** The ping warnings on stderr; none names the check's URL (anyone holding it can ping). */
function pingWarnings(stderr: string): string[] {
  assert.ok(!stderr.includes(CHECK_UUID), "the check's URL is never logged");
  return stderr.split("\n").filter((line) => /\bping\b/.test(line));
}

test("pingUrl appends the signal to the URL's path and keeps its own query as given", () => {
  const rid = "3f0c6e1a-0000-4000-8000-000000000000";
  assert.equal(
    pingUrl("https://hc.example/ping/abc", "start", rid).href,
    `https://hc.example/ping/abc/start?rid=${rid}`,
  );
  assert.equal(
    pingUrl("https://hc.example/ping/abc/?create=1&slug=a%20b", 7, rid).href,
    `https://hc.example/ping/abc/7?create=1&slug=a%20b&rid=${rid}`,
  );
  assert.equal(
    pingUrl("http://hc.example:8000", 0, rid).href,
    `http://hc.example:8000/0?rid=${rid}`,
  );
  const body = pingBody({ exitCode: 3, error: { code: "config" } });
  assert.deepEqual(JSON.parse(body), { exitCode: 3, error: "config", counts: null });
});

test("a sweep pings start, then /0, both with the report's runId as rid", async (t) => {
  const { env } = await startServices(t);
  const ping = await pingServer(t);
  const res = await run(["--json"], { env: { ...env, PING_URL: ping.checkUrl } });
  assert.equal(res.code, 0, res.stderr);
  const report = parseReport(res.stdout);
  assert.match(report.runId, UUID);
  assert.deepEqual(sequence(ping.pings), ["GET start", "POST 0"]);
  for (const p of ping.pings) assert.equal(p.rid, report.runId);
  assert.equal(ping.pings[0]?.body, "", "the start ping has no body");
  assert.deepEqual(endBody(ping.pings[1]), { exitCode: 0, error: null, counts: report.counts });
  assert.deepEqual(pingWarnings(res.stderr), []);
});

test("a failing patient pings /1 with the counts, and no pid, name, password or token", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const ping = await pingServer(t);
  const token = "stale-token-4f1d";
  const res = await run(["--json", "--retries", "0"], {
    env: { ...env, BACKEND_TOKEN: token, PING_URL: ping.checkUrl },
  });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  assert.deepEqual(sequence(ping.pings), ["GET start", "POST 1"]);
  const body = endBody(ping.pings[1]);
  assert.deepEqual(body, { exitCode: 1, error: null, counts: report.counts });
  assert.equal(body.counts.failed, 1);
  for (const p of ping.pings) {
    const sent = `${p.url}\n${p.body}`;
    assert.doesNotMatch(sent, /pid/i);
    for (const secret of secretsOf(demoPatients(), [token])) assert.ok(!sent.includes(secret));
  }
});

test("a config error that still resolves PING_URL pings /3 without a start", async (t) => {
  const ping = await pingServer(t);
  const res = await run(["--json"], {
    env: { ML_SERVER: "http://ml:8000", PING_URL: ping.checkUrl },
  });
  assert.equal(res.code, 3, res.stderr);
  assert.match(res.stderr, /PATIENT_SERVER is required/);
  assert.deepEqual(sequence(ping.pings), ["POST 3"]);
  assert.equal(ping.pings[0]?.rid, parseReport(res.stdout).runId);
  assert.deepEqual(endBody(ping.pings[0]), { exitCode: 3, error: "config", counts: null });
});

test("a held lock pings /7 without a start, and no request reaches the services", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const ping = await pingServer(t);
  const lock = join(tempDir(t, "ping"), "sweep.lock");
  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const res = await run(["--lock", lock], { env: { ...env, PING_URL: ping.checkUrl } });
  assert.equal(res.code, 7, res.stderr);
  assert.deepEqual(sequence(ping.pings), ["POST 7"]);
  assert.match(ping.pings[0]?.rid ?? "", UUID);
  assert.deepEqual(endBody(ping.pings[0]), { exitCode: 7, error: "locked", counts: null });
  assert.equal(backend.requests.length + ml.requests.length, 0);
});

test("a ping URL with its own query keeps it on every ping, rid added", async (t) => {
  const { env } = await startServices(t);
  const ping = await pingServer(t);
  const res = await run(["--ping-url", `${ping.checkUrl}/?create=1&slug=ward%203`], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(sequence(ping.pings), ["GET start", "POST 0"]);
  for (const p of ping.pings) {
    assert.match(p.url, /\?create=1&slug=ward%203&rid=[0-9a-f-]{36}$/);
    assert.equal(p.query.get("slug"), "ward 3");
    assert.match(p.rid ?? "", UUID);
  }
});

test("a ping server that is down: each ping tried twice, one warning each, exit code unchanged", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const ping = await pingServer(t);
  ping.down();
  const res = await run(["--retries", "0"], { env: { ...env, PING_URL: ping.checkUrl } });
  assert.equal(res.code, 1, res.stderr);
  assert.deepEqual(sequence(ping.pings), ["GET start", "GET start", "POST 1", "POST 1"]);
  const warnings = pingWarnings(res.stderr);
  assert.equal(warnings.length, 2, res.stderr);
  assert.match(warnings[0] ?? "", /start ping to http:\/\/127\.0\.0\.1:\d+ failed .* 2 attempts/);
  assert.match(warnings[1] ?? "", /end ping \(exit 1\) .* failed .*exit code is unchanged/);
});

test("a stalled ping server costs at most its timeout and one retry; the end ping still follows the start", async (t) => {
  const { env } = await startServices(t);
  const ping = await pingServer(t);
  ping.fault((r) => r.path.endsWith("/start"), { kind: "stall" });
  const res = await run(["--json"], {
    env: { ...env, PING_URL: ping.checkUrl },
    timeoutMs: 20_000,
  });
  assert.equal(res.signal, null, "the test had to kill it: a ping never timed out");
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(sequence(ping.pings), ["GET start", "GET start", "POST 0"]);
  const warnings = pingWarnings(res.stderr);
  assert.equal(warnings.length, 1, res.stderr);
  assert.match(
    warnings[0] ?? "",
    /start ping .* failed \(no answer within 3 s, after 2 attempts\)/,
  );
  assert.equal(endBody(ping.pings[2]).exitCode, 0);
});

test("--deadline: a stalled ping server cannot keep the process past the deadline's bound", async (t) => {
  const { env } = await startServices(t);
  const ping = await pingServer(t);
  ping.fault(() => true, { kind: "stall" });
  // A bound of 2 + 0.2 + 1.5 s: the start ping gets half of what is left once the run starts, which
  // stays well above the 100 ms a ping needs to be tried, however loaded the machine is.
  const res = await run(["--json", "--deadline", "2", "--grace", "0.2"], {
    env: { ...env, PING_URL: ping.checkUrl },
    timeoutMs: 10_000,
  });
  assert.equal(res.signal, null, "the test had to kill it: a ping outlived the deadline's bound");
  assert.equal(res.code, parseReport(res.stdout).exitCode, "the pings changed no exit code");
  assert.equal(ping.pings[0]?.signal, "start");
  const warnings = pingWarnings(res.stderr);
  assert.equal(warnings.length, 2, res.stderr);
  assert.match(warnings[0] ?? "", /start ping .* failed \(stopped at the --deadline bound\)/);
  assert.match(
    warnings[1] ?? "",
    /end ping .* failed \((stopped at|no time left before) the --deadline bound\)/,
  );
});

test("a budget of a fractional millisecond (half an odd time left, the start ping's share) is a request, not a bug", async (t) => {
  const ping = await pingServer(t);
  const url = pingUrl(ping.checkUrl, "start", "3f0c6e1a-0000-4000-8000-000000000000");
  const sent = await sendWithin(
    sideChannel(url.origin, {}),
    url,
    { method: "GET" },
    1937 / 2,
    new AbortController().signal,
  );
  assert.ok("status" in sent, JSON.stringify(sent));
  assert.equal(sent.status, 200);
  assert.deepEqual(sequence(ping.pings), ["GET start"]);
});

test("check sends no ping: it is a smoke test, not the scheduled run", async (t) => {
  const { env } = await startServices(t);
  const ping = await pingServer(t);
  const res = await run(["check"], { env: { ...env, PING_URL: ping.checkUrl } });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(ping.pings, []);
});

test("a bad ping URL is one line naming it: exit 3 from PING_URL, exit 2 from --ping-url", async (t) => {
  // The bin once: PING_URL with a password is exit 3, named, the password never shown.
  const { env } = await startServices(t);
  const withCredentials = await run([], {
    env: { ...env, PING_URL: "https://user:hunter2@hc.example/ping/abc" },
  });
  assert.equal(withCredentials.code, 3, withCredentials.stderr);
  assert.match(withCredentials.stderr, /PING_URL must not carry credentials/);
  assert.ok(!withCredentials.stderr.includes("hunter2"));
  // The flag's rules in-process (a usage error, exit 2).
  const ftp = usageError(["--ping-url", "ftp://hc.example/ping/abc"]);
  assert.match(ftp, /--ping-url.*must be an http:\/\/ or https:\/\/ URL/);
  const rid = usageError(["--ping-url", "https://hc.example/ping/abc?rid=1"]);
  assert.match(rid, /must not set rid/);
});
