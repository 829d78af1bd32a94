/**
 * What the README promises a newcomer: the stand-ins on their own, a JSON report that matches the
 * committed report.schema.json, durations with units, and a README that needs nothing outside
 * the repository.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { reportJsonSchema } from "../scripts/report-schema.ts";
import { RULES } from "../src/config/rules.ts";
import { Report } from "../src/core/report.ts";
import { EXIT_CODES } from "../src/errors.ts";
import { configProblems, helpText, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { beforeFinished, parseReport, type RunResult, run } from "./helpers/exec.ts";
import { type JsonSchema, validate } from "./helpers/json-schema.ts";
import { startServices } from "./helpers/services.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const root = new URL("../", import.meta.url);
const read = (name: string) => readFileSync(new URL(name, root), "utf8");
const STAND_INS = fileURLToPath(new URL("scripts/stand-ins.ts", root));
const vitalsOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);

/**
 * A real report checked twice: against the committed report.schema.json by the validator in
 * helpers/json-schema.ts (the file users read), and by the zod schema it is generated from. The
 * file and a fresh generation are compared by the first test below.
 */
function assertConforms(report: unknown, what: string): void {
  const schema = JSON.parse(read("report.schema.json")) as JsonSchema;
  assert.deepEqual(validate(schema, report), [], `${what}: report.schema.json`);
  const parsed = Report.safeParse(report);
  assert.ok(parsed.success, `${what}: the zod schema: ${parsed.error?.message}`);
}

/** The sub-schema at a path of keywords, names and indexes; a failed assertion when absent. */
function at(schema: unknown, ...path: Array<string | number>): JsonSchema {
  const found = path.reduce<unknown>(
    (node, key) => (node as Record<string | number, unknown> | undefined)?.[key],
    schema,
  );
  assert.ok(found, `the schema has ${path.join(".")}`);
  return found as JsonSchema;
}

/** Exit `code`, exactly one line on stderr naming `pattern`, and a conforming early report. */
function assertRefused(res: RunResult, code: number, pattern: RegExp, what: string): void {
  assert.equal(res.code, code, `${what}: ${res.stderr}`);
  const said = beforeFinished(res.stderr);
  assert.equal(said.length, 1, `${what}: one line, then the end, got ${res.stderr}`);
  assert.match(res.stderr, pattern, what);
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, code, what);
  assert.deepEqual(report.patients, []);
  assertConforms(report, what);
}

test("report.schema.json is what `npm run report-schema` generates from the zod schema now", () => {
  const committed = JSON.parse(read("report.schema.json"));
  assert.deepEqual(
    committed,
    reportJsonSchema(),
    "report.schema.json is stale: run `npm run report-schema` and commit the file",
  );
  const scripts = JSON.parse(read("package.json")).scripts;
  assert.match(scripts["report-schema"], /^node scripts\/report-schema\.ts\b/);
  assert.match(scripts["stand-ins"], /^node scripts\/stand-ins\.ts$/);
});

test("the schema names every error code and every patient reason", () => {
  const schema = reportJsonSchema();
  assert.deepEqual(
    at(schema, "properties", "error", "anyOf", 0, "properties", "code").enum,
    EXIT_CODES.map((e) => e.name),
  );
  assert.deepEqual(
    at(schema, "properties", "exitCode").enum,
    EXIT_CODES.map((e) => e.code),
  );
  const reason = at(schema, "properties", "patients", "items", "properties", "reason");
  // Every reason src/ produces: TypeScript holds each producer to this list (RequestReason and
  // Reason), and this test holds the documented file to it.
  const reasons = [
    "insufficient_vitals",
    "not_found",
    "invalid_record",
    "duplicate_record",
    "timeout",
    "unreachable",
    "invalid_response",
    "body_too_large",
    "redirect_refused",
    "unconfirmed_write",
    "aborted",
    "auth",
    "relogin_failed",
    "http_404",
    "http_500",
    "http_503",
  ];
  for (const r of reasons) assert.deepEqual(validate(reason, r), [], r);
  for (const r of ["bogus", "http_", "http_5000", "http_-1", "HTTP_500", ""]) {
    assert.notDeepEqual(validate(reason, r), [], `${r} is refused`);
  }
});

