/**
 * Logs on stderr: `--log-format json` (every line one JSON object with the run's id), Node's
 * process warnings through the same logger, the human lines' wording, the `run finished` line
 * and what `--quiet` still says.
 */
import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { EXIT_CODES } from "../src/errors.ts";
import { finishedLevel, finishedMessage } from "../src/output/event-lines.ts";
import { configProblems, usageError } from "./helpers/argv.ts";
import { parseReport, run, waitForStderr } from "./helpers/exec.ts";
import { demoPatients, secretsOf, startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { startPing } from "./stand-ins/ping.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const BUG = fileURLToPath(new URL("./fixtures/bug.mjs", import.meta.url));
const WARNING = fileURLToPath(new URL("./fixtures/warning.mjs", import.meta.url));
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const VITAL_FIELDS = ["heart_rate", "sao2", "respiration", "systolic", "diastolic"];
const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";

type LogLine = Record<string, unknown> & { time: string; level: string; msg: string };

/** Every stderr line as JSON, each checked for the fields every line carries. */
function jsonLines(stderr: string, runId?: string): LogLine[] {
  const lines = stderr.split("\n");
  assert.equal(lines.pop(), "", "stderr ends with a newline");
  assert.ok(lines.length > 0, "something was logged");
  return lines.map((text) => {
    const line = JSON.parse(text) as LogLine;
    assert.match(line.time, ISO_TIME, text);
    assert.ok(!Number.isNaN(Date.parse(line.time)), text);
    assert.ok(["error", "warn", "info", "debug"].includes(line.level), text);
    assert.equal(typeof line.msg, "string", text);
    assert.ok(line.msg.length > 0, text);
    assert.match(String(line.run_id), /^[0-9a-f-]{36}$/, text);
    if (runId !== undefined) assert.equal(line.run_id, runId, text);
    return line;
  });
}

/** No password, token, patient name or vital in any of these outputs. */
function assertNothingSecret(outputs: string[], words: string[]) {
  const all = outputs.join("\n");
  for (const word of words) assert.ok(!all.includes(word), `output leaked "${word}"`);
  for (const field of VITAL_FIELDS) assert.ok(!all.includes(field), `output names ${field}`);
}

/** The bearer tokens the backend saw, which must never be printed. */
function tokensSeen(requests: RecordedRequest[]): string[] {
  const headers = requests.map((r) => String(r.headers.authorization ?? ""));
  return [...new Set(headers.filter((h) => h.startsWith("Bearer ")).map((h) => h.slice(7)))];
}

test("--log-format json --verbose: every stderr line is JSON with the run's id, a failed patient's and each request's fields", async (t) => {
  const { backend, ml, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", {
    kind: "status",
    status: 500,
  });
  const res = await run(["--log-format", "json", "--verbose", "--json", "--retries", "0"], {
    env,
  });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  const lines = jsonLines(res.stderr, report.runId);

  const failed = lines.filter((l) => l.outcome === "failed");
  assert.equal(failed.length, 1, res.stderr);
  assert.equal(failed[0]?.level, "warn");
  assert.equal(failed[0]?.patient_id, 2);
  assert.equal(failed[0]?.stage, "vitals");
  assert.equal(failed[0]?.reason, "http_500");

  // `patient_id`: a log schema's `pid` is the process's.
  assert.ok(!lines.some((l) => "pid" in l), "no line has a `pid` field");
  const patients = lines.filter((l) => "patient_id" in l);
  assert.deepEqual(patients.map((l) => l.patient_id).toSorted(), [1, 2, 3, 4, 5, 6, 7, 8]);
  const alerted = patients.find((l) => l.patient_id === 6);
  assert.equal(alerted?.level, "debug");
  assert.deepEqual([alerted?.outcome, alerted?.from, alerted?.to], ["updated", 10, 1]);
  assert.match(alerted?.msg ?? "", /Unobserved -> Alert/);

  const requests = lines.filter((l) => "route" in l);
  assert.equal(requests.length, backend.requests.length + ml.requests.length, "one per request");
  for (const r of requests) {
    assert.equal(r.level, "debug");
    assert.ok(r.service === "backend" || r.service === "ml", String(r.service));
    assert.match(String(r.route), /^(GET|POST|PUT) \/[^?\s]*$/, "a route without its query");
    assert.equal(typeof r.status, "number");
    assert.equal(r.attempts, 1);
    assert.equal(typeof r.duration_ms, "number");
  }
  const vitals500 = requests.find((r) => r.status === 500);
  assert.deepEqual(
    [vitals500?.service, vitals500?.route],
    ["backend", "GET /api/patient/fetchVitals"],
  );
  assert.ok(!res.stderr.includes("\u001b"), "no progress line, no colour");
  assertNothingSecret(
    [res.stdout, res.stderr],
    secretsOf(demoPatients(), tokensSeen(backend.requests)),
  );
});

