/**
 * What a run leaves for machines besides stdout: the metrics file for node_exporter's textfile
 * collector, the push to a Pushgateway and the report file. The real bin against the stand-ins.
 */
import assert from "node:assert/strict";
import { linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { resolveRun } from "../src/config/settings.ts";
import { OUTCOMES } from "../src/core/report.ts";
import { escapeLabelValue, lastSuccessIn } from "../src/notify/metrics.ts";
import { pushUrl } from "../src/notify/pushgateway.ts";
import { configProblems, NO_ENV_FILE, parseArgs, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { beforeFinished, PACKAGE_VERSION, parseReport, run } from "./helpers/exec.ts";
import { demoPatients, secretsOf, startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { type Pushgateway, startPushgateway } from "./stand-ins/pushgateway.ts";

const FAMILIES = [
  "ml_scheduler_build_info",
  "ml_scheduler_last_run_timestamp_seconds",
  "ml_scheduler_last_success_timestamp_seconds",
  "ml_scheduler_run_duration_seconds",
  "ml_scheduler_exit_code",
  "ml_scheduler_patients",
  "ml_scheduler_predictions",
  "ml_scheduler_concurrency",
  "ml_scheduler_requests",
];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Text exposition 0.0.4 as Prometheus reads it, strictly: every line a HELP, a TYPE or a sample;
 * a sample's HELP and TYPE before it; no series twice; a final newline.
 */
function parseExposition(text: string) {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      const into = kind === "HELP" ? help : type;
      assert.ok(!into.has(name), `${kind} ${name} twice`);
      into.set(name, rest);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a sample line: ${line}`);
    const [, name, body = "", raw] = sample as unknown as [string, string, string, string];
    assert.ok(help.has(name) && type.has(name), `HELP and TYPE before ${name}`);
    const labels: Record<string, string> = {};
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/y;
    for (let at = 0; at < body.length; at = pair.lastIndex) {
      pair.lastIndex = at;
      const m = pair.exec(body);
      assert.ok(m, `bad labels: ${body}`);
      labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const series = `${name}${JSON.stringify(labels)}`;
    assert.ok(!seen.has(series), `${series} twice`);
    seen.add(series);
    const value = Number(raw);
    assert.ok(!Number.isNaN(value), `value of ${series}: ${raw}`);
    samples.push({ name, labels, value });
  }
  const one = (name: string, labels: Record<string, string> = {}) => {
    const found = samples.filter(
      (s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels),
    );
    assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}`);
    return (found[0] as Sample).value;
  };
  return { help, type, samples, one };
}

/** Only the named files: a temporary file left beside them would be a failed atomic write. */
function assertOnly(dir: string, names: string[]) {
  assert.deepEqual(readdirSync(dir).toSorted(), names.toSorted());
}

/** Metrics name no patient, vital or secret; every output is free of names and secrets. */
function assertClean(metrics: string, output = "") {
  for (const word of secretsOf(demoPatients()))
    assert.ok(!(metrics + output).includes(word), `leaked ${word}`);
  assert.doesNotMatch(metrics, /pid|heart_rate|sao2|systolic|diastolic|respiration/);
}

/** What ran: the package's version and the Node the tests spawn the bin with (this one). */
const BUILD = { version: PACKAGE_VERSION, node: process.version };

const isVitals = (r: { path: string }) => r.path === "/api/patient/fetchVitals";
const isLogin = (r: { path: string }) => r.path === "/api/login/";

async function gateway(t: TestContext, prefix?: string): Promise<Pushgateway> {
  const g = await startPushgateway(prefix === undefined ? {} : { prefix });
  t.after(() => g.close());
  return g;
}

test("the metrics file is Prometheus text describing the last run, a failed patient included", async (t) => {
  const { backend, ml, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const dir = tempDir(t, "metrics");
  const path = join(dir, "ml_scheduler.prom");
  const before = Date.now() / 1000;
  const res = await run(["--retries", "0", "--metrics-file", path], { env });
  const after = Date.now() / 1000;
  assert.equal(res.code, 1, res.stderr);

  const text = readFileSync(path, "utf8");
  const m = parseExposition(text);
  assert.deepEqual([...m.help.keys()], FAMILIES);
  for (const name of FAMILIES) assert.equal(m.type.get(name), "gauge", name);
  assert.deepEqual(
    m.samples.filter((s) => s.name === "ml_scheduler_patients").map((s) => s.labels.outcome),
    [...OUTCOMES],
    "every outcome, zeros included",
  );
  const expected = { updated: 3, unchanged: 3, skipped: 1, failed: 1 };
  for (const outcome of OUTCOMES) {
    const count = expected[outcome as keyof typeof expected] ?? 0;
    assert.equal(m.one("ml_scheduler_patients", { outcome }), count, outcome);
  }
  assert.equal(m.one("ml_scheduler_exit_code"), 1);
  // Without --state-dir, every status is the ML server's (reuse: test/reuse.test.ts).
  assert.equal(m.one("ml_scheduler_predictions", { source: "ml" }), 6);
  assert.equal(m.one("ml_scheduler_predictions", { source: "reused" }), 0);
  assert.equal(m.one("ml_scheduler_concurrency"), 4, "the fixed --concurrency");
  const lastRun = m.one("ml_scheduler_last_run_timestamp_seconds");
  assert.ok(lastRun >= before - 1 && lastRun <= after + 1, "last run is this run's end");
  assert.equal(m.one("ml_scheduler_last_success_timestamp_seconds"), lastRun, "exit 1 succeeds");
  assert.ok(m.one("ml_scheduler_run_duration_seconds") >= 0);

  const requests = (service: string, statusClass: string) =>
    m.one("ml_scheduler_requests", { service, class: statusClass });
  assert.equal(requests("backend", "5xx"), 1, "the failed vitals request");
  assert.equal(requests("backend", "2xx"), backend.requests.length - 1);
  assert.equal(requests("ml", "2xx"), ml.requests.length);
  for (const c of ["3xx", "4xx", "none"]) assert.equal(requests("backend", c), 0, c);
  assert.equal(m.one("ml_scheduler_build_info", BUILD), 1);
  const labels = new Set(m.samples.flatMap((s) => Object.keys(s.labels)));
  assert.deepEqual(
    [...labels].toSorted(),
    ["class", "node", "outcome", "service", "source", "version"],
    "no per-patient label",
  );
  assertClean(text, res.stderr);
  assertOnly(dir, ["ml_scheduler.prom"]);
});

test("a run that did not succeed carries the last success forward; last run and exit code move", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const path = join(dir, "ml_scheduler.prom");
  const ok = await run(["--metrics-file", path], { env });
  assert.equal(ok.code, 0, ok.stderr);
  const first = parseExposition(readFileSync(path, "utf8"));
  const success = first.one("ml_scheduler_last_success_timestamp_seconds");
  assert.equal(success, first.one("ml_scheduler_last_run_timestamp_seconds"));

  backend.fault(isLogin, { kind: "status", status: 500 });
  // The variable instead of the flag, as a CronJob would set it.
  const failed = await run([], { env: { ...env, METRICS_FILE: path } });
  assert.equal(failed.code, 5, failed.stderr);
  const second = parseExposition(readFileSync(path, "utf8"));
  assert.equal(second.one("ml_scheduler_last_success_timestamp_seconds"), success);
  assert.ok(second.one("ml_scheduler_last_run_timestamp_seconds") > success);
  assert.equal(second.one("ml_scheduler_exit_code"), 5);
  for (const outcome of OUTCOMES) assert.equal(second.one("ml_scheduler_patients", { outcome }), 0);
  assertOnly(dir, ["ml_scheduler.prom"]);
});

test("a run ended by its configuration (exit 3) still writes the file; before any success, 0", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const path = join(dir, "ml_scheduler.prom");
  const res = await run([], { env: { ...env, ML_SERVER: "", METRICS_FILE: path } });
  assert.equal(res.code, 3, res.stderr);
  const m = parseExposition(readFileSync(path, "utf8"));
  assert.equal(m.one("ml_scheduler_exit_code"), 3);
  assert.equal(m.one("ml_scheduler_last_success_timestamp_seconds"), 0);

  // A previous file that is not ours to read (garbage, or too large) is not trusted either.
  writeFileSync(path, `ml_scheduler_last_success_timestamp_seconds 12${"#".repeat(70_000)}\n`);
  await run([], { env: { ...env, ML_SERVER: "", METRICS_FILE: path } });
  const again = parseExposition(readFileSync(path, "utf8"));
  assert.equal(again.one("ml_scheduler_last_success_timestamp_seconds"), 0);
});

