/**
 * Pacing: the rate cap of `--max-rps` (per service, every attempt counted, abortable while it
 * waits) and the adaptive limiter of `--concurrency auto` (rises while latency is flat, falls on
 * overload answers and climbing latency, never past its max), against the stand-ins' capacity knob.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { RULES } from "../src/config/rules.ts";
import { adaptivePacing, type ConcurrencyCause } from "../src/core/pacing.ts";
import { runSweep, type SweepEvent } from "../src/index.ts";
import type { AttemptRecord } from "../src/services/http.ts";
import { createRateCap } from "../src/services/rate.ts";
import { configProblems, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { DEMO_USER, makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const answered = (durationMs: number, route = "GET /api/patient/fetchVitals"): AttemptRecord => ({
  service: "backend",
  route,
  status: 200,
  durationMs,
  reason: null,
});
const overloaded = (status: number | null, reason: AttemptRecord["reason"] = null) => ({
  ...answered(10),
  status,
  reason,
});

/** A limiter with its moves recorded; `demand` says whether patients wait for a slot. */
function limiter(max: number, demand = () => true) {
  const moves: Array<[number, ConcurrencyCause]> = [];
  const pacing = adaptivePacing({ max, demand, onChange: (n, cause) => moves.push([n, cause]) });
  /** Feeds answers of this latency until `until` holds or `count` have gone by. */
  const feed = (durationMs: number, count: number, until = () => false) => {
    for (let i = 0; i < count && !until(); i++) pacing.observe(answered(durationMs));
  };
  return { pacing, moves, feed };
}

test("auto starts at 1 and rises while latency stays at its floor, never past its max", () => {
  const { pacing, moves, feed } = limiter(20);
  assert.equal(pacing.concurrency, 1);
  feed(10, 5_000);
  assert.equal(pacing.concurrency, 20);
  assert.ok(moves.length > 1);
  for (const [n, cause] of moves) {
    assert.equal(cause, "headroom");
    assert.ok(n <= 20, `${n}`);
  }
  assert.deepEqual(pacing.range(), { min: 1, max: 20, final: 20 });
});

test("auto does not rise while no patient waits for a slot", () => {
  const { pacing, moves, feed } = limiter(20, () => false);
  feed(10, 1_000);
  assert.equal(pacing.concurrency, 1);
  assert.deepEqual(moves, []);
});

test("a 429 or a 503 takes the concurrency a step back at once, a 504 or a timeout halves it; the next window's are old news", () => {
  for (const [attempt, keep] of [
    [overloaded(429), 0.9],
    [overloaded(503), 0.9],
    [overloaded(504), 0.5],
    [overloaded(null, "timeout"), 0.5],
  ] as const) {
    const { pacing, moves, feed } = limiter(64);
    feed(10, 5_000, () => pacing.concurrency >= 32);
    const before = pacing.concurrency;
    pacing.observe(attempt);
    const cut = Math.floor(before * keep);
    assert.equal(pacing.concurrency, cut, JSON.stringify(attempt));
    assert.deepEqual(moves.at(-1), [cut, "overload"]);
    // Answers to requests sent at the old limit: no second cut until a window has gone by.
    pacing.observe(attempt);
    assert.equal(pacing.concurrency, cut);
    feed(10, cut * 3); // one window at the new limit (three answers per patient)
    pacing.observe(attempt);
    assert.equal(pacing.concurrency, Math.floor(cut * keep));
  }
});

test("after a shed, the concurrency grows again only after many windows, and then one step at a time", () => {
  const { pacing, feed } = limiter(64);
  feed(10, 5_000, () => pacing.concurrency >= 12);
  const before = pacing.concurrency;
  pacing.observe(overloaded(503));
  const after = pacing.concurrency;
  assert.ok(after < before);
  const rounds = (n: number, concurrency: number) => n * 3 * concurrency; // a window a round
  feed(10, rounds(6, after));
  assert.equal(pacing.concurrency, after, "held where the cut left it");
  feed(10, rounds(40, after), () => pacing.concurrency > after);
  assert.equal(pacing.concurrency, after + 1, "one more tried once enough windows went by");
  feed(10, rounds(3, after + 1));
  assert.equal(pacing.concurrency, after + 1, "held at it a while");
  feed(10, rounds(40, after + 1), () => pacing.concurrency > after + 1);
  assert.equal(pacing.concurrency, after + 2, "the service took it: growing again");
});

