/**
 * The real bin against the stand-ins: each outcome and exit code, what was written, what was said.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { SweepEvent } from "../src/core/events.ts";
import { runSweep } from "../src/index.ts";
import { createOutput } from "../src/output/human.ts";
import { configProblems, usageError } from "./helpers/argv.ts";
import { BIN, beforeFinished, PACKAGE_VERSION, parseReport, run } from "./helpers/exec.ts";
import { demoPatients, secretsOf, startServices, sweepConfig } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { predictStatus } from "./stand-ins/ml.ts";
import { makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isPut = (r: { method: string }) => r.method === "PUT";

function assertNoSecrets(output: string, words: string[]) {
  for (const word of words) assert.ok(!output.includes(word), `output leaked "${word}"`);
}

test("a sweep writes the predicted status where it changed, once per patient, and exits 0", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const seed = demoPatients();
  const res = await run(["--verbose"], { env });

  assert.equal(res.code, 0, res.stderr);
  const expected = seed
    .filter((p) => p.vitals.length >= 5)
    .map((p) => ({ pid: p.pid, status: predictStatus(p.vitals.slice(0, 5)) }))
    .filter((w) => w.status !== seed.find((p) => p.pid === w.pid)?.status);
  assert.ok(expected.length > 0, "the demo seed has changes to write");
  assert.deepEqual(
    backend.writes.toSorted((a, b) => a.pid - b.pid),
    expected,
  );
  assert.equal(backend.logins, 1);
  assert.equal(ml.predictions.length, seed.filter((p) => p.vitals.length >= 5).length);
  assert.match(res.stdout, /^8 patients in [\d.]+s: 4 updated, 3 unchanged, 1 skipped, 0 failed$/m);
  for (const w of expected)
    assert.match(res.stdout, new RegExp(`pid ${w.pid}: status \\d+ -> ${w.status}`));
  assertNoSecrets(res.stdout + res.stderr, secretsOf(seed));
});

test("--json prints exactly one JSON document whose counts add up", async (t) => {
  const { env } = await startServices(t);
  const res = await run(["--json"], { env });
  assert.equal(res.code, 0, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.version, 2);
  assert.deepEqual(report.predictions, { made: 7, reused: 0 });
  assert.match(
    report.runId,
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  const again = parseReport((await run(["--json"], { env })).stdout);
  assert.notEqual(again.runId, report.runId, "each run has its own id");
  assert.equal(report.schedulerVersion, PACKAGE_VERSION, "the package's version");
  assert.equal(report.exitCode, 0);
  assert.equal(report.error, null);
  assert.equal(report.dryRun, false);
  assert.equal(report.concurrency, 4);
  const { selected, ...rest } = report.counts;
  assert.equal(selected, 8);
  assert.equal(
    Object.values(rest).reduce((a: number, b) => a + (b as number), 0),
    selected,
  );
  assert.deepEqual(
    report.patients.map((p: { pid: number }) => p.pid),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  const skipped = report.patients.find((p: { pid: number }) => p.pid === 8);
  assert.deepEqual(skipped, {
    pid: 8,
    outcome: "skipped",
    from: 10,
    to: null,
    stage: "vitals",
    reason: "insufficient_vitals",
    detail: null,
  });
  assert.ok(Date.parse(report.finishedAt) >= Date.parse(report.startedAt));
});

test("--dry-run predicts but writes nothing", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const res = await run(["--dry-run", "--json"], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(backend.requests.filter(isPut).length, 0);
  assert.equal(ml.predictions.length, 7);
  const report = parseReport(res.stdout);
  assert.equal(report.dryRun, true);
  assert.equal(report.counts.would_update, 4);
  assert.equal(report.counts.updated, 0);
});

test("--patient selects pids, repeatable and comma-separated, duplicates ignored", async (t) => {
  const { backend, env } = await startServices(t);
  const res = await run(["--patient", "2,3", "--patient", "3", "--patient", "99", "--json"], {
    env,
  });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  assert.deepEqual(
    report.patients.map((p: { pid: number; outcome: string }) => [p.pid, p.outcome]),
    [
      [2, "updated"],
      [3, "updated"],
      [99, "failed"],
    ],
  );
  assert.equal(report.patients[2].reason, "not_found");
  assert.equal(report.patients[2].stage, "select");
  const vitalsFetched = backend.requests
    .filter((r) => r.path === "/api/patient/fetchVitals")
    .map((r) => r.query.get("key"));
  assert.deepEqual(vitalsFetched.toSorted(), ["2", "3"]);
});

test("a failing patient is reported with its stage and reason, the rest go on, exit 1", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/patient/fetchVitals" && r.query.get("key") === "2", {
    kind: "status",
    status: 500,
    body: "Internal Server Error",
    contentType: "text/plain",
  });
  const res = await run(["--json", "--retries", "0"], { env });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  const failed = report.patients.find((p: { pid: number }) => p.pid === 2);
  assert.equal(failed.outcome, "failed");
  assert.equal(failed.stage, "vitals");
  assert.equal(failed.reason, "http_500");
  assert.equal(failed.detail, "GET /api/patient/fetchVitals: HTTP 500");
  assert.equal(report.counts.failed, 1);
  assert.equal(report.counts.updated, 3);
  assert.ok(!backend.writes.some((w) => w.pid === 2));
  assert.match(res.stderr, /pid 2 failed at vitals: http_500/);
  const lines = res.stderr.trim().split("\n");
  for (const line of lines)
    assert.match(line, /^\[(info|warn)\] \S/, "one line per message, level first");
});

test("usage errors exit 2 with one line, then the run's end", async () => {
  // The bin once: a usage error is exit 2, one line on stderr, nothing on stdout.
  const res = await run(["--concurrency", "0"], { env: {} });
  assert.equal(res.code, 2, res.stderr);
  assert.equal(res.stdout, "");
  const said = beforeFinished(res.stderr);
  assert.equal(said.length, 1, res.stderr);
  assert.match(said[0] ?? "", /^ml-scheduler: .*'--concurrency <n>'.*\(see --help\)$/);
  // Each kind of usage error, in-process: an unknown flag, a value its rule refuses, a stray word.
  for (const [args, said] of [
    [["--bogus"], /unknown option '--bogus'/],
    [["--concurrency", "two"], /'--concurrency <n>' argument 'two' is invalid/],
    [["--patient", "abc"], /expected positive integer pids/],
    [["--patient", "3,-1"], /expected positive integer pids/],
    [["--retries", "-1"], /'--retries <n>' argument '-1' is invalid/],
    [["stray"], /too many arguments/],
  ] as const) {
    assert.match(usageError(args), said, args.join(" "));
  }
  // The help command is no usage error: the help, exit 0, nothing on stderr.
  const help = await run(["help"], { env: {} });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: ml-scheduler /);
  assert.equal(help.stderr, "");
});

test("a usage error with --json still prints one JSON document", async () => {
  const res = await run(["--json", "--concurrency", "0"], { env: {} });
  assert.equal(res.code, 2);
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, 2);
  assert.equal(report.error.code, "usage");
  assert.equal(report.counts.selected, 0);
});

test("configuration errors exit 3, naming the variable, never the value", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "cli");
  // The bin once: exit 3, the variable named, its value (a password) never shown, --json's report.
  const res = await run(["--json"], { env: { ...env, PATIENT_SERVER: "http://u:hunter2@x" } });
  assert.equal(res.code, 3, res.stderr);
  assert.match(res.stderr, /PATIENT_SERVER must not carry credentials/);
  assert.ok(!res.stderr.includes("hunter2") && !res.stdout.includes("hunter2"));
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, 3);
  assert.equal(report.error.code, "config");
  // Each problem, in-process: the line resolveConfig's ConfigError (exit 3) says.
  const cases: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
    [{ ...env, PATIENT_SERVER: "" }, {}, /PATIENT_SERVER is required/],
    [{ ...env, ML_SERVER: "ftp://x" }, {}, /ML_SERVER must be an http:\/\/ or https:\/\/ URL/],
    [{ ...env, CONCURRENCY: "lots" }, {}, /CONCURRENCY must be a positive integer/],
    [
      { ...env, BACKEND_PASSWORD_FILE: join(dir, "pw") },
      {},
      /BACKEND_PASSWORD and BACKEND_PASSWORD_FILE are both set/,
    ],
    [
      { ...env, BACKEND_PASSWORD: "", BACKEND_PASSWORD_FILE: join(dir, "missing") },
      {},
      /BACKEND_PASSWORD_FILE: cannot read the file it names \(ENOENT\)/,
    ],
    [
      { ...env, BACKEND_PASSWORD: "" },
      {},
      /BACKEND_USERNAME and BACKEND_PASSWORD .* are required unless BACKEND_TOKEN is set/,
    ],
    [env, { envFile: join(dir, "nope.env") }, /--env-file .*nope\.env: no such file/],
  ];
  for (const [caseEnv, flags, pattern] of cases) {
    const lines = configProblems(caseEnv, flags, dir);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0] as string, pattern);
  }
});

test("settings come from flag, then environment, then env file; secrets from *_FILE", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "cli");
  writeFileSync(join(dir, "pw"), `${env.BACKEND_PASSWORD}\n`);
  writeFileSync(
    join(dir, "run.env"),
    `PATIENT_SERVER=${env.PATIENT_SERVER}\nML_SERVER=http://127.0.0.1:9\nBACKEND_USERNAME=${env.BACKEND_USERNAME}\nBACKEND_PASSWORD_FILE=${join(dir, "pw")}\nCONCURRENCY=7\n`,
  );
  // ML_SERVER from the environment beats the file's dead port; --concurrency beats CONCURRENCY.
  const res = await run(["--env-file", join(dir, "run.env"), "--json", "--concurrency", "2"], {
    env: { ML_SERVER: env.ML_SERVER as string, CONCURRENCY: "3" },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).concurrency, 2);
  assert.equal(backend.logins, 1);

  // The default .env in the working directory is read too, and CONCURRENCY from the environment
  // beats the file's.
  writeFileSync(
    join(dir, ".env"),
    readFileSync(join(dir, "run.env"), "utf8").replace(
      /^ML_SERVER=.*$/m,
      `ML_SERVER=${env.ML_SERVER}`,
    ),
  );
  const res2 = await run(["--json"], { env: { CONCURRENCY: "3" }, cwd: dir });
  assert.equal(res2.code, 0, res2.stderr);
  assert.equal(parseReport(res2.stdout).concurrency, 3);
});

test("the legacy USERNAME/PASSWORD/TOKEN of the original .env work, TOKEN=null means none", async (t) => {
  const { backend, env } = await startServices(t);
  const res = await run(["--json"], {
    env: {
      PATIENT_SERVER: env.PATIENT_SERVER,
      ML_SERVER: env.ML_SERVER,
      USERNAME: env.BACKEND_USERNAME,
      PASSWORD: env.BACKEND_PASSWORD,
      TOKEN: "null",
    },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(backend.logins, 1);
  assert.equal(backend.requests.filter((r) => r.path === "/api/validate/").length, 0);
});

test("login refused is exit 4; a legacy USERNAME is named as the likely cause", async (t) => {
  const { backend, env } = await startServices(t);
  const wrong = await run(["--json"], { env: { ...env, BACKEND_PASSWORD: "wrong-password" } });
  assert.equal(wrong.code, 4, wrong.stderr);
  assert.match(wrong.stderr, /refused the password/);
  assert.equal(parseReport(wrong.stdout).error.code, "auth");
  assert.ok(!wrong.stderr.includes("wrong-password"));

  const legacy = await run([], {
    env: { ...env, BACKEND_USERNAME: "", USERNAME: "root" },
  });
  assert.equal(legacy.code, 4, legacy.stderr);
  assert.match(legacy.stderr, /does not know the username .*legacy USERNAME/);
  assert.equal(backend.logins, 2, "one login per run");
  assert.equal(backend.requests.filter(isPut).length, 0);
});

test("a rejected token without credentials is exit 4; a valid one is used without logging in", async (t) => {
  const { backend, env } = await startServices(t);
  const base = { PATIENT_SERVER: env.PATIENT_SERVER, ML_SERVER: env.ML_SERVER };
  const bad = await run([], { env: { ...base, BACKEND_TOKEN: "not-a-jwt" } });
  assert.equal(bad.code, 4, bad.stderr);
  assert.match(bad.stderr, /rejected BACKEND_TOKEN/);
  assert.ok(!bad.stderr.includes("not-a-jwt"));

  const token = backend.issueToken("demo");
  const good = await run(["--verbose"], { env: { ...base, BACKEND_TOKEN: token } });
  assert.equal(good.code, 0, good.stderr);
  assert.equal(backend.logins, 0);
  assert.ok(!(good.stdout + good.stderr).includes(token));

  // An expired token with credentials: validate says 401, so one login.
  backend.expireTokens();
  const relogin = await run([], { env: { ...env, BACKEND_TOKEN: token } });
  assert.equal(relogin.code, 0, relogin.stderr);
  assert.equal(backend.logins, 1);
});

test("a 403 anywhere is exit 4 and never triggers a login", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "status",
    status: 403,
    body: '{"detail":"Not authenticated"}',
  });
  const res = await run(["--json"], { env });
  assert.equal(res.code, 4, res.stderr);
  assert.equal(backend.logins, 1);
  assert.match(res.stderr, /HTTP 403/);
});

test("services unavailable before the first patient are exit 5", async (t) => {
  const { backend, ml, env } = await startServices(t);
  // The bin once: exit 5, the failed step said on stderr, --json's report.
  const closed = { ...env, PATIENT_SERVER: "http://127.0.0.1:9" };
  const res = await run(["--json", "--retries", "0"], { env: closed });
  assert.equal(res.code, 5, res.stderr);
  assert.match(res.stderr, /Login failed: POST \/api\/login\/: ECONNREFUSED/);
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "upstream");
  assert.equal(report.counts.selected, 0);
  // The other steps in-process: the same report from runSweep, whose error the bin prints.
  const cases: Array<[string, () => void, RegExp]> = [
    ["ML server down", () => ml.down(), /ML server check failed/],
    [
      "patient list 500",
      () => {
        ml.up();
        backend.fault(
          (r) => r.path === "/api/patient/fetchAllPatients",
          { kind: "status", status: 500 },
          1,
        );
      },
      /Fetching the patient list failed: GET \/api\/patient\/fetchAllPatients: HTTP 500/,
    ],
    [
      "patient list malformed",
      () =>
        backend.fault((r) => r.path === "/api/patient/fetchAllPatients", { kind: "malformed" }, 1),
      /body is not JSON/,
    ],
    [
      "patient list HTML",
      () => backend.fault((r) => r.path === "/api/patient/fetchAllPatients", { kind: "html" }, 1),
      /body is not JSON/,
    ],
  ];
  for (const [name, arrange, pattern] of cases) {
    arrange();
    const report = await runSweep(sweepConfig(env));
    assert.equal(report.exitCode, 5, `${name}: ${report.error?.message}`);
    assert.match(report.error?.message ?? "", pattern, name);
    assert.equal(report.error?.code, "upstream", name);
    assert.equal(report.counts.selected, 0, name);
  }
  assert.equal(backend.requests.filter(isPut).length, 0);
});

test("behind nginx, /health answers HTML: the predict probe passes and is logged once", async (t) => {
  const { backend, ml, env } = await startServices(t, { ml: { health: "html" } });
  const res = await run([], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr.match(/POST \/predict answered, so it is up/g)?.length, 1);
  assert.equal(ml.requests.filter((r) => r.path === "/predict" && r.body === "[]").length, 1);
  assert.equal(backend.writes.length, 4);
});

test("--help shows the exit-code table; --version prints the package version", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  for (const code of [0, 1, 2, 3, 4, 5, 6, 7, 8, 130, 143]) {
    assert.match(help.stdout, new RegExp(`^ +${code}  \\S`, "m"));
  }
  assert.match(help.stdout, /--dry-run/);
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const version = await run(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), pkg.version);
});

test("--quiet leaves stderr empty on success and keeps the report", async (t) => {
  const { env } = await startServices(t);
  const res = await run(["--quiet"], { env });
  assert.equal(res.code, 0);
  assert.equal(res.stderr, "");
  assert.match(res.stdout, /4 updated/);
});

/** Runs a shell command under script(1), which gives it a pseudo-terminal; answers what it printed. */
async function underTerminal(command: string, env: Record<string, string>) {
  // Asynchronous: the stand-ins live in this process and must keep answering meanwhile.
  const child = spawn("script", ["-qec", command, "/dev/null"], {
    env: { PATH: process.env.PATH ?? "", ...env, TERM: "dumb" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(killer);
  return { code, output };
}

test("on a terminal, a live progress line shows done of total, rate and failures", async (t) => {
  if (spawnSync("script", ["--version"]).error) return t.skip("script(1) is not available");
  const { env } = await startServices(t);
  const report = join(tempDir(t, "cli"), "report");
  const bin = `${JSON.stringify(process.execPath)} -- ${JSON.stringify(BIN)}`;
  const live = await underTerminal(`${bin} >${JSON.stringify(report)}`, env);
  assert.equal(live.code, 0, live.output);
  assert.ok(live.output.includes("\r\u001b[K8/8 patients, "), "the line is redrawn in place");
  assert.match(live.output, /8\/8 patients, [\d.]+\/s, 0 failed/);
  assert.doesNotMatch(readFileSync(report, "utf8"), /\/s, 0 failed/);
  const quiet = await underTerminal(`${bin} --quiet >/dev/null`, env);
  assert.equal(quiet.code, 0);
  assert.doesNotMatch(quiet.output, /patients, /);
});

const ERASE_LINE = "\u001b[K";

/** The line a terminal shows under its cursor once it has drawn `output` (\r, ESC [K, \n). */
function cursorLine(output: string): string {
  let line = "";
  let column = 0;
  for (const piece of output.split(new RegExp(`(\r|\n|${ERASE_LINE.replace("[", "\\[")})`))) {
    if (piece === "\n") [line, column] = ["", 0];
    else if (piece === "\r") column = 0;
    else if (piece === ERASE_LINE) line = line.slice(0, column);
    else {
      line = line.slice(0, column) + piece + line.slice(column + piece.length);
      column += piece.length;
    }
  }
  return line;
}

test("on a terminal the progress line stays up while a patient is slow, and shows the count so far", async (t) => {
  if (spawnSync("script", ["--version"]).error) return t.skip("script(1) is not available");
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(9) } });
  const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";
  // The first eight patients' vitals wait together, then come at once; the ninth's waits alone.
  const nth = (r: RecordedRequest) => backend.requests.filter(isVitals).indexOf(r);
  const eight = backend.hold((r) => isVitals(r) && nth(r) < 8);
  const ninth = backend.hold((r) => isVitals(r) && nth(r) >= 8);
  const report = join(tempDir(t, "cli"), "report");
  const bin = `${JSON.stringify(process.execPath)} -- ${JSON.stringify(BIN)}`;
  const child = spawn(
    "script",
    ["-qec", `${bin} --concurrency 8 >${JSON.stringify(report)}`, "/dev/null"],
    {
      env: { PATH: process.env.PATH ?? "", ...env, TERM: "dumb" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  t.after(() => clearTimeout(killer));
  const closed = once(child, "close");
  let output = "";
  const shows = (pattern: RegExp, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!pattern.test(cursorLine(output))) return;
        clearTimeout(timer);
        child.stdout.off("data", check);
        resolve();
      };
      const timer = setTimeout(() => {
        child.stdout.off("data", check);
        reject(
          new Error(`the terminal's line is ${JSON.stringify(cursorLine(output))}, not ${pattern}`),
        );
      }, timeoutMs);
      child.stdout.on("data", check);
      check();
    });
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  try {
    await eight.waitFor(8, 10_000);
    eight.release();
    await ninth.waitFor(1, 10_000);
    // Eight of nine done, the ninth held: a person sees where the sweep stands, not a blank line.
    await shows(/^8\/9 patients, [\d.]+\/s, 0 failed$/, 5_000);
  } finally {
    ninth.release();
  }
  const [code] = (await closed) as [number | null];
  assert.equal(code, 0, output);
  assert.match(output, /9\/9 patients, /);
});