test("under systemd's UMask=0027 the metrics file is still 0644 for node_exporter; the report file keeps the umask", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const path = join(dir, "ml_scheduler.prom");
  const report = join(dir, "report.json");
  // The umask the unit sets, inherited by the bin (and by its re-execution under the heap cap).
  const umask = ["--import", "data:text/javascript,process.umask(0o027)"];
  const res = await run(["--metrics-file", path, "--report-file", report], {
    env,
    nodeArgs: umask,
  });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(statSync(path).mode & 0o777, 0o644, "node_exporter (another user) reads it");
  assert.equal(statSync(report).mode & 0o777, 0o640, "the report (pids) is not for everyone");
  // Replacing a file keeps the mode too (a new temporary file each time).
  const again = await run(["--metrics-file", path], { env, nodeArgs: umask });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(statSync(path).mode & 0o777, 0o644);
  assertOnly(dir, ["ml_scheduler.prom", "report.json"]);
});

test("check leaves the metrics file alone: it describes sweeps", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const res = await run(["check"], { env: { ...env, METRICS_FILE: join(dir, "m.prom") } });
  assert.equal(res.code, 0, res.stderr);
  assertOnly(dir, []);
});

test("a metrics file that cannot be written is an error line; the exit code stays", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const path = join(dir, "missing", "ml_scheduler.prom");
  const res = await run(["--metrics-file", path], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /\[error\] The metrics file .* could not be written \(ENOENT\)/);
  assertOnly(dir, []);
});