test("LOG_FORMAT=json works from the environment and from the env file", async (t) => {
  const { backend, env } = await startServices(t);
  const fromEnv = await run(["--json"], { env: { ...env, LOG_FORMAT: "json" } });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  const lines = jsonLines(fromEnv.stderr, parseReport(fromEnv.stdout).runId);
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.patients]),
    [
      ["info", "Sweeping 8 patients", 8],
      ["info", "run finished", undefined],
    ],
    "no debug line without --verbose",
  );

  const dir = tempDir(t, "logs");
  const file = join(dir, "scheduler.env");
  writeFileSync(
    file,
    `${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
  );
  writeFileSync(file, "LOG_FORMAT=json\n", { flag: "a" });
  const fromFile = await run(["--json", "--env-file", file], { env: {} });
  assert.equal(fromFile.code, 0, fromFile.stderr);
  jsonLines(fromFile.stderr, parseReport(fromFile.stdout).runId);

  const flagWins = await run(["--log-format", "human", "--env-file", file], { env: {} });
  assert.equal(flagWins.code, 0, flagWins.stderr);
  assert.match(flagWins.stderr, /^\[info\] Sweeping 8 patients$/m);
  assertNothingSecret(
    [fromEnv.stderr, fromFile.stderr, flagWins.stderr],
    secretsOf(demoPatients(), tokensSeen(backend.requests)),
  );
});

test("a bad LOG_FORMAT is exit 3 naming it; a bad --log-format is exit 2", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const badEnv = await run([], { env: { ...env, LOG_FORMAT: "xml" } });
  assert.equal(badEnv.code, 3, badEnv.stderr);
  assert.match(badEnv.stderr, /^\[error\] LOG_FORMAT must be human or json$/m);

  // The env file's value and the flag's, in-process (exit 3 and a usage error, exit 2).
  const dir = tempDir(t, "logs");
  const file = join(dir, "scheduler.env");
  writeFileSync(file, "LOG_FORMAT=JSON\n");
  assert.deepEqual(configProblems(env, { envFile: file }, dir), [
    "LOG_FORMAT must be human or json",
  ]);
  assert.equal(
    usageError(["--log-format", "xml"]),
    "ml-scheduler: option '--log-format <format>' argument 'xml' is invalid. It must be human or json. (see --help)",
  );
  // LOG_FORMAT=json still says the bad flag as JSON: the flag's own value is unknown.
  const badFlagJson = await run(["--log-format", "xml"], { env: { ...env, LOG_FORMAT: "json" } });
  assert.equal(badFlagJson.code, 2, badFlagJson.stderr);
  const [usage, ...rest] = jsonLines(badFlagJson.stderr);
  assert.deepEqual(
    rest.map((l) => [l.msg, l.level, l.exit_code]),
    [["run finished", "error", 2]],
  );
  assert.deepEqual([usage?.level, usage?.code], ["error", "usage"]);
  assert.match(usage?.msg ?? "", /'--log-format <format>' argument 'xml' is invalid/);
  assert.equal(backend.requests.length + ml.requests.length, 0);
});

test("errors before the sweep are JSON too: usage (exit 2), config (exit 3), the lock (exit 7, a warning)", async (t) => {
  const { backend, ml, env } = await startServices(t);

  const usage = await run(["--log-format=json", "--bogus", "--json"], { env });
  assert.equal(usage.code, 2, usage.stderr);
  const [unknown, ...more] = jsonLines(usage.stderr, parseReport(usage.stdout).runId);
  assert.deepEqual(
    more.map((l) => [l.msg, l.level, l.exit_code, l.exit_name]),
    [["run finished", "error", 2, "usage"]],
  );
  assert.deepEqual(
    [unknown?.level, unknown?.code, unknown?.msg],
    ["error", "usage", "unknown option '--bogus'"],
  );

  const { ML_SERVER: _, ...noMl } = env;
  for (const [how, args, extra] of [
    ["the flag", ["--log-format", "json"], {}],
    ["the environment", [], { LOG_FORMAT: "json" }],
  ] as const) {
    const config = await run(["--json", ...args], { env: { ...noMl, ...extra } });
    assert.equal(config.code, 3, `${how}: ${config.stderr}`);
    const [line, ...others] = jsonLines(config.stderr, parseReport(config.stdout).runId);
    assert.deepEqual(
      others.map((l) => [l.msg, l.level, l.exit_code]),
      [["run finished", "error", 3]],
      how,
    );
    assert.deepEqual([line?.level, line?.code], ["error", "config"], how);
    assert.match(line?.msg ?? "", /^ML_SERVER is required/, how);
  }
  // From the env file too, when it can be read: the error is elsewhere.
  const file = join(tempDir(t, "logs"), "scheduler.env");
  writeFileSync(file, "LOG_FORMAT=json\n");
  const fromFile = await run(["--env-file", file], { env: noMl });
  assert.equal(fromFile.code, 3, fromFile.stderr);
  assert.equal(jsonLines(fromFile.stderr)[0]?.code, "config");

  const lock = join(tempDir(t, "logs"), "sweep.lock");
  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const held = await run(["--lock", lock, "--log-format", "json", "--json"], { env });
  assert.equal(held.code, 7, held.stderr);
  const [locked, ...after] = jsonLines(held.stderr, parseReport(held.stdout).runId);
  assert.deepEqual(
    after.map((l) => [l.msg, l.level, l.exit_code]),
    [["run finished", "warn", 7]],
  );
  assert.deepEqual([locked?.level, locked?.code], ["warn", "locked"]);
  assert.match(locked?.msg ?? "", /this run did nothing/);
  assert.equal(backend.requests.length + ml.requests.length, 0);
});

test("a bug (exit 70) and a signal are JSON lines; the stack only with --verbose, as a field", async (t) => {
  const { backend, env } = await startServices(t);
  const bugEnv = { ...env, BUG_AFTER_PARSES: "7", BUG_MODE: "throw" };
  for (const verbose of [false, true]) {
    const args = ["--log-format", "json", "--json", ...(verbose ? ["--verbose"] : [])];
    const res = await run(args, { env: bugEnv, nodeArgs: ["--import", BUG] });
    assert.equal(res.code, 70, res.stderr);
    const lines = jsonLines(res.stderr, parseReport(res.stdout).runId);
    const bugs = lines.filter((l) => l.code === "internal");
    assert.equal(bugs.length, 1, res.stderr);
    assert.equal(bugs[0]?.level, "error");
    assert.match(
      bugs[0]?.msg ?? "",
      /^Internal error \(a bug, please report it\): TypeError: injected bug$/,
    );
    if (verbose) assert.match(String(bugs[0]?.stack), /^TypeError: injected bug\n\s+at /);
    else assert.equal(bugs[0]?.stack, undefined);
  }

  const hold = backend.hold((r) => isVitals(r) && r.query.get("key") === "3");
  const res = await run(["--log-format", "json", "--concurrency", "1", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      child.kill("SIGTERM");
      await waitForStderr(child, /SIGTERM: no new patient starts/);
      hold.release();
    },
  });
  assert.equal(res.code, 143, res.stderr);
  const stopped = jsonLines(res.stderr).filter((l) => l.code === "sigterm");
  assert.equal(stopped.length, 1, res.stderr);
  assert.equal(stopped[0]?.level, "warn");
});

test("a process warning is one log line, name and message only, in either format", async (t) => {
  const { env } = await startServices(t);
  const nodeArgs = ["--import", WARNING];
  const json = await run(["--log-format", "json", "--json"], { env, nodeArgs });
  assert.equal(json.code, 0, json.stderr);
  const warnings = jsonLines(json.stderr, parseReport(json.stdout).runId).filter(
    (l) => l.level === "warn",
  );
  assert.deepEqual(
    warnings.map((l) => l.msg),
    ["ExperimentalWarning: a stand-in feature is experimental"],
  );

  const human = await run([], { env, nodeArgs });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, /^\[warn\] ExperimentalWarning: a stand-in feature is experimental$/m);
  for (const res of [json, human]) {
    assert.ok(!res.stderr.includes("(node:"), "Node's own printer is gone");
    assert.ok(!res.stderr.includes("detail-that-is-never-logged"));
  }
  // Node told to print no warnings: neither do we.
  const quiet = await run([], { env: { ...env, NODE_NO_WARNINGS: "1" }, nodeArgs });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /ExperimentalWarning/);
});

test("human lines name statuses and say why a patient was skipped", async (t) => {
  // Status 42 is no id of the status table: it is shown by its number.
  const patients = demoPatients().map((p) => (p.pid === 1 ? { ...p, status: 42 } : p));
  const { env } = await startServices(t, { backend: { patients } });
  const res = await run(["--verbose"], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /^\[debug\] pid 2: updated \(Normal -> Alert\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 3: updated \(Alert -> Normal\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 4: unchanged \(Alert\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 1: updated \(status 42 -> Normal\)$/m);
  assert.match(
    res.stderr,
    /^\[debug\] pid 8: skipped: fewer than five vitals, nothing to predict from$/m,
  );
  assert.doesNotMatch(res.stderr, /"route"|GET \//, "request lines are for --log-format json");
});

test("a run that swept no patient says so and why, not '0 patients in'; a held lock is a warning", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/login/", { kind: "status", status: 500 });
  const failed = await run(["--retries", "0"], { env });
  assert.equal(failed.code, 5, failed.stderr);
  assert.doesNotMatch(failed.stdout, /patients in/);
  assert.match(failed.stdout, /^No patient was swept \(upstream\): Login failed: .*HTTP 500/);
  assert.match(failed.stdout, /^Exit code 5$/m);
  assert.equal(failed.stdout.match(/HTTP 500/g)?.length, 1, "the error is said once");

  const { ML_SERVER: _, ...noMl } = env;
  const config = await run([], { env: noMl });
  assert.equal(config.code, 3, config.stderr);
  assert.doesNotMatch(config.stdout, /patients in/);
  assert.match(config.stderr, /^\[error\] ML_SERVER is required/m);

  const lock = join(tempDir(t, "logs"), "sweep.lock");
  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const held = await run(["--lock", lock], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.doesNotMatch(held.stdout, /patients in/);
  assert.match(held.stderr, /^\[warn\] .*this run did nothing/m);
  assert.doesNotMatch(held.stderr, /\[error\]/);
});

/** A human `run finished` line: exit code, name, duration, then the counts of a sweep. */
const FINISHED = /^\[(error|warn|info)\] run finished: exit (\d+) \((\w+)\) in \d+\.\ds(; .*)?$/;

test("every run ends with one `run finished` line: exit code, its name, the counts, the duration", async (t) => {
  const { backend, env } = await startServices(t);
  const failOnce = { kind: "status", status: 500 } as const;
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", failOnce, 1);
  const json = await run(["--log-format", "json", "--json", "--retries", "0"], { env });
  assert.equal(json.code, 1, json.stderr);
  const report = parseReport(json.stdout);
  const lines = jsonLines(json.stderr, report.runId);
  const finished = lines.filter((l) => l.msg === "run finished");
  assert.equal(finished.length, 1, json.stderr);
  assert.equal(lines.at(-1), finished[0], "the last line");
  const { time, run_id, duration_ms, ...rest } = finished[0] as LogLine;
  assert.deepEqual(rest, {
    level: "warn",
    msg: "run finished",
    command: "sweep",
    exit_code: 1,
    exit_name: "patients_failed",
    counts: report.counts,
  });
  assert.equal(typeof duration_ms, "number");
  assert.ok((duration_ms as number) >= report.durationMs, "the whole run, not only the sweep");

  // Human: the same, in words; info on exit 0, error on a failed service (exit 5), none for --help.
  const ok = await run([], { env });
  assert.equal(ok.code, 0, ok.stderr);
  const last = ok.stderr.trimEnd().split("\n").at(-1) ?? "";
  assert.match(last, FINISHED);
  assert.match(
    last,
    /^\[info\] run finished: exit 0 \(ok\) in [\d.]+s; 8 patients: (\d+ [a-z ]+, )+0 failed$/,
  );
  assert.equal(ok.stderr.match(/run finished/g)?.length, 1);

  backend.fault((r) => r.path === "/api/login/", { kind: "status", status: 500 });
  const upstream = await run(["--retries", "0"], { env });
  assert.equal(upstream.code, 5, upstream.stderr);
  assert.match(
    upstream.stderr,
    /^\[error\] run finished: exit 5 \(upstream\) in [\d.]+s; 0 patients: 0 failed\n$/m,
  );

  const check = await run(["check"], { env });
  assert.equal(check.code, 5, check.stderr);
  assert.match(check.stderr, /^\[error\] run finished: exit 5 \(upstream\) in [\d.]+s$/m);

  const help = await run(["--help"], { env });
  assert.equal(help.code, 0);
  assert.doesNotMatch(help.stderr + help.stdout, /run finished/);
});

test("the `run finished` level: info on 0, warn on 1, 7 and 8, error otherwise; error for any failure under --quiet", () => {
  const levels = EXIT_CODES.map(({ code }) => [
    code,
    finishedLevel(code, false),
    finishedLevel(code, true),
  ]);
  for (const [code, level, quiet] of levels) {
    const expected = code === 0 ? "info" : [1, 7, 8].includes(code as number) ? "warn" : "error";
    assert.equal(level, expected, `exit ${code}`);
    assert.equal(quiet, code === 0 ? "info" : "error", `exit ${code} under --quiet`);
  }
  const summary = { command: "sweep", exitCode: 8, exitName: "deadline", durationMs: 1234 };
  const counts = {
    selected: 5,
    updated: 1,
    would_update: 0,
    unchanged: 0,
    skipped: 0,
    failed: 0,
    interrupted: 1,
    not_started: 3,
  };
  assert.equal(
    finishedMessage({ ...summary, counts }),
    "run finished: exit 8 (deadline) in 1.2s; 5 patients: 1 updated, 0 failed, 1 interrupted, 3 not started",
  );
  assert.equal(
    finishedMessage({ ...summary, counts: null }),
    "run finished: exit 8 (deadline) in 1.2s",
  );
});

test("--quiet says every failure at error, once: a failed patient, a held lock, a refused command line", async (t) => {
  // Silent on success: test/cli.test.ts.
  const { backend, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const failed = await run(["--quiet", "--retries", "0"], { env });
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stdout, /pid 2: failed at vitals: http_500/, "the report is whole");
  // One line: no per-patient warning, the end at error (cron mails stderr).
  assert.match(
    failed.stderr,
    /^\[error\] run finished: exit 1 \(patients_failed\) in [\d.]+s; 8 patients: .*, 1 failed\n$/,
  );
  const json = await run(["--quiet", "--retries", "0", "--log-format", "json"], { env });
  assert.equal(json.code, 1, json.stderr);
  assert.deepEqual(
    jsonLines(json.stderr).map((l) => [l.level, l.msg, l.exit_code]),
    [["error", "run finished", 1]],
  );

  const lock = join(tempDir(t, "logs"), "sweep.lock");
  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const held = await run(["--quiet", "--lock", lock], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.match(held.stderr, /^\[error\] run finished: exit 7 \(locked\) in [\d.]+s\n$/);

  const usage = await run(["--quiet", "--bogus"], { env });
  assert.equal(usage.code, 2, usage.stderr);
  assert.match(
    usage.stderr,
    /^ml-scheduler: unknown option '--bogus' \(see --help\)\n\[error\] run finished: exit 2 \(usage\) in [\d.]+s\n$/,
  );
});

test("a notifier that fails says one error line, --quiet included, and the exit code stays 0", async (t) => {
  const { backend, env } = await startServices(t);
  const ping = await startPing();
  t.after(() => ping.close());
  ping.down();
  const metrics = join(tempDir(t, "logs"), "missing", "ml_scheduler.prom");
  // The backend is no Pushgateway: it answers the push with 404.
  const args = ["--quiet", "--metrics-file", metrics, "--pushgateway", backend.url];
  const res = await run(args, { env: { ...env, PING_URL: ping.checkUrl } });
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stderr.trimEnd().split("\n");
  assert.ok(
    lines.every((l) => l.startsWith("[error] ")),
    res.stderr,
  );
  const said = (pattern: RegExp) => lines.filter((l) => pattern.test(l)).length;
  assert.equal(
    said(/^\[error\] The metrics file .* could not be written \(ENOENT\)/),
    1,
    res.stderr,
  );
  assert.equal(
    said(/^\[error\] The push to the Pushgateway at .* failed \(HTTP 404/),
    1,
    res.stderr,
  );
  assert.equal(said(/^\[error\] The start ping to .* failed/), 1, res.stderr);
  assert.equal(said(/^\[error\] The end ping \(exit 0\) to .* failed/), 1, res.stderr);
  assert.equal(lines.length, 4, res.stderr);
});

/** Runs the bin with stderr on a file, as systemd gives a service the journal; answers that file. */
async function stderrOnFile(
  t: TestContext,
  args: string[],
  env: Record<string, string>,
  journal: (dev: bigint, ino: bigint) => string | undefined,
) {
  const path = join(tempDir(t, "logs"), "journal");
  const fd = openSync(path, "w");
  try {
    const { dev, ino } = fstatSync(fd, { bigint: true });
    const res = await run(args, { env: { ...env, JOURNAL_STREAM: journal(dev, ino) }, stderr: fd });
    return { code: res.code, stderr: readFileSync(path, "utf8") };
  } finally {
    closeSync(fd);
  }
}

test("on the journal (JOURNAL_STREAM names stderr) every line starts with its syslog priority", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const args = ["--verbose", "--retries", "0"];
  const itself = (dev: bigint, ino: bigint) => `${dev}:${ino}`;
  const human = await stderrOnFile(t, args, env, itself);
  assert.equal(human.code, 1, human.stderr);
  const lines = human.stderr.trimEnd().split("\n");
  const priorities = { "<3>": "error", "<4>": "warn", "<6>": "info", "<7>": "debug" } as const;
  for (const line of lines) {
    const match = /^(<\d>)\[(\w+)\] /.exec(line);
    assert.ok(match, `a priority, then the level: ${line}`);
    assert.equal(priorities[match[1] as keyof typeof priorities], match[2], line);
  }
  const said = (prefix: string) => lines.filter((l) => l.startsWith(prefix));
  assert.match(said("<6>")[0] ?? "", /Sweeping 8 patients/);
  assert.ok(
    said("<7>").some((l) => /pid 1: /.test(l)),
    human.stderr,
  );
  assert.ok(
    said("<4>").some((l) => /pid 2 failed at vitals/.test(l)),
    human.stderr,
  );
  assert.match(lines.at(-1) ?? "", /^<4>\[warn\] run finished: exit 1 /);

  const json = await stderrOnFile(t, [...args, "--log-format", "json"], env, itself);
  assert.equal(json.code, 1, json.stderr);
  for (const line of json.stderr.trimEnd().split("\n")) {
    const match = /^(<\d>)(\{.*)$/.exec(line);
    assert.ok(match, line);
    assert.equal(
      priorities[match[1] as keyof typeof priorities],
      JSON.parse(match[2] ?? "").level,
      line,
    );
  }
  // Before any logger: a refused command line.
  const usage = await stderrOnFile(t, ["--bogus"], env, itself);
  assert.equal(usage.code, 2, usage.stderr);
  assert.match(
    usage.stderr,
    /^<3>ml-scheduler: unknown option '--bogus' \(see --help\)\n<3>\[error\] run finished: exit 2 /,
  );

  // A stream that is not stderr's own (a child whose stderr was redirected inherits it): no
  // prefix. (Without JOURNAL_STREAM, every other test reads lines without one.)
  const elsewhere = await stderrOnFile(t, args, env, (dev, ino) => `${dev}:${ino + 1n}`);
  assert.equal(elsewhere.code, 1, elsewhere.stderr);
  assert.match(elsewhere.stderr, /^\[info\] Sweeping 8 patients$/m);
  assert.doesNotMatch(elsewhere.stderr, /<\d>/);
});
