/**
 * Every input has a bound: flags, environment, secret files, the env file, the working directory
 * and the patient list. Each bad input is refused at once with one line, before any request.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runSweep } from "../src/index.ts";
import { configProblems, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { BIN, beforeFinished, parseReport, type RunResult, run } from "./helpers/exec.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { DEMO_USER } from "./stand-ins/seed.ts";

/**
 * Exit code `code`, exactly one line on stderr before the run's end, and with --json exactly one
 * JSON document.
 */
function assertRefused(res: RunResult, code: number, pattern: RegExp, what: string): void {
  assert.equal(res.code, code, `${what}: ${res.stderr}`);
  const lines = beforeFinished(res.stderr);
  assert.equal(lines.length, 1, `${what}: one line, got ${res.stderr}`);
  assert.match(res.stderr, pattern, what);
  assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: no stack trace`);
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, code, what);
}

test("durations past Node's timer limit are a usage error, the largest that fits is not", async (t) => {
  for (const args of [
    ["--deadline", "2200000"],
    ["--deadline", "2147483.5"],
    ["--grace", "2147484"],
    ["--request-timeout", "2147483648"],
  ]) {
    assert.match(usageError(args), new RegExp(`'${args[0]} .*at most 2147483`), String(args[0]));
  }

  const { backend, env } = await startServices(t);
  // Each fits alone, but with the exit margin the deadline's bound would not: one line, exit 2.
  const sum = await run(["--json", "--deadline", "2147483", "--grace", "1"], { env });
  assertRefused(
    sum,
    2,
    /--deadline 2147483s \+ --grace 1s \+ 1\.5s to exit is more than 2147483s/,
    "sum",
  );
  assert.equal(backend.requests.length, 0, "a usage error sends nothing");

  // The largest that fit, through the bin: a sweep runs with them (no timer fires early).
  const res = await run(
    ["--json", ...["--deadline", "2147471.5", "--grace", "10", "--request-timeout", "2147483647"]],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).counts.not_started, 0);
  assert.ok(backend.writes.length > 0, "the sweep ran");
});

test("--concurrency and CONCURRENCY refuse the same values, past 1024 included", async (t) => {
  for (const value of ["1025", "99999999999", "Infinity", "0", "1e3"]) {
    assert.match(
      usageError(["--concurrency", value]),
      /'--concurrency <n>' .* must be a positive integer, at most 1024/,
      value,
    );
    assert.deepEqual(
      configProblems({ ...USABLE_ENV, CONCURRENCY: value }).map((l) => l.split(",")[0]),
      ["CONCURRENCY must be a positive integer"],
      value,
    );
  }
  // 1024 itself, through the bin: a sweep runs at it.
  const { env } = await startServices(t);
  const res = await run(["--json"], { env: { ...env, CONCURRENCY: "1024" } });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(parseReport(res.stdout).concurrency, 1024);
});

test("a *_FILE naming a device, a FIFO, a directory or a huge file is exit 3 at once", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "inputs");
  const fifo = join(dir, "fifo");
  const made = spawnSync("mkfifo", [fifo]);
  assert.equal(made.status, 0, String(made.stderr));
  symlinkSync(fifo, join(dir, "link-to-fifo"));
  const huge = join(dir, "huge");
  writeFileSync(huge, "");
  truncateSync(huge, 100 * 1024 * 1024); // sparse: no disk used
  const notRegular = /the file it names is not a regular file/;
  // Those that would block or never end a read, through the bin, all at once: a FIFO would block
  // the old open forever, and the bound here turns that into a failure. One line each.
  const blocking = {
    BACKEND_PASSWORD_FILE: fifo,
    BACKEND_USERNAME_FILE: join(dir, "link-to-fifo"),
    BACKEND_TOKEN_FILE: "/dev/zero",
  };
  const res = await run(["--json"], {
    env: { ...env, BACKEND_USERNAME: undefined, BACKEND_PASSWORD: undefined, ...blocking },
    timeoutMs: 10_000,
  });
  assert.equal(res.code, 3, res.stderr);
  const lines = beforeFinished(res.stderr);
  assert.equal(lines.length, 3, res.stderr);
  for (const variable of Object.keys(blocking)) {
    const line = lines.find((l) => l.includes(`${variable}:`)) ?? "";
    assert.match(line, new RegExp(`^\\[error\\] ${variable}: ${notRegular.source}`), variable);
  }
  assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
  assert.equal(parseReport(res.stdout).exitCode, 3);
  assert.equal(backend.requests.length, 0, "nothing was sent");
  // The rest in-process: a directory, and a file too large for a secret.
  const cases: Array<[string, string, RegExp]> = [
    ["BACKEND_TOKEN_FILE", dir, notRegular],
    ["BACKEND_TOKEN_FILE", huge, /the file it names is larger than 64 KiB/],
  ];
  for (const [variable, path, pattern] of cases) {
    const lines = configProblems({ ...USABLE_ENV, BACKEND_TOKEN: undefined, [variable]: path });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0] as string, new RegExp(`^${variable}: ${pattern.source}`), path);
  }
});

