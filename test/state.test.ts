/**
 * State between runs (`--state-dir`): the token cache and the fair order of the patient list,
 * through the real bin against the stand-ins, plus the state files' own rules.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { z } from "zod";
import { nextOffset } from "../src/core/order.ts";
import { runSweep } from "../src/core/sweep.ts";
import { offsetStore, openStateDir, tokenCache } from "../src/host/state.ts";
import { parseReport, type RunResult, run } from "./helpers/exec.ts";
import { demoPatients, secretsOf, startServices, sweepConfig } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import type { Backend, SeedPatient } from "./stand-ins/backend.ts";
import { DEMO_USER } from "./stand-ins/seed.ts";
import type { Fault, RecordedRequest } from "./stand-ins/server.ts";

const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";
const TOKEN_FILE = /^token-[0-9a-f]{32}\.json$/;
const OFFSET_FILE = /^offset-[0-9a-f]{32}\.json$/;
const mode = (path: string) => statSync(path).mode & 0o777;

/** The prediction memory's files (test/reuse.test.ts studies them). */
const PREDICTION_FILES = /^(prediction-key\.json|predictions-[0-9a-f]{32}\.txt)$/;

/** The state directory's files by kind; fails on anything else (a temp file left behind). */
function stateFiles(dir: string): { token: string; offset: string } {
  const names = readdirSync(dir).filter((n) => !PREDICTION_FILES.test(n));
  const token = names.filter((n) => TOKEN_FILE.test(n));
  const offset = names.filter((n) => OFFSET_FILE.test(n));
  assert.equal(token.length, 1, `one token file in ${names}`);
  assert.equal(offset.length, 1, `one offset file in ${names}`);
  assert.equal(names.length, 2, `nothing else: ${names}`);
  return { token: join(dir, token[0] as string), offset: join(dir, offset[0] as string) };
}

const cachedToken = (file: string): string => JSON.parse(readFileSync(file, "utf8")).token;

/** The bearer tokens of the requests from `from` on. */
function bearersSince(backend: Backend, from: number): Set<string> {
  const tokens = new Set<string>();
  for (const r of backend.requests.slice(from)) {
    const header = r.headers.authorization;
    if (typeof header === "string") tokens.add(header.replace(/^Bearer /, ""));
  }
  return tokens;
}

function assertClean(res: RunResult, secrets: string[]) {
  const output = res.stdout + res.stderr;
  for (const secret of secrets) assert.ok(!output.includes(secret), "a secret reached the output");
}

const sweep = (env: Record<string, string>, dir: string, args: string[] = []) =>
  run(["--json", "--verbose", "--state-dir", dir, ...args], { env });

test("two runs with one state directory make one login in all; the directory is 0700, its files 0600", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = join(tempDir(t, "state"), "nested", "state");
  const first = await sweep(env, dir);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(backend.logins, 1);
  assert.equal(mode(dir), 0o700);
  const files = stateFiles(dir);
  assert.equal(mode(files.token), 0o600);
  assert.equal(mode(files.offset), 0o600);
  const kept = JSON.parse(readFileSync(files.token, "utf8"));
  assert.deepEqual(
    { version: kept.version, origin: kept.origin, username: kept.username },
    { version: 1, origin: new URL(backend.url).origin, username: DEMO_USER.username },
  );

  // STATE_DIRECTORY is what systemd's StateDirectory= sets.
  const before = backend.requests.length;
  const second = await run(["--json", "--verbose"], { env: { ...env, STATE_DIRECTORY: dir } });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(backend.logins, 1, "the second run reused the kept token");
  assert.deepEqual(bearersSince(backend, before), new Set([kept.token]));
  assert.equal(parseReport(second.stdout).counts.unchanged, 7, "it swept");
  for (const res of [first, second]) assertClean(res, [kept.token, ...secretsOf(demoPatients())]);
});

test("a kept token the backend rejects costs one login, and the new token is kept", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "state");
  assert.equal((await sweep(env, dir)).code, 0);
  const first = cachedToken(stateFiles(dir).token);
  backend.expireTokens();

  const res = await sweep(env, dir);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(backend.logins, 2);
  const second = cachedToken(stateFiles(dir).token);
  assert.notEqual(second, first);
  assert.equal((await sweep(env, dir)).code, 0);
  assert.equal(backend.logins, 2, "the third run used the token the second one kept");
  assertClean(res, [first, second]);
});

const isValidate = (r: RecordedRequest) => r.path === "/api/validate/";