test("latency that climbs past the tolerance cuts the concurrency; a connection refused does not", () => {
  const { pacing, moves, feed } = limiter(64);
  feed(10, 5_000, () => pacing.concurrency >= 16);
  pacing.observe(overloaded(null, "unreachable"));
  pacing.observe({ ...answered(10), status: 500 });
  assert.equal(pacing.concurrency, 16);
  feed(40, 200);
  assert.ok(pacing.concurrency < 16, `${pacing.concurrency}`);
  assert.ok(moves.some(([, cause]) => cause === "latency"));
  // Back at the floor, it grows again once a few windows went by: one at a time.
  const low = pacing.concurrency;
  const cuts = moves.length;
  feed(10, 600);
  assert.ok(pacing.concurrency > low);
  let last = low;
  for (const [n, cause] of moves.slice(cuts)) {
    assert.deepEqual([n, cause], [last + 1, "headroom"]);
    last = n;
  }
});

test("auto against a flat backend rises to its max and never has more patients in flight", async (t) => {
  const { backend, ml, env } = await startServices(t, {
    backend: { patients: makePatients(90) },
  });
  // Service times well above the machine's jitter keep the latency flat at this load.
  backend.latencyMs = 50;
  ml.latencyMs = 20;
  const events: SweepEvent[] = [];
  const report = await runSweep(sweepConfig(env, { concurrency: 3, adaptive: true }), {
    onEvent: (e) => events.push(e),
  });
  assert.equal(report.exitCode, 0);
  assert.equal(report.concurrency, 3);
  assert.equal(report.adaptive?.min, 1);
  assert.equal(report.adaptive?.max, 3);
  const moves = events.filter((e) => e.type === "concurrency_changed");
  assert.ok(moves.some((e) => e.concurrency === 3));
  for (const e of moves) assert.ok(e.concurrency >= 1 && e.concurrency <= 3, `${e.concurrency}`);
  // One request at a time per patient: in flight at a service never exceeds the patients.
  assert.ok(backend.peakInFlight <= 3, `${backend.peakInFlight}`);
  assert.ok(ml.peakInFlight <= 3, `${ml.peakInFlight}`);
});

test("auto: a 429 lowers the concurrency before it is retried, and the patient still succeeds", async (t) => {
  const { backend, ml, env } = await startServices(t, {
    backend: { patients: makePatients(80) },
  });
  backend.latencyMs = 20;
  ml.latencyMs = 10;
  // Three 429s, once the limiter has risen above 1 (a cut from 1 would change nothing); three
  // retries outlast them even if one request meets all three.
  let risen = false;
  const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";
  backend.fault((r) => risen && isVitals(r), { kind: "status", status: 429 }, 3);
  const events: SweepEvent[] = [];
  const report = await runSweep(sweepConfig(env, { concurrency: 16, adaptive: true, retries: 3 }), {
    onEvent: (e) => {
      events.push(e);
      if (e.type === "concurrency_changed" && e.concurrency > 1) risen = true;
    },
  });
  assert.equal(report.exitCode, 0, JSON.stringify(report.counts));
  const cut = events.findIndex((e) => e.type === "concurrency_changed" && e.cause === "overload");
  const retried = events.findIndex(
    (e) => e.type === "request_done" && e.attempts > 1 && e.status === 200,
  );
  assert.ok(cut >= 0, "an overload cut");
  assert.ok(retried >= 0, "a request answered 429, then 200");
  assert.ok(cut < retried, "the cut came before the retried request ended");
});

test("auto: 429s that exhaust their retries count toward the breaker, as with a fixed number", async (t) => {
  const { backend, env } = await startServices(t, {
    backend: { patients: makePatients(20) },
  });
  backend.fault((r) => r.path === "/api/patient/fetchVitals", { kind: "status", status: 429 });
  const res = await run(["--json", "--concurrency", "auto:8", "--retries", "1", "--breaker", "3"], {
    env,
  });
  assert.equal(res.code, 6, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "aborted");
  assert.match(report.error.message, /3 patients in a row failed because the backend/);
  assert.equal(report.concurrency, 8);
  assert.equal(report.adaptive.final, 1);
  const failed = report.patients.filter((p: { outcome: string }) => p.outcome === "failed");
  assert.ok(failed.length >= 3);
  for (const p of failed) assert.equal(p.reason, "http_429");
});