test("a *_FILE reached through symlinks, as Kubernetes mounts a Secret, is read", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "inputs");
  // The layout of a mounted Secret: password -> ..data/password, ..data -> ..<timestamp>/
  mkdirSync(join(dir, "..2026_11_26"));
  writeFileSync(join(dir, "..2026_11_26", "password"), `${DEMO_USER.password}\n`);
  symlinkSync("..2026_11_26", join(dir, "..data"));
  symlinkSync(join("..data", "password"), join(dir, "password"));
  const res = await run(["--json"], {
    env: { ...env, BACKEND_PASSWORD: undefined, BACKEND_PASSWORD_FILE: join(dir, "password") },
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(backend.logins, 1);
});

test("a base URL with a query or fragment, or a token with control characters, is exit 3", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const dir = tempDir(t, "inputs");
  writeFileSync(join(dir, "token"), "zqx.def.ghi\r\n\n");
  const token = { ...env, BACKEND_USERNAME: undefined, BACKEND_PASSWORD: undefined };
  // The bin once: a token file with a carriage return is exit 3, and the token is never shown.
  const res = await run(["--json"], { env: { ...token, BACKEND_TOKEN_FILE: join(dir, "token") } });
  assertRefused(res, 3, /BACKEND_TOKEN_FILE must be printable ASCII/, "BACKEND_TOKEN_FILE");
  assert.ok(
    // "zqx" cannot occur in the report's random UUID runId, unlike hex letters.
    !res.stderr.includes("zqx") && !res.stdout.includes("zqx"),
    "the token is never shown",
  );
  assert.equal(backend.requests.length + ml.requests.length, 0, "nothing was sent");
  // Each value in-process: one line, the token never in it.
  const cases: Array<[Record<string, string | undefined>, RegExp]> = [
    [
      { ...env, PATIENT_SERVER: `${env.PATIENT_SERVER}/?tenant=1` },
      /PATIENT_SERVER must not have a query/,
    ],
    [{ ...env, ML_SERVER: `${env.ML_SERVER}#x` }, /ML_SERVER must not have a query/],
    [
      { ...env, PATIENT_SERVER: `${env.PATIENT_SERVER}/a\npi` },
      /PATIENT_SERVER must not contain spaces or control/,
    ],
    [{ ...env, ML_SERVER: "http://[::1" }, /ML_SERVER must be an http/],
    [{ ...token, BACKEND_TOKEN: "zqx\ndef" }, /BACKEND_TOKEN must be printable ASCII/],
    [{ ...token, BACKEND_TOKEN: "zqx\u007f" }, /BACKEND_TOKEN must be printable ASCII/],
    [{ ...token, BACKEND_TOKEN: "tok€n" }, /BACKEND_TOKEN must be printable ASCII/],
    [{ ...token, TOKEN: "a\tb" }, /TOKEN must be printable ASCII/],
  ];
  for (const [caseEnv, pattern] of cases) {
    const lines = configProblems(caseEnv, {}, dir);
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0] as string, pattern);
    assert.ok(!(lines[0] as string).includes("zqx"), "the token is never shown");
  }
});

test("DOTENV_* variables change neither how the env file is read nor stdout", async (t) => {
  const password = "pa#ss word";
  const { backend, env } = await startServices(t, {
    backend: { users: { [DEMO_USER.username]: password } },
  });
  const dir = tempDir(t, "inputs");
  // A value with # is quoted, else the rest of the line is a comment.
  writeFileSync(
    join(dir, ".env"),
    `PATIENT_SERVER=${env.PATIENT_SERVER} # the backend\nML_SERVER=${env.ML_SERVER}\nBACKEND_USERNAME=${DEMO_USER.username}\nBACKEND_PASSWORD="${password}"\n`,
  );
  writeFileSync(join(dir, "other.env"), "PATIENT_SERVER=http://127.0.0.1:9\n");
  for (const dotenv of [
    { DOTENV_DEBUG: "true" },
    { DOTENV_CONFIG_DEBUG: "true", DOTENV_CONFIG_QUIET: "false", DOTENV_QUIET: "false" },
    { DOTENV_ENCODING: "hex", DOTENV_FAST: "true", DOTENV_PATH: join(dir, "other.env") },
    { DOTENV_CONFIG_ENCODING: "base64", DOTENV_CONFIG_PATH: join(dir, "other.env") },
  ]) {
    const what = Object.keys(dotenv).join(" ");
    const res = await run(["--json"], { env: dotenv, cwd: dir });
    assert.equal(res.code, 0, `${what}: ${res.stderr}`);
    const report = parseReport(res.stdout);
    assert.equal(report.counts.selected, 8, what);
    assert.doesNotMatch(res.stderr, /inject|encoding|\u2506|\u25c7/i, `${what}: nor on stderr`);
  }
  assert.equal(backend.logins, 4);
});