/** A validate endpoint that cannot say yes: a 500, a 404 that is not the backend's, a web page. */
const brokenValidations: Array<[string, Fault]> = [
  ["500", { kind: "status", status: 500 }],
  ["404", { kind: "status", status: 404, body: '{"detail":"Not Found"}' }],
  ["an HTML 200", { kind: "html" }],
];

test("a kept token whose validation answers 500, 404 or a web page costs one login per run, never exit 5", async (t) => {
  for (const [what, fault] of brokenValidations) {
    const { backend, env } = await startServices(t);
    const dir = tempDir(t, "state");
    assert.equal((await sweep(env, dir)).code, 0);
    const first = cachedToken(stateFiles(dir).token);
    backend.fault(isValidate, fault);
    for (const run of [1, 2]) {
      const res = await sweep(env, dir, ["--retries", "0"]);
      assert.equal(res.code, 0, `${what}, run ${run}: ${res.stderr}`);
      assert.equal(parseReport(res.stdout).counts.unchanged, 7, `${what}: it swept`);
      assert.equal(backend.logins, 1 + run, `${what}: one login in run ${run}`);
      assertClean(res, [first, ...secretsOf(demoPatients())]);
    }
    assert.equal(backend.requests.filter(isValidate).length, 2, `${what}: one check per run`);
  }
});

test("the token of a re-login mid-sweep is kept too", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "state");
  assert.equal((await sweep(env, dir)).code, 0);
  const hold = backend.hold((r) => isVitals(r) && r.query.get("key") === "4");
  const res = await run(["--json", "--state-dir", dir], {
    env,
    onSpawn: async () => {
      await hold.waitFor();
      backend.expireTokens(); // the held request and the run's token expire together
      hold.release();
    },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(backend.logins, 2, "the one re-login");
  assert.equal((await sweep(env, dir)).code, 0);
  assert.equal(backend.logins, 2, "the next run used the re-login's token");
});

test("a configured BACKEND_TOKEN wins over the kept token, which stays as it was", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "state");
  assert.equal((await sweep(env, dir)).code, 0);
  const { token: file } = stateFiles(dir);
  const kept = readFileSync(file, "utf8");
  const configured = backend.issueToken(DEMO_USER.username);

  const before = backend.requests.length;
  const res = await sweep({ ...env, BACKEND_TOKEN: configured }, dir);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(bearersSince(backend, before), new Set([configured]));
  assert.equal(backend.logins, 1);
  assert.equal(readFileSync(file, "utf8"), kept);
  assertClean(res, [configured, JSON.parse(kept).token]);
});

test("a kept token open to group or others is ignored with a warning, and replaced by a 0600 file", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "state");
  assert.equal((await sweep(env, dir)).code, 0);
  const { token: file } = stateFiles(dir);
  const old = cachedToken(file);
  chmodSync(file, 0o644);

  const before = backend.requests.length;
  const res = await sweep(env, dir);
  assert.equal(res.code, 0, res.stderr);
  assert.match(
    res.stderr,
    /is open to group or others \(mode 0644; state files are 0600\): ignored/,
  );
  assert.equal(backend.logins, 2);
  assert.ok(!bearersSince(backend, before).has(old), "the exposed token was not sent");
  assert.equal(mode(stateFiles(dir).token), 0o600);
  assertClean(res, [old, cachedToken(file)]);
});

test("a state directory or file that cannot be used is a warning; the exit code is as without it", async (t) => {
  const { backend, env } = await startServices(t);
  // pid 2 fails: the exit code to keep is 1.
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const args = ["--retries", "0"];
  const plain = await run(["--json", ...args], { env });
  assert.equal(plain.code, 1, plain.stderr);

  const root = tempDir(t, "state");
  writeFileSync(join(root, "file"), "");
  const under = await sweep(env, join(root, "file", "state"), args);
  assert.equal(under.code, 1, under.stderr);
  assert.match(under.stderr, /--state-dir \S+: cannot use it as a directory \(ENOTDIR\)/);
  const onFile = await sweep(env, join(root, "file"), args);
  assert.equal(onFile.code, 1, onFile.stderr);
  assert.match(onFile.stderr, /cannot use it as a directory \(ENOTDIR\)/);

  // Each state file's place taken by a directory: neither can be read nor replaced.
  const dir = join(root, "state");
  assert.equal((await sweep(env, dir, args)).code, 1);
  const files = stateFiles(dir);
  for (const file of [files.token, files.offset]) {
    rmSync(file);
    mkdirSync(file);
  }
  const logins = backend.logins;
  const broken = await sweep(env, dir, args);
  assert.equal(broken.code, 1, broken.stderr);
  assert.equal(backend.logins, logins + 1);
  assert.match(broken.stderr, /State file \S+token-\S+ is not a regular file: ignored/);
  assert.match(
    broken.stderr,
    /State file \S+token-\S+ is not a regular file, so it is not replaced/,
  );
  assert.match(
    broken.stderr,
    /State file \S+offset-\S+ is not a regular file, so it is not replaced/,
  );
  assert.deepEqual(
    readdirSync(dir)
      .filter((n) => !PREDICTION_FILES.test(n))
      .toSorted(),
    [files.token, files.offset].map((f) => f.slice(dir.length + 1)).toSorted(),
    "no temp file left behind",
  );
});

