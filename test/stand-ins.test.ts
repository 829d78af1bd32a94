// The stand-ins must behave like the real services (/work/shared/contract.md), or every other test lies.
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { request } from "node:http";
import type { TestContext } from "node:test";
import { test } from "node:test";
import type { BackendOptions } from "./stand-ins/backend.ts";
import { startBackend } from "./stand-ins/backend.ts";
import type { MlOptions } from "./stand-ins/ml.ts";
import { predictStatus, startMl } from "./stand-ins/ml.ts";
import { demoPatients, makePatients } from "./stand-ins/seed.ts";
import type { Fault } from "./stand-ins/server.ts";

async function backend(t: TestContext, opts?: BackendOptions) {
  const b = await startBackend(opts);
  t.after(() => b.close());
  return b;
}
async function ml(t: TestContext, opts?: MlOptions) {
  const m = await startMl(opts);
  t.after(() => m.close());
  return m;
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const post = (body: unknown) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/;
const vitalsOf = (pid: number) => demoPatients().find((p) => p.pid === pid)?.vitals ?? [];

test("wrong slash form answers 307 with an absolute Location and an empty body", async (t) => {
  const b = await backend(t);
  let res = await fetch(`${b.url}/api/login`, { ...post({}), redirect: "manual" });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get("location"), `${b.url}/api/login/`);
  assert.equal(await res.text(), "");
  res = await fetch(`${b.url}/api/validate`, { redirect: "manual" });
  assert.equal(res.headers.get("location"), `${b.url}/api/validate/`);
  res = await fetch(`${b.url}/api/patient/fetchVitals/?key=1&limit=5`, { redirect: "manual" });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get("location"), `${b.url}/api/patient/fetchVitals?key=1&limit=5`);
  assert.equal(await res.text(), "");
  // the Location is built from the Host header, as behind nginx
  const viaNginx = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${b.url}/api/patient/fetchAllPatients/`, {
      headers: { host: "frontend" },
    });
    req.on("response", resolve).on("error", reject).end();
  });
  viaNginx.resume();
  assert.equal(viaNginx.headers.location, "http://frontend/api/patient/fetchAllPatients");
  res = await fetch(`${b.url}/api/nope`);
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { detail: "Not Found" });
  res = await fetch(`${b.url}/api/login/`);
  assert.equal(res.status, 405);
  assert.deepEqual(await res.json(), { detail: "Method Not Allowed" });
});

test("403 without usable credentials, 401 for invalid or expired tokens", async (t) => {
  const b = await backend(t);
  const validate = (headers: Record<string, string> = {}) =>
    fetch(`${b.url}/api/validate/`, { headers });
  const noCredentials: Array<Record<string, string>> = [
    {},
    { authorization: "Basic ZGVtbzpkZW1v" },
    { authorization: "Bearer" },
  ];
  for (const headers of noCredentials) {
    const res = await validate(headers);
    assert.equal(res.status, 403);
    assert.deepEqual(await res.json(), { detail: "Not authenticated" });
  }
  const token = b.issueToken("demo");
  const otherSignature = b.issueToken("demo").split(".")[2];
  const forged = token
    .split(".")
    .slice(0, 2)
    .concat(otherSignature ?? "")
    .join(".");
  for (const bad of ["garbage", forged, `${token}.x`]) {
    const res = await validate(bearer(bad));
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), null);
    assert.deepEqual(await res.json(), { detail: "Invalid token" });
  }
  assert.equal((await validate(bearer(token))).status, 200);
  b.expireTokens();
  let res = await validate(bearer(token));
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { detail: "Signature has expired" });
  res = await validate(bearer(b.issueToken("demo", -1)));
  assert.deepEqual(await res.json(), { detail: "Signature has expired" });
  assert.equal((await validate(bearer(b.issueToken("demo")))).status, 200, "new tokens work");
});

test("login: 200 with a JWT, 401 wrong password, 404 unknown user, 422 malformed; counted", async (t) => {
  const b = await backend(t, { users: { alice: "s3cret", bob: "pw" } });
  const login = (body: unknown) => fetch(`${b.url}/api/login/`, post(body));
  let res = await login({ username: "bob", password: "pw" });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { token: string; user: unknown };
  assert.deepEqual(body.user, { id: 2, username: "bob" });
  const [head, claims] = body.token
    .split(".")
    .slice(0, 2)
    .map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
  assert.equal(head.alg, "HS256");
  assert.equal(claims.sub, "bob");
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 86_400) < 5);
  res = await fetch(`${b.url}/api/validate/`, { headers: bearer(body.token) });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "2");
  res = await login({ username: "bob", password: "nope" });
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { detail: "Password is incorrect!" });
  res = await login({ username: "carol", password: "pw" });
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { detail: "Failed to find username" });
  res = await login({ username: "bob" });
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), {
    detail: [{ loc: ["body", "password"], msg: "field required", type: "value_error.missing" }],
  });
  assert.equal(b.logins, 4);
});

test("fetchAllPatients: the patient shape, ordered by status id only", async (t) => {
  const b = await backend(t);
  const token = b.issueToken("demo");
  const all = async (url: string) =>
    (await (
      await fetch(`${url}/api/patient/fetchAllPatients`, { headers: bearer(token) })
    ).json()) as Array<{
      pid: number;
      admit_time: string;
      status: { id: number; text: string };
    }>;
  const list = await all(b.url);
  assert.equal(list.length, 8);
  assert.deepEqual(
    list.map((p) => p.pid),
    [3, 4, 1, 2, 7, 5, 6, 8],
    "status 1, 9, 10; insertion order inside",
  );
  assert.deepEqual(list[0], {
    pid: 3,
    admit_time: "2026-11-22T17:02:44.090211",
    firstname: "Priya",
    lastname: "Raman",
    age: null,
    gender: "Female",
    status: { id: 1, text: "Alert" },
  });
  assert.equal(list.find((p) => p.pid === 2)?.admit_time, "2026-11-21T00:00:00");
  assert.deepEqual(list.find((p) => p.pid === 6)?.status, { id: 10, text: "Unobserved" });

  const big = makePatients(50, { seed: 3 });
  const s1 = await backend(t, { patients: big, shuffleSeed: 7 });
  const s2 = await backend(t, { patients: big, shuffleSeed: 7 });
  const foreign = await fetch(`${s1.url}/api/patient/fetchAllPatients`, { headers: bearer(token) });
  assert.equal(foreign.status, 401, "each stand-in signs with its own secret");
  const [x, y] = await Promise.all(
    [s1, s2].map(async (s) => {
      const res = await fetch(`${s.url}/api/patient/fetchAllPatients`, {
        headers: bearer(s.issueToken("demo")),
      });
      return (await res.json()) as Array<{
        pid: number;
        admit_time: string;
        status: { id: number };
      }>;
    }),
  );
  assert.ok(x && y);
  assert.deepEqual(
    x.map((p) => p.pid),
    y.map((p) => p.pid),
    "same seed, same order",
  );
  assert.ok(x.every((p, i) => i === 0 || (x[i - 1]?.status.id ?? 0) <= p.status.id));
  assert.ok(x.every((p) => ISO.test(p.admit_time)));
  const insertion = big.filter((p) => p.status === 9).map((p) => p.pid);
  const shuffled = x.filter((p) => p.status.id === 9).map((p) => p.pid);
  assert.notDeepEqual(shuffled, insertion, "shuffled inside a status");
  assert.deepEqual(
    [...shuffled].sort((m, n) => m - n),
    insertion,
  );
});

test("fetchVitals: newest first, limit, default 20, [] for unknown, 422 and 500 quirks", async (t) => {
  const b = await backend(t);
  const get = (query: string) =>
    fetch(`${b.url}/api/patient/fetchVitals${query}`, { headers: bearer(b.issueToken("demo")) });
  let res = await get("?key=7&limit=5");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), vitalsOf(7).slice(0, 5));
  assert.deepEqual(await (await get("?key=7")).json(), vitalsOf(7), "default limit 20 > 7");
  assert.deepEqual(await (await get("?key=8&limit=5")).json(), vitalsOf(8), "only 2 vitals");
  assert.deepEqual(await (await get("?key=999&limit=5")).json(), []);
  assert.deepEqual(await (await get("?key=7&limit=0")).json(), []);
  res = await get("?key=7&limit=-1");
  assert.equal(res.status, 500);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await res.text(), "Internal Server Error");
  res = await get("?limit=5");
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), {
    detail: [{ loc: ["query", "key"], msg: "field required", type: "value_error.missing" }],
  });
  res = await get("?key=x&limit=1.5");
  assert.deepEqual(await res.json(), {
    detail: [
      { loc: ["query", "key"], msg: "value is not a valid integer", type: "type_error.integer" },
      { loc: ["query", "limit"], msg: "value is not a valid integer", type: "type_error.integer" },
    ],
  });
  assert.equal((await fetch(`${b.url}/api/patient/fetchVitals?key=7`)).status, 403, "auth first");

  const v2 = await backend(t, { vitalTimestamps: true });
  res = await fetch(`${v2.url}/api/patient/fetchVitals?key=1&limit=5`, {
    headers: bearer(v2.issueToken("demo")),
  });
  const records = (await res.json()) as Array<{
    pid: number;
    timestamp: string;
    heart_rate: number;
  }>;
  assert.equal(records.length, 5);
  assert.ok(records.every((r) => r.pid === 1 && ISO.test(r.timestamp)));
  assert.ok((records[0]?.timestamp ?? "") > (records[1]?.timestamp ?? ""), "newest first");
});

test("updateStatus: 200 with the patient and recorded, 404 unknown pid, 500 text for unknown status", async (t) => {
  const b = await backend(t);
  const put = (query: string) =>
    fetch(`${b.url}/api/patient/updateStatus${query}`, {
      method: "PUT",
      headers: bearer(b.issueToken("demo")),
    });
  let res = await put("?pid=5&status=9");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    pid: 5,
    admit_time: "2026-11-25T09:30:00",
    firstname: "Noor",
    lastname: "Haddad",
    age: 38,
    gender: null,
    status: { id: 9, text: "Normal" },
  });
  assert.deepEqual(b.writes, [{ pid: 5, status: 9 }]);
  assert.equal(b.patients.get(5)?.status, 9);
  res = await put("?pid=404&status=9");
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { detail: "Failed to find patient" });
  res = await put("?pid=5&status=4");
  assert.equal(res.status, 500);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  assert.match(
    await res.text(),
    /^\(psycopg2\.errors\.ForeignKeyViolation\).*"patient_status_fkey"/,
  );
  res = await put("?pid=5");
  assert.equal(res.status, 422);
  assert.equal(((await res.json()) as { detail: unknown[] }).detail.length, 1);
  assert.equal((await fetch(`${b.url}/api/patient/updateStatus?pid=5&status=9`)).status, 405);
  assert.deepEqual(b.writes, [{ pid: 5, status: 9 }], "failures are not writes");
});

test("predict: 5 records give a forecast and a status; anything else a 422", async (t) => {
  const m = await ml(t);
  const predict = (body: unknown) => fetch(`${m.url}/predict`, post(body));
  for (const pid of [1, 2, 3, 6]) {
    const res = await predict(vitalsOf(pid).slice(0, 5));
    assert.equal(res.status, 200);
    const body = (await res.json()) as { vitals: Record<string, number>; status: unknown };
    const id = predictStatus(vitalsOf(pid).slice(0, 5));
    assert.deepEqual(body.status, { id, text: id === 1 ? "Alert" : "Normal" });
    assert.deepEqual(Object.keys(body.vitals).sort(), [
      "diastolic",
      "heart_rate",
      "respiration",
      "sao2",
      "systolic",
    ]);
  }
  assert.deepEqual(
    m.predictions.map((p) => p.status),
    [9, 1, 9, 1],
  );
  let res = await predict([]);
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), { detail: "Number of records not equal to 5" });
  res = await predict(vitalsOf(1).slice(0, 4));
  assert.deepEqual(await res.json(), { detail: "Number of records not equal to 5" });
  const bad: unknown[] = vitalsOf(1).slice(0, 5);
  bad[1] = { ...vitalsOf(1)[1], sao2: "high", extra: true };
  bad[3] = { heart_rate: 70, sao2: 98, respiration: 14, systolic: 120 };
  res = await predict(bad);
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), {
    detail: [
      { loc: ["body", 1, "sao2"], msg: "value is not a valid integer", type: "type_error.integer" },
      { loc: ["body", 3, "diastolic"], msg: "field required", type: "value_error.missing" },
    ],
  });
  res = await predict({ records: [] });
  assert.equal(res.status, 422);
  assert.ok(Array.isArray(((await res.json()) as { detail: unknown }).detail));
  const extra = vitalsOf(1)
    .slice(0, 5)
    .map((v) => ({ ...v, pid: 1, timestamp: "2026-01-01T00:00:00" }));
  assert.equal((await predict(extra)).status, 200, "extra fields are ignored");
  assert.equal(m.predictions.length, 5);
});

test("health: true, the nginx HTML page, or 404", async (t) => {
  const ok = await ml(t);
  let res = await fetch(`${ok.url}/health`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(await res.json(), true);
  const html = await ml(t, { health: "html" });
  for (const path of ["/health", "/", "/anything"]) {
    res = await fetch(`${html.url}${path}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await res.text(), /^<!doctype html>/);
  }
  res = await fetch(`${html.url}/predict`, post([]));
  assert.deepEqual(
    await res.json(),
    { detail: "Number of records not equal to 5" },
    "/predict reaches ML",
  );
  const missing = await ml(t, { health: "404" });
  res = await fetch(`${missing.url}/health`);
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { detail: "Not Found" });
});