/** Runs the bin in `dir`, removed after the shell entered it and before Node starts. */
function runInRemovedDir(
  dir: string,
  args: string[],
  env: Record<string, string>,
): Promise<RunResult> {
  const script = 'cd "$1" && rmdir "$1" && shift && exec "$@"';
  const child = spawn("/bin/sh", ["-c", script, "sh", dir, process.execPath, "--", BIN, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    cwd: tmpdir(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test("a working directory that no longer exists is exit 3 with one line; --help still works", async (t) => {
  const { backend, env } = await startServices(t);
  const parent = tempDir(t, "inputs");
  const gone = join(parent, "gone");
  mkdirSync(gone);
  const res = await runInRemovedDir(gone, ["--json"], env);
  assertRefused(res, 3, /^\[error\] The working directory no longer exists/, "removed cwd");
  assert.equal(parseReport(res.stdout).error.code, "config");
  assert.equal(backend.requests.length, 0);

  mkdirSync(gone);
  const help = await runInRemovedDir(gone, ["--help"], env);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: ml-scheduler/);
});

const good = (pid: number) => ({
  pid,
  admit_time: "2026-01-01T00:00:00",
  firstname: "A",
  lastname: "B",
  age: null,
  gender: null,
  status: { id: 9, text: "Normal" },
});
const isPatientWork = (r: { path: string }) =>
  r.path === "/api/patient/fetchVitals" || r.path === "/api/patient/updateStatus";

test("a patient list mostly invalid, or with over 1000 invalid records, is a contract break: exit 5 before any patient", async (t) => {
  const cases: Array<[string, unknown[], number[] | undefined, RegExp]> = [
    // More than half invalid, judged on the whole list even when --patient picks a good one.
    [
      "more than half",
      [good(1), good(2), 0, "x", { pid: 3 }],
      [1],
      /: 3 of its 5 records are invalid/,
    ],
    [
      "over 1000 of a list mostly good",
      [...Array.from({ length: 2000 }, (_, i) => good(i + 1)), ...Array(1001).fill(null)],
      undefined,
      /: more than 1000 of its first 3001 records are invalid/,
    ],
    // Read no further than the 1,001st invalid record.
    [
      "100,000 invalid",
      Array(100_000).fill(0),
      undefined,
      /: more than 1000 of its first 1001 records are invalid/,
    ],
  ];
  for (const [what, list, patients, pattern] of cases) {
    const { backend, ml, env } = await startServices(t);
    backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
      kind: "body",
      body: JSON.stringify(list),
    });
    const report = await runSweep(sweepConfig(env, { patients }));
    assert.equal(report.exitCode, 5, what);
    assert.equal(report.error?.code, "upstream", what);
    assert.match(report.error?.message ?? "", pattern, what);
    assert.match(report.error?.message ?? "", /check that PATIENT_SERVER is the patient backend/);
    assert.ok((report.error?.message ?? "").length < 300, `${what}: the records are not listed`);
    assert.equal(report.patients.length, 0, what);
    assert.ok(!backend.requests.some(isPatientWork), `${what}: no patient was started`);
    assert.ok(!ml.requests.some((r) => r.path === "/predict" && r.body !== "[]"), what);
  }
});

test("duplicates are not invalid: a list of only duplicates fails per record, not as a whole", async (t) => {
  const { backend, env } = await startServices(t);
  const list = [good(1), good(1), good(1), good(2), good(2), good(3), 0];
  backend.fault((r) => r.path === "/api/patient/fetchAllPatients", {
    kind: "body",
    body: JSON.stringify(list),
  });
  const report = await runSweep(sweepConfig(env));
  assert.equal(report.exitCode, 1);
  assert.equal(report.error, null);
  const reasons = report.patients.map((p) => `${p.pid}:${p.reason ?? p.outcome}`).sort();
  assert.deepEqual(reasons, [
    "1:duplicate_record",
    "2:duplicate_record",
    "3:unchanged",
    "null:invalid_record",
  ]);
});