/** Eight Alert patients whose vitals the ML server calls Normal: each write moves one back in the list. */
function recovering(): SeedPatient[] {
  const [, , template] = demoPatients(); // pid 3: Alert and recovering
  return Array.from({ length: 8 }, (_, i) => ({
    ...(template as SeedPatient),
    pid: i + 1,
    status: 1,
  }));
}

test("runs cut short by the deadline start every patient within ceil(n/k) runs, in spite of the backend's reordering", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: recovering() } });
  const dir = tempDir(t, "state");
  const offsets = offsetStore(openStateDir(dir, assert.fail) ?? assert.fail(), backend.url);
  await offsets.write(0);
  const reached = new Set<string>();
  // Each run: two patients complete (status 1 -> 9, so the backend's order changes), the third is
  // held past the deadline (interrupted), the rest never start. n = 8, k = 3: three runs.
  for (const [round, expected] of [
    ["1", "2", "3"],
    ["4", "5", "6"],
    ["7", "8", "1"],
  ].entries()) {
    let seen = 0;
    const hold = backend.hold((r) => isVitals(r) && ++seen === 3);
    const before = backend.requests.length;
    const res = await run(
      ["--json", "--concurrency", "1", "--deadline", "2", "--grace", "0.1", "--state-dir", dir],
      { env },
    );
    hold.release();
    assert.equal(res.code, 8, res.stderr);
    const report = parseReport(res.stdout);
    assert.equal(report.offset, (round * 3) % 8);
    assert.deepEqual(report.counts, {
      selected: 8,
      updated: 2,
      would_update: 0,
      unchanged: 0,
      skipped: 0,
      failed: 0,
      interrupted: 1,
      not_started: 5,
    });
    const started = backend.requests.slice(before).filter(isVitals);
    assert.deepEqual(
      started.map((r) => r.query.get("key")),
      expected,
    );
    for (const r of started) reached.add(r.query.get("key") as string);
    assert.equal(offsets.read(), ((round + 1) * 3) % 8);
  }
  assert.equal(reached.size, 8, "every patient started within three runs");
});

test("--patient keeps the backend's order, reports offset 0 and leaves the kept offset alone", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "state");
  const offsets = offsetStore(openStateDir(dir, assert.fail) ?? assert.fail(), backend.url);
  await offsets.write(5);
  const res = await sweep(env, dir, ["--concurrency", "1", "--patient", "2,3"]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).offset, 0);
  // pid 3 is Alert (status 1), pid 2 Normal (9): the backend lists 3 first.
  assert.deepEqual(
    backend.requests.filter(isVitals).map((r) => r.query.get("key")),
    ["3", "2"],
  );
  assert.equal(offsets.read(), 5);
});

test("without a state directory, runs start the list at random places", async (t) => {
  const { backend, env } = await startServices(t, {
    backend: {
      patients: Array.from(
        { length: 100 },
        (_, i) => ({ ...demoPatients()[0], pid: i + 1 }) as SeedPatient,
      ),
    },
  });
  const offsets: number[] = [];
  for (let i = 0; i < 4; i++) {
    const before = backend.requests.length;
    const res = await run(["--json", "--dry-run", "--concurrency", "1"], { env });
    assert.equal(res.code, 0, res.stderr);
    const { offset } = parseReport(res.stdout);
    assert.ok(Number.isInteger(offset) && offset >= 0 && offset < 100, String(offset));
    const first = backend.requests.slice(before).find(isVitals);
    assert.equal(first?.query.get("key"), String(offset + 1), "the run started there");
    offsets.push(offset);
  }
  // Four equal offsets out of 100 by chance: one in a million.
  assert.ok(new Set(offsets).size > 1, `offsets ${offsets}`);
});