/** The most requests that arrived within any one second (a window starting at each arrival). */
function busiestSecond(requests: RecordedRequest[]): number {
  const at = requests.map((r) => r.at).toSorted((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; j < at.length; j++) {
    while ((at[j] as number) - (at[i] as number) >= 1000) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

test("--max-rps holds at each service over every one-second window, by the stand-ins' clocks", async (t) => {
  const { backend, ml, env } = await startServices(t, {
    backend: { patients: makePatients(150) },
  });
  // A dry run asks each service once per patient: both are held to the cap.
  const res = await run(["--json", "--dry-run", "--concurrency", "16", "--max-rps", "40"], {
    env,
    timeoutMs: 60_000,
  });
  assert.equal(res.code, 0, res.stderr);
  // About 150 requests to each service: nearly four seconds at 40 per second.
  assert.equal(backend.requests.length, 152);
  assert.equal(ml.requests.length, 151);
  for (const service of [backend, ml]) {
    const most = busiestSecond(service.requests);
    assert.ok(most <= 44, `${most} requests in one second, over 40 + 10%`);
  }
});

test("a retry waits for the rate cap like any request", async (t) => {
  const { backend, env } = await startServices(t);
  const isCheck = (r: RecordedRequest) => r.path === "/api/validate/";
  backend.fault(isCheck, { kind: "status", status: 503 }, 1);
  const token = backend.issueToken(DEMO_USER.username);
  const abort = new AbortController();
  t.after(() => abort.abort()); // a failed assertion must not leave the sweep waiting 1000 s
  // One request per 1000 s: the token check goes at once, its retry waits for the next slot.
  const config = sweepConfig(env, { maxRps: 0.001, retries: 2, retryDelayMs: 1 });
  const sweep = runSweep({ ...config, credentials: { token } }, { signal: abort.signal });
  await backend.waitForRequests(isCheck, 1);
  const retried = await backend.waitForRequests(isCheck, 2, 750).then(
    () => true,
    () => false,
  );
  assert.equal(retried, false, "the retry went out without waiting for its slot");
  abort.abort();
  const report = await sweep;
  assert.equal(report.error?.code, "sigterm");
  assert.equal(backend.requests.length, 1);
});

test("an aborted wait for the rate cap ends at once and leaves no timer behind", {
  timeout: 5_000,
}, async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  const before = timers();
  const cap = createRateCap(0.001); // one request per 1000 s
  await cap.take(); // the first goes at once
  assert.equal(timers(), before, "nothing waits, nothing is scheduled");
  const first = new AbortController();
  const second = new AbortController();
  const order: string[] = [];
  const waits = [
    cap.take(first.signal).then(() => order.push("first")),
    cap.take(second.signal).then(() => order.push("second")),
  ];
  assert.equal(timers(), before + 1, "one timer for the head of the queue");
  second.abort();
  first.abort();
  await Promise.all(waits);
  assert.deepEqual(order, ["second", "first"], "each ended by its own abort, not by a slot");
  assert.equal(timers(), before, "the queue is empty: its timer is gone");
  await cap.take(AbortSignal.abort()); // already aborted: resolves without a slot
  assert.equal(timers(), before);
});

test("each service has its own budget, and a request waiting for its slot is aborted with the sweep", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const token = backend.issueToken(DEMO_USER.username);
  const abort = new AbortController();
  t.after(() => abort.abort()); // a failed assertion must not leave the sweep waiting 1000 s
  const sweep = runSweep(sweepConfig(env, { maxRps: 0.001, credentials: { token } }), {
    signal: abort.signal,
  });
  // The backend's slot went to the token check; the ML server's own budget lets its check go.
  await ml.waitForRequests((r) => r.path === "/health", 1);
  assert.deepEqual(
    backend.requests.map((r) => r.path),
    ["/api/validate/"],
  );
  // The patient list waits for the backend's next slot, 1000 s away: the abort ends the wait.
  const isList = (r: RecordedRequest) => r.path === "/api/patient/fetchAllPatients";
  const listed = await backend.waitForRequests(isList, 1, 500).then(
    () => true,
    () => false,
  );
  assert.equal(listed, false, "the patient list went out without waiting for its slot");
  abort.abort();
  const report = await sweep;
  assert.equal(report.error?.code, "sigterm");
  assert.deepEqual(
    backend.requests.map((r) => r.path),
    ["/api/validate/"],
  );
});

test("--deadline still ends a run whose request waits for the rate cap (exit 8)", async (t) => {
  const { backend, env } = await startServices(t);
  const res = await run(["--json", "--max-rps", "0.01", "--deadline", "0.5", "--grace", "0.2"], {
    env,
    timeoutMs: 20_000,
  });
  assert.equal(res.code, 8, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "deadline");
  assert.deepEqual(
    backend.requests.map((r) => r.path),
    ["/api/login/"],
  );
});

test("--max-rps and --concurrency auto: their rules, as a flag (exit 2) and a variable (exit 3)", () => {
  for (const value of ["0", "-1", "abc", "1e3", "10001", ".5", "1.", "Infinity"]) {
    assert.equal(RULES.requestsPerSecond.safeParse(value).success, false, value);
  }
  for (const [value, rps] of [
    ["0.2", 0.2],
    ["40", 40],
    ["10000", 10_000],
  ] as const) {
    assert.equal(RULES.requestsPerSecond.parse(value), rps);
  }
  for (const value of ["auto:0", "auto:1025", "auto:", "automatic", "auto:8x", "AUTO", "0"]) {
    assert.equal(RULES.concurrency.safeParse(value).success, false, value);
  }
  assert.deepEqual(RULES.concurrency.parse("auto"), { auto: 64 });
  assert.deepEqual(RULES.concurrency.parse("auto:1024"), { auto: 1024 });
  assert.equal(RULES.concurrency.parse("12"), 12);

  // As a flag (a usage error, exit 2) and a variable (exit 3), in the words the bin prints.
  assert.match(
    usageError(["--max-rps", "0"]),
    /'--max-rps <n>' .* must be a number of requests per second/,
  );
  assert.deepEqual(
    configProblems({ ...USABLE_ENV, MAX_RPS: "fast" }).map((l) => l.split(" (")[0]),
    ["MAX_RPS must be a number of requests per second from 0.001 to 10000"],
  );
  assert.match(
    usageError(["--concurrency", "auto:0"]),
    /'--concurrency <n>' .* or auto or auto:<max>/,
  );
});

test("the report: concurrency is the number, or auto's max; adaptive is auto's range, else null", async (t) => {
  const { env } = await startServices(t);
  const fixed = await run(["--json", "--max-rps", "500"], { env });
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.equal(parseReport(fixed.stdout).concurrency, 4);
  assert.equal(parseReport(fixed.stdout).adaptive, null);
  const auto = await run(["--json", "--concurrency", "auto"], { env: { ...env, MAX_RPS: "500" } });
  assert.equal(auto.code, 0, auto.stderr);
  assert.equal(parseReport(auto.stdout).concurrency, 64);
  const capped = await run(["--json"], { env: { ...env, CONCURRENCY: "auto:3" } });
  const report = parseReport(capped.stdout);
  assert.equal(report.concurrency, 3);
  assert.equal(report.adaptive.min, 1);
  assert.ok(report.adaptive.max <= 3, JSON.stringify(report.adaptive));
  assert.ok(report.adaptive.final >= 1 && report.adaptive.final <= report.adaptive.max);
});

test("auto's moves are debug log lines, and the metrics export where it ended", async (t) => {
  const { backend, ml, env } = await startServices(t, {
    backend: { patients: makePatients(60) },
  });
  backend.latencyMs = 20;
  ml.latencyMs = 10;
  const path = join(tempDir(t, "pacing"), "ml_scheduler.prom");
  const res = await run(
    [
      "--json",
      "--concurrency",
      "auto:3",
      "--metrics-file",
      path,
      "--log-format",
      "json",
      "--verbose",
    ],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  const report = parseReport(res.stdout);
  const moves = res.stderr
    .split("\n")
    .filter((line) => line.includes('"concurrency"'))
    .map((line) => JSON.parse(line));
  assert.ok(moves.length > 0, "the limiter moved at least once");
  for (const move of moves) {
    assert.equal(move.level, "debug");
    assert.ok(["headroom", "latency", "overload"].includes(move.cause), move.cause);
    assert.ok(move.concurrency >= 1 && move.concurrency <= 3, move.concurrency);
  }
  assert.equal(moves.at(-1).concurrency, report.adaptive.final);
  const metric = /^ml_scheduler_concurrency (\d+)$/m.exec(readFileSync(path, "utf8"));
  assert.equal(Number(metric?.[1]), report.adaptive.final);
});

test("the capacity stand-in queues requests above k in flight and answers 429 above 2k", async (t) => {
  const { backend } = await startServices(t);
  backend.capacity = 1;
  const hold = backend.hold(() => true);
  const get = () => fetch(`${backend.url}/api/validate/`).then((r) => r.status);
  const first = get();
  await hold.waitFor(1);
  const second = get();
  await backend.waitForRequests(() => true, 2);
  // The second waits for the one worker, so it has not reached the hold.
  assert.equal(hold.held, 1);
  assert.equal(backend.inFlight, 2);
  assert.equal(await get(), 429);
  assert.equal(backend.overloaded, 1);
  hold.release();
  // No token: the backend's own answer, once past the worker.
  assert.deepEqual(await Promise.all([first, second]), [403, 403]);
  assert.equal(backend.peakInFlight, 3);
});

test("the capacity knob's slowing shape: each request above the threshold adds latency, 429 above the limit", async (t) => {
  const { backend } = await startServices(t);
  backend.capacity = { shape: "slows", threshold: 1, extraMs: 100, limit: 2 };
  const served: Array<[string, number]> = [];
  backend.onServed = (r, ms) => served.push([r.path, ms]);
  const hold = backend.hold((r) => r.path === "/api/validate/");
  const validate = fetch(`${backend.url}/api/validate/`).then((r) => r.status);
  await hold.waitFor(1);
  // Second in flight: one above the threshold, so 100 ms more than the held one's share.
  const login = await fetch(`${backend.url}/api/login/`, { method: "POST", body: "{}" });
  assert.equal(login.status, 422);
  const [path, ms] = served[0] ?? [];
  assert.equal(path, "/api/login/");
  // At least most of the 100 ms (timers start from the event loop's cached clock, a little before
  // the arrival was stamped); a request without the extra takes a few milliseconds.
  assert.ok((ms ?? 0) >= 50, `${ms} ms`);
  // Third in flight while two are: above the limit of 2, shed at once.
  const other = backend.hold((r) => r.path === "/api/patient/fetchAllPatients");
  const list = fetch(`${backend.url}/api/patient/fetchAllPatients`).then((r) => r.status);
  await other.waitFor(1);
  const shed = await fetch(`${backend.url}/api/validate/`);
  assert.equal(shed.status, 429);
  assert.equal(shed.headers.get("retry-after"), null);
  assert.equal(backend.overloaded, 1);
  hold.release();
  other.release();
  assert.deepEqual(await Promise.all([validate, list]), [403, 403]);
  assert.equal(served.length, 3, "the shed request is not among those served");
});

test("the capacity knob's shedding shape answers its status with Retry-After: 1 above the threshold", async (t) => {
  const { backend, ml } = await startServices(t);
  backend.capacity = { shape: "sheds", threshold: 1, status: 503 };
  const hold = backend.hold(() => true);
  const first = fetch(`${backend.url}/api/validate/`).then((r) => r.status);
  await hold.waitFor(1);
  const shed = await fetch(`${backend.url}/api/validate/`);
  assert.equal(shed.status, 503);
  assert.equal(shed.headers.get("retry-after"), "1");
  assert.equal(backend.overloaded, 1);
  hold.release();
  assert.equal(await first, 403);
  // The same knob on the ML server, shedding with 429 above none in flight: every request.
  ml.capacity = { shape: "sheds", threshold: 0, status: 429 };
  const predict = await fetch(`${ml.url}/predict`, { method: "POST", body: "[]" });
  assert.equal(predict.status, 429);
  assert.equal(predict.headers.get("retry-after"), "1");
  assert.equal(ml.overloaded, 1);
  ml.capacity = undefined;
  assert.equal((await fetch(`${ml.url}/health`)).status, 200);
});