test("hold keeps matching requests until release; close() does not hang on them", async (t) => {
  const m = await ml(t);
  const hold = m.hold((r) => r.path === "/health");
  let answered = false;
  const pending = fetch(`${m.url}/health`).then((res) => {
    answered = true;
    return res.json();
  });
  await hold.waitFor(1);
  assert.equal(hold.held, 1);
  assert.equal(m.requests.length, 1, "recorded before the hold");
  assert.deepEqual(await (await fetch(`${m.url}/predict`, post([]))).json(), {
    detail: "Number of records not equal to 5",
  });
  assert.equal(answered, false);
  hold.release();
  assert.equal(await pending, true);
  assert.equal(await (await fetch(`${m.url}/health`)).json(), true, "no longer held");
  await assert.rejects(m.hold(() => true).waitFor(1, 50), /timed out/);

  const b = await backend(t);
  b.hold(() => true);
  const stuck = fetch(`${b.url}/api/validate/`);
  await b.waitForRequests(() => true, 1);
  await b.close();
  await b.close();
  await assert.rejects(stuck);
});

test("faults: status with headers, reset, stall, html, malformed, body, oversize", async (t) => {
  const m = await ml(t);
  const health = (r: { path: string }) => r.path === "/health";
  const h = () => fetch(`${m.url}/health`);
  m.fault(
    health,
    { kind: "status", status: 429, body: "slow down", headers: { "retry-after": "2" } },
    1,
  );
  let res = await h();
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "2");
  assert.equal(await res.text(), "slow down");
  assert.equal(await (await h()).json(), true, "times: 1");
  m.fault(health, { kind: "status", status: 500 }, 1);
  res = await h();
  assert.equal(res.status, 500);
  assert.equal(await res.text(), "Internal Server Error");

  m.fault(health, { kind: "reset" }, 1);
  await assert.rejects(h(), TypeError);
  m.fault(health, { kind: "stall" }, 1);
  await assert.rejects(fetch(`${m.url}/health`, { signal: AbortSignal.timeout(100) }), {
    name: "TimeoutError",
  });
  m.fault(health, { kind: "html" }, 1);
  res = await h();
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<html/);
  m.fault(health, { kind: "malformed" }, 1);
  res = await h();
  assert.equal(res.headers.get("content-type"), "application/json");
  await assert.rejects(res.json(), SyntaxError);
  m.fault(health, { kind: "body", body: '"yes"' }, 1);
  assert.equal(await (await h()).json(), "yes");
  m.fault(health, { kind: "oversize", bytes: 3_000_001 }, 1);
  res = await h();
  const text = await res.text();
  assert.equal(Buffer.byteLength(text), 3_000_001);
  assert.ok(Array.isArray(JSON.parse(text)));
  assert.deepEqual(
    m.faulted.map((f) => [f.seq, f.fault.kind]),
    [
      [0, "status"],
      [2, "status"],
      [3, "reset"],
      [4, "stall"],
      [5, "html"],
      [6, "malformed"],
      [7, "body"],
      [8, "oversize"],
    ],
  );
  assert.equal(await (await h()).json(), true, "all used up");
});