test("the validator and the schema refuse what a report must not hold", () => {
  const good = {
    version: 2,
    runId: "3f0c6e1a-2b7d-4a57-9c3e-1d2f3a4b5c6d",
    schedulerVersion: "0.1.0",
    startedAt: "2026-11-27T10:00:00.000Z",
    finishedAt: "2026-11-27T10:00:00.412Z",
    durationMs: 412,
    dryRun: false,
    concurrency: 4,
    adaptive: null,
    offset: 0,
    shard: null,
    exitCode: 1,
    error: null,
    counts: {
      selected: 1,
      updated: 0,
      would_update: 0,
      unchanged: 0,
      skipped: 0,
      failed: 1,
      interrupted: 0,
      not_started: 0,
    },
    predictions: { made: 0, reused: 0 },
    patients: [
      {
        pid: 2,
        outcome: "failed",
        from: 9,
        to: null,
        stage: "vitals",
        reason: "http_500",
        detail: "GET /api/patient/fetchVitals: HTTP 500",
      },
    ],
  };
  assertConforms(good, "the example");
  const schema = JSON.parse(read("report.schema.json")) as JsonSchema;
  const bad: Array<[string, (r: typeof good & Record<string, unknown>) => void]> = [
    ["an unknown reason", (r) => Object.assign(r.patients[0] as object, { reason: "oops" })],
    ["an unknown outcome", (r) => Object.assign(r.patients[0] as object, { outcome: "done" })],
    ["a pid of 0", (r) => Object.assign(r.patients[0] as object, { pid: 0 })],
    ["an exit code not in the table", (r) => Object.assign(r, { exitCode: 9 })],
    ["an unknown error code", (r) => Object.assign(r, { error: { code: "oops", message: "" } })],
    ["a missing field", (r) => delete (r as Record<string, unknown>).runId],
    ["an extra field", (r) => Object.assign(r, { name: "Ava" })],
    ["a count that is not a whole number", (r) => Object.assign(r.counts, { failed: 0.5 })],
    ["a time that is not ISO-8601", (r) => Object.assign(r, { startedAt: "yesterday" })],
  ];
  for (const [what, spoil] of bad) {
    const report = structuredClone(good);
    spoil(report);
    assert.notDeepEqual(validate(schema, report), [], `${what}: report.schema.json`);
    assert.equal(Report.safeParse(report).success, false, `${what}: the zod schema`);
  }
});

/** Reads the stand-ins' four export lines from stdout, within 10 s. */
function exported(child: ChildProcess): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      child.stdout?.off("data", onData);
      reject(new Error(`the stand-ins printed no environment within 10 s; got: ${seen}`));
    }, 10_000);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const lines = [...seen.matchAll(/^export ([A-Z_]+)=(\S+)$/gm)];
      if (lines.length < 4) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      resolve(Object.fromEntries(lines.map((m) => [m[1], m[2]])));
    };
    child.stdout?.on("data", onData);
  });
}