test("the metrics file is replaced, never rewritten in place; a failed write leaves no temporary file", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "metrics");
  const path = join(dir, "ml_scheduler.prom");
  writeFileSync(path, "# an older file\n");
  // A reader holding the old file (here: a second link to it) never sees it change under it.
  linkSync(path, join(dir, "reader"));
  const res = await run(["--metrics-file", path], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(readFileSync(join(dir, "reader"), "utf8"), "# an older file\n");
  assert.notEqual(statSync(path).ino, statSync(join(dir, "reader")).ino);
  parseExposition(readFileSync(path, "utf8"));
  assertOnly(dir, ["ml_scheduler.prom", "reader"]);

  // A directory holds the name: it is never replaced (files.test.ts has every other kind), one
  // error line, and no temporary file is left.
  const blocked = join(dir, "blocked.prom");
  mkdirSync(blocked);
  const failed = await run(["--metrics-file", blocked], { env });
  assert.equal(failed.code, 0, failed.stderr);
  assert.match(
    failed.stderr,
    /\[error\] The metrics file .*blocked\.prom was not written: it is not a regular file/,
  );
  assertOnly(dir, ["blocked.prom", "ml_scheduler.prom", "reader"]);
});

test("the Pushgateway gets one POST of the metrics under job ml_scheduler, a path prefix kept", async (t) => {
  const { env } = await startServices(t);
  const g = await gateway(t, "/pushgateway");
  const res = await run(["--pushgateway", `${g.url}/pushgateway/`], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(g.pushes.length, 1);
  const [push] = g.pushes;
  assert.equal(push?.method, "POST");
  assert.equal(push?.path, "/pushgateway/metrics/job/ml_scheduler");
  assert.match(String(push?.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  const m = parseExposition(push?.body ?? "");
  assert.deepEqual([...m.help.keys()], FAMILIES);
  assert.equal(m.one("ml_scheduler_exit_code"), 0);
  assert.equal(m.one("ml_scheduler_patients", { outcome: "updated" }), 4);
  assert.equal(m.one("ml_scheduler_build_info", BUILD), 1);
  assertClean(push?.body ?? "");
});

test("a push for a failed run leaves the last success out, so the gateway keeps the last one", async (t) => {
  const { backend, env } = await startServices(t);
  const g = await gateway(t);
  const withGateway = { ...env, PUSHGATEWAY_URL: g.url };
  assert.equal((await run([], { env: withGateway })).code, 0);
  const group = () => g.groups.get("job/ml_scheduler");
  const success = group()?.get("ml_scheduler_last_success_timestamp_seconds");
  assert.equal(success?.length, 1);

  backend.fault(isLogin, { kind: "status", status: 500 });
  const failed = await run([], { env: withGateway });
  assert.equal(failed.code, 5, failed.stderr);
  assert.equal(g.pushes.length, 2);
  const body = g.pushes[1]?.body ?? "";
  assert.doesNotMatch(body, /last_success/);
  assert.equal(parseExposition(body).one("ml_scheduler_exit_code"), 5);
  assert.deepEqual(group()?.get("ml_scheduler_last_success_timestamp_seconds"), success);
  assert.deepEqual(group()?.get("ml_scheduler_exit_code"), ["ml_scheduler_exit_code 5"]);
});

test("a Pushgateway that is down is an error line after one retry; the exit code stays", async (t) => {
  const { env } = await startServices(t);
  const g = await gateway(t);
  g.down();
  const res = await run(["--pushgateway", g.url], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(g.pushes.length, 2, "one retry");
  assert.match(
    res.stderr,
    /\[error\] The push to the Pushgateway at http:\/\/127\.0\.0\.1:\d+ failed/,
  );
});

test("a stalled Pushgateway is given up within the deadline's bound; the exit code stays", async (t) => {
  const { env } = await startServices(t);
  const g = await gateway(t);
  g.fault(() => true, { kind: "stall" });
  // endBy = 1 s + 1 s grace + 1.5 s: less than two 3 s attempts, so the bound ends the push.
  const res = await run(["--pushgateway", g.url, "--deadline", "1", "--grace", "1"], { env });
  assert.equal(res.code, 0, res.stderr);
  // The first attempt times out at 3 s; the retry would start a second later, past the bound.
  assert.equal(g.pushes.length, 1);
  assert.match(res.stderr, /Pushgateway .* failed \(stopped at the --deadline bound\)/);
});

test("--pushgateway takes a plain http(s) URL: credentials, a query or another scheme are refused", async (t) => {
  for (const url of ["http://user:pw@127.0.0.1:9091", "ftp://gw", "http://gw/?a=1", "gw:9091"]) {
    const flag = usageError(["--pushgateway", url]);
    const refusal =
      /must (not carry credentials|be an http:\/\/ or https:\/\/ URL|not have a query)/;
    assert.match(flag, new RegExp(`--pushgateway <url>.*${refusal.source}`), url);
    assert.ok(!flag.includes("pw@"), "no password echoed");
    const variable = configProblems({ ...USABLE_ENV, PUSHGATEWAY_URL: url });
    assert.equal(variable.length, 1, variable.join("\n"));
    assert.match(variable[0] as string, new RegExp(`^PUSHGATEWAY_URL ${refusal.source}`), url);
  }
  // The bin once for each: the flag is exit 2 and its password is not echoed; the variable exit 3.
  const { env } = await startServices(t);
  const flag = await run(["--pushgateway", "http://user:pw@127.0.0.1:9091"], { env });
  assert.equal(flag.code, 2, flag.stderr);
  assert.match(flag.stderr, /--pushgateway <url>.*must not carry credentials/);
  assert.ok(!flag.stderr.includes("pw@"), "no password echoed");
  const variable = await run([], { env: { ...env, PUSHGATEWAY_URL: "ftp://gw" } });
  assert.equal(variable.code, 3, variable.stderr);
  assert.match(variable.stderr, /PUSHGATEWAY_URL must be an http/);
});

test("--pushgateway-label and PUSHGATEWAY_LABELS: Prometheus names, never job, shard or __*", () => {
  const flags = parseArgs([
    "--pushgateway-label",
    "env=prod",
    "--pushgateway-label",
    "site=a/b,c=d",
  ]).flags;
  assert.deepEqual(flags.pushgatewayLabel, [
    ["env", "prod"],
    ["site", "a/b,c=d"],
  ]);
  const options = resolveRun({
    flags: {},
    env: { ...USABLE_ENV, PUSHGATEWAY_LABELS: "env=prod,zone=" },
    envFile: {},
    cwd: NO_ENV_FILE,
  }).options;
  assert.deepEqual(options.pushgatewayLabel, [
    ["env", "prod"],
    ["zone", ""],
  ]);
  const refused: Array<[string, RegExp]> = [
    ["env", /must be name=value/],
    ["=prod", /label name of letters/],
    ["1env=x", /label name of letters/],
    ["en-v=x", /label name of letters/],
    ["job=other", /must not set job/],
    ["shard=3", /must not set shard/],
    ["__name__=x", /starting with __/],
    ["env=a\tb", /control characters/],
  ];
  for (const [label, message] of refused) {
    assert.match(usageError(["--pushgateway-label", label]), message, label);
    const problems = configProblems({ ...USABLE_ENV, PUSHGATEWAY_LABELS: `ok=1,${label}` });
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0] as string, /^PUSHGATEWAY_LABELS must/, label);
    assert.match(problems[0] as string, message, label);
  }
  assert.match(
    usageError(["--pushgateway-label", "env=a", "--pushgateway-label", "env=b"]),
    /must not name env twice/,
  );
  assert.match(
    configProblems({ ...USABLE_ENV, PUSHGATEWAY_LABELS: "env=a,env=b" })[0] as string,
    /must not name env twice/,
  );
});

test("--pushgateway-label goes into the grouping key, before the shard, in @base64 where needed", async (t) => {
  const { env } = await startServices(t);
  const g = await gateway(t);
  const res = await run(
    ["--dry-run", "--pushgateway", g.url, "--pushgateway-label", "site=north/1", "--shard", "0/1"],
    { env: { ...env, PUSHGATEWAY_LABELS: "ignored=x" } },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(
    g.pushes.map((p) => p.path),
    ["/metrics/job/ml_scheduler/site@base64/bm9ydGgvMQ/shard/0"],
    "the flag wins over the variable; a slash goes in base64url",
  );
});

test("--report-file holds the document --json prints, with or without --json", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "report");
  const path = join(dir, "report.json");
  writeFileSync(path, "{}\n");
  linkSync(path, join(dir, "reader"));
  const json = await run(["--json", "--report-file", path], { env });
  assert.equal(json.code, 0, json.stderr);
  assert.equal(readFileSync(path, "utf8"), json.stdout);
  assert.equal(readFileSync(join(dir, "reader"), "utf8"), "{}\n", "replaced, not rewritten");

  const human = await run(["--report-file", path], { env });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^8 patients in/);
  const filed = parseReport(readFileSync(path, "utf8"));
  assert.equal(filed.exitCode, 0);
  assert.equal(filed.counts.updated, 0, "the second run found nothing to change");
  assert.notEqual(filed.runId, parseReport(json.stdout).runId);

  // A run that ends before its sweep (exit 3) files its one document too.
  const early = await run(["--json", "--report-file", path], { env: { ...env, ML_SERVER: "" } });
  assert.equal(early.code, 3);
  assert.equal(readFileSync(path, "utf8"), early.stdout);
  assert.equal(parseReport(early.stdout).error.code, "config");
  assertOnly(dir, ["report.json", "reader"]);
});