test("chaos is reproducible for a seed", async (t) => {
  const faults: Fault[] = [{ kind: "status", status: 503 }, { kind: "reset" }, { kind: "html" }];
  const run = async (seed: number) => {
    const m = await ml(t);
    m.chaos({ seed, rate: 0.3, faults, match: (r) => r.path === "/predict" });
    for (let i = 0; i < 40; i++) {
      await fetch(`${m.url}/predict`, post([])).catch(() => undefined);
      await fetch(`${m.url}/health`);
    }
    return m.faulted.map((f) => `${f.seq}:${f.fault.kind}`);
  };
  const first = await run(42);
  assert.deepEqual(await run(42), first);
  assert.notDeepEqual(await run(43), first);
  assert.ok(first.length > 3 && first.length < 30, `about 30% of 40: ${first.length}`);
  assert.ok(
    first.every((f) => Number(f.split(":")[0]) % 2 === 0),
    "only matching requests",
  );
});

test("down() resets every request until up(); latency delays answers", async (t) => {
  const m = await ml(t);
  m.down();
  await assert.rejects(fetch(`${m.url}/health`), TypeError);
  m.up();
  assert.equal(await (await fetch(`${m.url}/health`)).json(), true);
  assert.equal(m.requests.length, 2);
  m.latencyMs = 60;
  const started = performance.now();
  await (await fetch(`${m.url}/health`)).json();
  assert.ok(performance.now() - started >= 55);
  await assert.rejects(
    m.waitForRequests((r) => r.method === "DELETE", 1, 20),
    /timed out/,
  );
});