/** The child's exit code and signal, or a rejection (and SIGKILL) after `ms`. */
function exitOf(child: ChildProcess, ms: number): Promise<[number | null, string | null]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the stand-ins did not exit within ${ms} ms`));
    }, ms);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve([code, signal]);
    });
  });
}

test("npm run stand-ins: serves a sweep with the environment it prints, and Ctrl-C ends it with 0", async (t) => {
  // Port 0 for each: a fixed port could be taken by anything else on a test machine.
  const child = spawn(process.execPath, [STAND_INS, "--backend-port", "0", "--ml-port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exit = exitOf(child, 30_000);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    return exit.catch(() => {});
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const env = await exported(child);
  assert.deepEqual(Object.keys(env).toSorted(), [
    "BACKEND_PASSWORD",
    "BACKEND_USERNAME",
    "ML_SERVER",
    "PATIENT_SERVER",
  ]);
  assert.match(env.PATIENT_SERVER as string, /^http:\/\/127\.0\.0\.1:\d+$/);

  const res = await run(["--json", "--request-timeout", "596h", "--deadline", "4m"], {
    env: { ...env, GRACE: "30s" },
  });
  assert.equal(res.code, 0, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.counts.selected, 8, "the demo seed");
  assert.ok(report.counts.updated > 0);
  assertConforms(report, "a successful sweep");

  child.kill("SIGINT");
  assert.deepEqual(await exit, [0, null], stderr);
  assert.match(stderr, /Ctrl-C stops them\.\n.*SIGINT: stopped\.\n$/);
});

test("npm run stand-ins: a port in use is one line and exit 1; a bad argument one line and exit 2", async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as { port: number }).port;

  const stand = (args: string[]) =>
    run(args, { bin: STAND_INS, timeoutMs: 20_000, env: {} }).then((r) => ({
      ...r,
      lines: r.stderr.trim().split("\n"),
    }));
  for (const args of [
    ["--backend-port", String(port), "--ml-port", "0"],
    ["--backend-port", "0", "--ml-port", String(port)],
  ]) {
    const res = await stand(args);
    const flag = args[1] === String(port) ? args[0] : args[2];
    assert.equal(res.code, 1, res.stderr);
    assert.deepEqual(res.lines, [
      `stand-ins: 127.0.0.1:${port} is in use: stop what holds it, or pick another port with ${flag}.`,
    ]);
    assert.equal(res.stdout, "", "no environment printed");
  }
  for (const args of [["--backend-port", "70000"], ["--bogus"]]) {
    const res = await stand(args);
    assert.equal(res.code, 2, res.stderr);
    assert.equal(res.lines.length, 1, res.stderr);
    assert.match(res.stderr, /^stand-ins: .*usage: npm run stand-ins/);
  }
});

test("a partial failure and a run ended by --deadline print reports that match the schema", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(vitalsOf(2), { kind: "status", status: 500 });
  backend.fault(vitalsOf(3), { kind: "stall" });
  const partial = await run(["--json", "--retries", "0", "--request-timeout", "3s"], { env });
  assert.equal(partial.code, 1, partial.stderr);
  const report = parseReport(partial.stdout);
  const reasons = new Map(
    report.patients.map((p: { pid: number; reason: string | null }) => [p.pid, p.reason]),
  );
  assert.equal(reasons.get(2), "http_500");
  assert.equal(reasons.get(3), "timeout", "--request-timeout 3s timed the stall out");
  assertConforms(report, "a partial failure");

  const held = await startServices(t);
  held.backend.hold(vitalsOf(3));
  // The deadline and the grace as variables with units: 2500ms is 2.5 s, 200ms is 0.2 s.
  const ended = await run(["--json", "--concurrency", "1", "--patient", "3,2"], {
    env: { ...held.env, DEADLINE: "2500ms", GRACE: "200ms" },
  });
  assert.equal(ended.code, 8, ended.stderr);
  assert.match(ended.stderr, /Deadline of 2\.5s reached: .* get 0\.2s to finish/);
  const deadline = parseReport(ended.stdout);
  assert.equal(deadline.error.code, "deadline");
  assert.equal(deadline.counts.interrupted, 1);
  assert.equal(deadline.counts.not_started, 1);
  assertConforms(deadline, "a run ended by --deadline");
});

test("an early exit with --json (exit 3, exit 2) prints a report that matches the schema", async (t) => {
  const { backend, env } = await startServices(t);
  const { PATIENT_SERVER: _, ...noBackend } = env;
  assertRefused(
    await run(["--json"], { env: noBackend }),
    3,
    /PATIENT_SERVER is required/,
    "no PATIENT_SERVER",
  );
  assertRefused(
    await run(["--json", "--grace", "10y"], { env }),
    2,
    /^ml-scheduler: .*'--grace <duration>' .* must be a duration .* give a unit: 500ms, 10s, 4m, 1h/,
    "--grace 10y",
  );
  assert.equal(backend.requests.length, 0, "nothing was sent");
});

test("durations take units in flags and variables; a bare number keeps each one's unit", () => {
  // Flags and variables share these rules (commander for the one, config for the other).
  const ms = (v: string) => RULES.milliseconds.parse(v);
  const s = (v: string) => RULES.seconds.parse(v);
  assert.deepEqual(
    ["10000", "500ms", "10s", "1.1s", "4m", "1h"].map(ms),
    [10_000, 500, 10_000, 1_100, 240_000, 3_600_000],
  );
  assert.deepEqual(["10", "0.5", "500ms", "10s", "4m", "1h"].map(s), [10, 0.5, 0.5, 10, 240, 3600]);
  for (const bad of ["10x", "10 s", "s", "-1s", "0ms", "1.5", "0.5ms", "597h", "2147483648"]) {
    assert.equal(RULES.milliseconds.safeParse(bad).success, false, `${bad} ms`);
  }
  for (const bad of ["10x", "1d", "0s", "597h", "2147484", "2147483647ms"]) {
    assert.equal(RULES.seconds.safeParse(bad).success, false, `${bad} s`);
  }

  // As variables (exit 3) and a flag (a usage error, exit 2), in the words the bin prints.
  for (const [name, value] of [
    ["REQUEST_TIMEOUT", "10y"],
    ["DEADLINE", "5d"],
    ["GRACE", "597h"],
  ] as const) {
    const lines = configProblems({ ...USABLE_ENV, [name]: value });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0] as string, new RegExp(`^${name} must be a duration `), name);
  }
  assert.match(usageError(["--request-timeout", "1.5"]), /whole milliseconds/);

  const help = helpText();
  for (const flagName of ["--request-timeout", "--deadline", "--grace"]) {
    const line = help.slice(help.indexOf(`  ${flagName} <`)).split(/\n\s*--/)[0] ?? "";
    assert.match(line.replace(/\s+/g, " "), /a bare number is \w+; or 500ms, 10s, 4m/, flagName);
  }
});

test("the README stands on its own: no link outside the repository, its files exist", () => {
  const readme = read("README.md");
  assert.doesNotMatch(readme, /\.\.\/shared|contract\.md/, "no link to the shared contract");
  const links = [...readme.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)].map((m) => m[1] as string);
  for (const link of links.filter((l) => !/^https?:/.test(l))) {
    assert.ok(!link.startsWith("../"), `${link} leaves the repository`);
    assert.ok(existsSync(new URL(link, root)), `${link} exists`);
  }
  // The two commands a newcomer starts with stay first; then the slow suite, and what CI runs.
  const commands = readme.match(/```sh\n([\s\S]*?)```/)?.[1]?.split("\n") ?? [];
  assert.deepEqual(
    commands.map((line) => line.split("#")[0]?.trim()),
    ["npm ci && npm run demo", "npm test", "npm run test:slow", ""],
  );
  assert.match(readme, /CI \(`\.ci\/run`\) runs `npm test && npm run test:slow`/);
  const ci = read(".ci/run");
  assert.match(ci, /^suite \w+ npm test\nsuite \w+ npm run test:slow$/m, ".ci/run runs both");
  for (const needed of [
    "npm run stand-ins",
    "npm run report-schema",
    "report.schema.json",
    "NODE_USE_ENV_PROXY",
    "NO_PROXY",
    "NODE_EXTRA_CA_CERTS",
    "deb.nodesource.com",
    "nodejs.org/dist",
    "node:24",
  ]) {
    assert.ok(readme.includes(needed), `the README mentions ${needed}`);
  }
});

/** The commands of the README's "Try it in five minutes" (its sh blocks), one a line. */
function quickStartCommands(): string[] {
  const readme = read("README.md");
  const section = readme.slice(
    readme.indexOf("## Try it in five minutes"),
    readme.indexOf("\n## ", readme.indexOf("## Try it in five minutes") + 1),
  );
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    (m[1] as string)
      .split("\n")
      .map((l) => l.replace(/\s+#.*$/, "").trim())
      .filter(Boolean),
  );
}

test("the quick start works as written where the system's node is older: only npm and what npm ci installs", async (t) => {
  const commands = quickStartCommands();
  assert.ok(commands.length >= 5, commands.join("\n"));
  for (const command of commands)
    assert.match(
      command,
      /^(npm (ci|run|exec -- node -- bin\/ml-scheduler\.js)\b|export )/,
      command,
    );

  // A person's shell: the PATH without the checkout's node_modules/.bin, which npm test put first.
  const PATH = (process.env.PATH ?? "")
    .split(":")
    .filter((d) => !d.includes("node_modules"))
    .join(":");
  const systemNode = execFileSync("sh", ["-c", "command -v node && node --version"], {
    env: { PATH },
    encoding: "utf8",
  });
  const { backend, env } = await startServices(t);
  const sweep = commands.find((c) => c.endsWith("--dry-run")) as string;
  const args = sweep.split(" ");
  const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve) =>
      execFile(
        args[0] as string,
        args.slice(1),
        {
          cwd: fileURLToPath(root),
          env: { ...env, PATH, NODE_DISABLE_COMPILE_CACHE: "1" },
          encoding: "utf8",
          timeout: 60_000,
        },
        (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
      ),
  );
  assert.equal(res.code, 0, `${sweep} with the system's node ${systemNode}: ${res.stderr}`);
  assert.match(res.stdout, /^Dry run: 8 patients in .*: 4 would update, 3 unchanged, 1 skipped/m);
  assert.equal(backend.writes.length, 0, "--dry-run");
});