test("a report file that cannot be written is exit 74 with one error line, after the sweep", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "report");
  const res = await run(["--report-file", join(dir, "missing", "report.json")], { env });
  assert.equal(res.code, 74, res.stderr);
  const errors = beforeFinished(res.stderr).filter((l) => l.startsWith("[error]"));
  assert.equal(errors.length, 1, res.stderr);
  assert.match(errors[0] ?? "", /--report-file .* \(ENOENT\): check that its directory exists/);
  assert.equal(backend.writes.length, 4, "the sweep itself ran");
  assertOnly(dir, []);
});

test("label values are escaped as the exposition format says", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

test("the previous last success is read only from a plain sample line", () => {
  const name = "ml_scheduler_last_success_timestamp_seconds";
  assert.equal(lastSuccessIn(`# HELP ${name} x\n${name} 1767225600.25\n`), 1767225600.25);
  assert.equal(lastSuccessIn(`${name}{} 5\n`), 5);
  for (const bad of [`${name} NaN`, `${name} -1`, `${name} 0x10`, `x${name} 5`, "", `${name}`])
    assert.equal(lastSuccessIn(bad), undefined, bad);
});

test("the push URL keeps the base's path and has a place for the shard in its grouping key", () => {
  assert.equal(
    pushUrl("https://gw.example:9091").href,
    "https://gw.example:9091/metrics/job/ml_scheduler",
  );
  assert.equal(
    pushUrl("http://proxy/prom/push//", [["shard", "3"]]).href,
    "http://proxy/prom/push/metrics/job/ml_scheduler/shard/3",
  );
  assert.equal(
    pushUrl("http://gw", [
      ["shard", "a/b"],
      ["zone", ""],
      ["ward", "Ä 1"],
    ]).pathname,
    "/metrics/job/ml_scheduler/shard@base64/YS9i/zone@base64/=/ward/%C3%84%201",
  );
});