test("a line printed on a terminal clears the progress line, which is drawn again below it", () => {
  let text = "";
  const writer = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  const stream = Object.assign(writer, { isTTY: true }) as unknown as NodeJS.WriteStream;
  const out = createOutput({ verbose: false, quiet: false, stream });
  const done = (pid: number, failed: boolean): SweepEvent => ({
    type: "patient_done",
    durationMs: 1,
    result: {
      pid,
      outcome: failed ? "failed" : "unchanged",
      from: 9,
      to: failed ? null : 9,
      stage: failed ? "vitals" : null,
      reason: failed ? "http_500" : null,
      detail: null,
    },
  });
  out.event({ type: "run_started", patients: 3 });
  out.event(done(1, false));
  assert.match(cursorLine(text), /^1\/3 patients, [\d.]+\/s, 0 failed$/);
  out.event(done(2, true));
  assert.match(text, /pid 2 failed at vitals: http_500\n/);
  assert.match(cursorLine(text), /^2\/3 patients, [\d.]+\/s, 1 failed$/, "drawn again at once");
  out.finish();
  assert.equal(cursorLine(text), "", "cleared for the report");
});

test("progress is never drawn when stderr is not a terminal", async (t) => {
  const { env } = await startServices(t);
  const res = await run([], { env });
  assert.equal(res.code, 0);
  assert.doesNotMatch(res.stderr, /\/s, \d+ failed/);
  assert.ok(!res.stderr.includes("\u001b[K"));
});