test("makePatients(100000) is cheap and fetchAllPatients serves all of them", async (t) => {
  const started = performance.now();
  const patients = makePatients(100_000);
  assert.ok(performance.now() - started < 3000, "built quickly");
  assert.deepEqual(
    makePatients(3, { seed: 9 }).map((p) => p.vitals),
    makePatients(3, { seed: 9 }).map((p) => p.vitals),
  );
  assert.ok(patients.slice(0, 100).every((p) => p.vitals.length >= 5));
  const b = await backend(t, { patients });
  const res = await fetch(`${b.url}/api/patient/fetchAllPatients`, {
    headers: bearer(b.issueToken("demo")),
  });
  const list = (await res.json()) as Array<{ pid: number; status: { id: number } }>;
  assert.equal(list.length, 100_000);
  assert.ok(list.every((p, i) => i === 0 || (list[i - 1]?.status.id ?? 0) <= p.status.id));
  assert.equal(new Set(list.map((p) => p.pid)).size, 100_000);
});

test("the demo seed looks like the original database", () => {
  const seed = demoPatients();
  assert.equal(seed.length, 8);
  assert.deepEqual(new Set(seed.map((p) => p.status)), new Set([1, 9, 10]));
  assert.deepEqual(
    seed.filter((p) => p.vitals.length < 5).map((p) => p.vitals.length),
    [2],
  );
  assert.ok(seed.some((p) => p.age === null) && seed.some((p) => p.gender === null));
  assert.notEqual(demoPatients()[0], seed[0], "a fresh copy every time");
});