test("runSweep starts at the offset in pid order and wraps; nextOffset follows the patients started", async (t) => {
  const { backend, env } = await startServices(t);
  const whole = await runSweep(sweepConfig(env, { offset: 10, concurrency: 1, dryRun: true }));
  assert.equal(whole.offset, 2);
  assert.deepEqual(
    backend.requests.filter(isVitals).map((r) => Number(r.query.get("key"))),
    [3, 4, 5, 6, 7, 8, 1, 2],
  );
  assert.equal(nextOffset(whole), 2, "every patient started: the same place next time");

  // Stopped after three patients; an invalid record is reported but never in the rotated list.
  const listed = await fetch(`${backend.url}/api/patient/fetchAllPatients`, {
    headers: { authorization: `Bearer ${backend.issueToken(DEMO_USER.username)}` },
  }).then((r) => r.json() as Promise<unknown[]>);
  backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "body",
    body: JSON.stringify([...listed, { pid: 99 }]),
  });
  const stop = new AbortController();
  let done = 0;
  const cut = await runSweep(sweepConfig(env, { offset: 4, concurrency: 1, dryRun: true }), {
    stop: stop.signal,
    onEvent: (event) => {
      if (event.type === "patient_done" && event.result.pid !== 99 && ++done === 3) stop.abort();
    },
  });
  assert.equal(cut.offset, 4);
  assert.equal(cut.counts.not_started, 5);
  assert.equal(nextOffset(cut), 7, "(4 + 3) % 8");
});

test("the state files: whose token it is, garbled or oversized or linked files, nothing echoed", async (t: TestContext) => {
  const dir = tempDir(t, "state");
  const warnings: string[] = [];
  const state = openStateDir(dir, (m) => warnings.push(m));
  assert.ok(state);
  const server = "http://backend:8000/api-prefix";
  await tokenCache(state, server, "alice").write("alice.token.1");
  assert.equal(tokenCache(state, "http://backend:8000", "alice").read(), "alice.token.1");
  assert.equal(tokenCache(state, "http://backend:8001", "alice").read(), undefined);
  assert.equal(tokenCache(state, "https://backend:8000", "alice").read(), undefined);
  assert.equal(tokenCache(state, server, "bob").read(), undefined);
  assert.equal(warnings.length, 0, warnings.join("\n"));

  // Alice's file under bob's name: its content says whose it is.
  const [alice] = readdirSync(dir);
  await tokenCache(state, server, "bob").write("bob.token.1");
  const bobFile = readdirSync(dir).find((n) => n !== alice) as string;
  writeFileSync(join(dir, bobFile), readFileSync(join(dir, alice as string)), { mode: 0o600 });
  assert.equal(tokenCache(state, server, "bob").read(), undefined);

  const secret = "s3cr3t-token-text";
  writeFileSync(join(dir, bobFile), `{"version":1,"token":"${secret}`, { mode: 0o600 });
  assert.equal(tokenCache(state, server, "bob").read(), undefined);
  assert.match(warnings.at(-1) ?? "", /is not one this version writes \(version 1\): ignored/);

  writeFileSync(join(dir, bobFile), `${" ".repeat(64 * 1024)}${secret}`, { mode: 0o600 });
  assert.equal(tokenCache(state, server, "bob").read(), undefined);
  assert.match(warnings.at(-1) ?? "", /is larger than 65536 bytes: ignored/);

  rmSync(join(dir, bobFile));
  symlinkSync(join(dir, alice as string), join(dir, bobFile));
  assert.equal(tokenCache(state, server, "bob").read(), undefined);
  assert.match(warnings.at(-1) ?? "", /is a symbolic link: ignored/);
  for (const w of warnings) assert.ok(!w.includes(secret) && !w.includes("token.1"), w);
});

test("a state directory writable by others is used with one warning; group-writable is fine", async (t) => {
  const dir = tempDir(t, "state");
  const warnings: string[] = [];
  for (const [name, bits] of [
    ["own", 0o700],
    ["group", 0o770],
    ["others", 0o777],
    ["sticky", 0o1777],
  ] as const) {
    const path = join(dir, name);
    mkdirSync(path);
    chmodSync(path, bits);
    const said: string[] = [];
    const state = openStateDir(path, (m) => said.push(m));
    assert.ok(state, `${name}: used`);
    assert.ok(await state.write("x.json", { version: 1 }), `${name}: written`);
    assert.deepEqual(state.read("x.json", z.object({ version: z.literal(1) })), { version: 1 });
    warnings.push(...said.map((m) => `${name}: ${m}`));
  }
  assert.equal(warnings.length, 2, warnings.join("\n"));
  assert.match(
    warnings[0] as string,
    /^others: --state-dir .* is writable by others \(mode 0777\)/,
  );
  assert.match(warnings[1] as string, /^sticky: .*\(mode 1777\)/);
});