test("no name, password or token appears in any output, failures and --verbose included", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const token = backend.issueToken("demo");
  backend.fault((r) => r.path === "/api/patient/fetchVitals" && r.query.get("key") === "1", {
    kind: "html",
  });
  backend.fault((r) => r.path === "/api/patient/updateStatus", {
    kind: "status",
    status: 500,
    body: "psql: Dwight Shrute",
  });
  ml.fault((r) => r.path === "/predict" && r.body.includes("178"), { kind: "malformed" });
  const outputs: string[] = [];
  for (const args of [["--verbose"], ["--verbose", "--json"], ["--verbose", "--dry-run"]]) {
    const res = await run([...args, "--retries", "0"], { env: { ...env, BACKEND_TOKEN: token } });
    assert.equal(res.code, 1, res.stderr);
    outputs.push(res.stdout, res.stderr);
  }
  const wrong = await run(["--verbose"], { env: { ...env, BACKEND_PASSWORD: "Sup3r-secret" } });
  outputs.push(wrong.stdout, wrong.stderr);
  const all = outputs.join("\n");
  assertNoSecrets(all, secretsOf(demoPatients(), [token, "Sup3r-secret", "Dwight", "Shrute"]));
  assert.match(all, /pid 1 failed at vitals: invalid_response/);
});
