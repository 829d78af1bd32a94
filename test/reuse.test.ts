/**
 * Incremental sweeps (issue 15): predictions remembered in --state-dir and reused for the same
 * question, through the real bin against the stand-ins; the memory's own rules in-process.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  type PredictionStoreOptions,
  predictionStore,
  predictionsFileName,
} from "../src/host/predictions.ts";
import { openStateDir } from "../src/host/state.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { startMl } from "./stand-ins/ml.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isPredict = (r: RecordedRequest) => r.path === "/predict";
const PREDICTIONS = /^predictions-[0-9a-f]{32}(-shard-\d+-of-\d+)?\.txt$/;

/** Requests to /predict the ML server received from `from` on (the health check is a GET). */
const predictsSince = (requests: RecordedRequest[], from: number) =>
  requests.slice(from).filter(isPredict).length;

const sweep = (env: Record<string, string>, dir: string, args: string[] = []) =>
  run(["--json", "--verbose", "--log-format", "json", "--state-dir", dir, ...args], { env });

/** The JSON log lines of the patients, by pid (`patient_id` in the logs). */
function patientLines(stderr: string): Map<number, Record<string, unknown>> {
  const lines = new Map<number, Record<string, unknown>>();
  for (const text of stderr.trim().split("\n")) {
    const line = JSON.parse(text);
    if (typeof line.outcome === "string" && typeof line.patient_id === "number")
      lines.set(line.patient_id, line);
  }
  return lines;
}

/** The one predictions file of the directory (of this shard name, if given). */
function predictionsFile(dir: string, shard = ""): string {
  const names = readdirSync(dir).filter(
    (n) => PREDICTIONS.test(n) && (shard === "" ? !n.includes("-shard-") : n.includes(shard)),
  );
  assert.equal(names.length, 1, `one predictions file${shard ? ` of ${shard}` : ""}: ${names}`);
  return join(dir, names[0] as string);
}

/** Every file of the directory with its modification time and a hash of its content (a token). */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const hash = createHash("sha256").update(readFileSync(path)).digest("hex");
    files.set(name, `${statSync(path).mtimeMs} ${hash}`);
  }
  return files;
}

type Entry = [pid: number, fingerprint: string, status: number, at: number];

/** A predictions file: its JSON head line, then one `pid fingerprint status time` line each. */
function readPredictions(file: string): { head: Record<string, unknown>; entries: Entry[] } {
  const [head, ...lines] = readFileSync(file, "utf8").trimEnd().split("\n");
  const entries = lines.map((line) => {
    const [pid, fp, status, at] = line.split(" ");
    return [Number(pid), fp, Number(status), Number(at)] as Entry;
  });
  return { head: JSON.parse(head ?? ""), entries };
}

function predictionsText(head: Record<string, unknown>, entries: Entry[]): string {
  return `${JSON.stringify(head)}\n${entries.map((e) => `${e.join(" ")}\n`).join("")}`;
}

/** Sets every entry's prediction time to `ago` ms before now (keeping the file 0600). */
function predictedAgo(file: string, ago: number): void {
  const { head, entries } = readPredictions(file);
  for (const entry of entries) entry[3] = Date.now() - ago;
  writeFileSync(file, predictionsText(head, entries), { mode: 0o600 });
}

/** The pids whose entry is less than a minute old. */
function recentPids(file: string): number[] {
  const { entries } = readPredictions(file);
  return entries.filter((e) => Date.now() - e[3] < 60_000).map((e) => e[0]);
}

test("unchanged vitals reuse every prediction; one new record predicts that patient only; a status changed by someone else is written back from the remembered prediction", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const dir = tempDir(t, "reuse");
  const metrics = join(dir, "metrics.prom");

  const first = await sweep(env, dir);
  assert.equal(first.code, 0, first.stderr);
  const one = parseReport(first.stdout);
  assert.equal(one.version, 2);
  assert.deepEqual(one.predictions, { made: 7, reused: 0 });
  assert.equal(predictsSince(ml.requests, 0), 7);
  const file = predictionsFile(dir);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "prediction-key.json")).mode & 0o777, 0o600);
  // Only pid, fingerprint, status id and time: never a vital.
  const fileLines = readFileSync(file, "utf8").trimEnd().split("\n");
  assert.equal(fileLines.length, 8, "a head and seven entries");
  for (const line of fileLines.slice(1))
    assert.match(line, /^[1-7] [A-Za-z0-9_-]{22} [19] \d{13}$/);

  // Nothing changed: no /predict at all, every patient unchanged, each said to be reused.
  const predicted = ml.requests.length;
  const steady = await sweep(env, join(dir), ["--metrics-file", metrics]);
  assert.equal(steady.code, 0, steady.stderr);
  const two = parseReport(steady.stdout);
  assert.deepEqual(two.predictions, { made: 0, reused: 7 });
  assert.equal(two.counts.unchanged, 7);
  assert.equal(predictsSince(ml.requests, predicted), 0);
  const lines = patientLines(steady.stderr);
  for (const pid of [1, 2, 3, 4, 5, 6, 7]) assert.equal(lines.get(pid)?.reused, true, `pid ${pid}`);
  assert.equal(lines.get(8)?.reused, undefined, "pid 8 has too few vitals: nothing to reuse");
  const human = await run(["--state-dir", dir], { env });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^Predictions: 0 made, 7 reused$/m);
  const text = readFileSync(metrics, "utf8");
  assert.match(text, /^ml_scheduler_predictions\{source="ml"\} 0$/m);
  assert.match(text, /^ml_scheduler_predictions\{source="reused"\} 7$/m);

  // A new record for pid 1: that patient alone is asked again.
  backend.addVital(1, { heart_rate: 80, sao2: 97, respiration: 16, systolic: 122, diastolic: 78 });
  const before = ml.requests.length;
  const changed = await sweep(env, dir);
  assert.equal(changed.code, 0, changed.stderr);
  assert.deepEqual(parseReport(changed.stdout).predictions, { made: 1, reused: 6 });
  const asked = ml.requests.slice(before).filter(isPredict);
  assert.equal(asked.length, 1);
  assert.equal(JSON.parse(asked[0]?.body ?? "")[0].heart_rate, 80, "pid 1's new records");

  // A nurse sets pid 2 (predicted Alert) to Normal: the remembered Alert is written back, as a
  // fresh prediction would be, without asking the ML server.
  backend.setStatus(2, 9);
  const writes = backend.writes.length;
  const again = ml.requests.length;
  const back = await sweep(env, dir);
  assert.equal(back.code, 0, back.stderr);
  const report = parseReport(back.stdout);
  assert.deepEqual(report.predictions, { made: 0, reused: 7 });
  assert.equal(predictsSince(ml.requests, again), 0);
  assert.deepEqual(backend.writes.slice(writes), [{ pid: 2, status: 1 }]);
  const pid2 = report.patients.find((p: { pid: number }) => p.pid === 2);
  assert.deepEqual(
    { outcome: pid2.outcome, from: pid2.from, to: pid2.to },
    { outcome: "updated", from: 9, to: 1 },
  );
  assert.equal(patientLines(back.stderr).get(2)?.reused, true);
});

test("--reuse-for: an entry lives at least half of it and never longer; 0 turns reuse off", async (t) => {
  const { ml, env } = await startServices(t);
  const dir = tempDir(t, "reuse");
  assert.equal((await sweep(env, dir)).code, 0);
  const file = predictionsFile(dir);

  predictedAgo(file, 29 * 60_000); // under half of the default hour: every entry still lives
  const within = await sweep(env, dir);
  assert.deepEqual(parseReport(within.stdout).predictions, { made: 0, reused: 7 });

  predictedAgo(file, 61 * 60_000); // past the hour: none lives
  let from = ml.requests.length;
  const expired = await sweep(env, dir);
  assert.equal(expired.code, 0, expired.stderr);
  assert.deepEqual(parseReport(expired.stdout).predictions, { made: 7, reused: 0 });
  assert.equal(predictsSince(ml.requests, from), 7);
  assert.equal(recentPids(file).length, 7, "re-predicted");

  predictedAgo(file, 10 * 60_000); // --reuse-for 5m lets each live 2.5 to 5 minutes
  const shorter = await sweep(env, dir, ["--reuse-for", "5m"]);
  assert.deepEqual(parseReport(shorter.stdout).predictions, { made: 7, reused: 0 });

  const content = readFileSync(file, "utf8");
  from = ml.requests.length;
  const off = await run(["--json", "--state-dir", dir], { env: { ...env, REUSE_FOR: "0" } });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(parseReport(off.stdout).predictions, { made: 7, reused: 0 });
  assert.equal(readFileSync(file, "utf8"), content, "reuse off: the file is left alone");
});

test("another ML server predicts everything; --full predicts everything and refreshes what is kept", async (t) => {
  const { ml, env } = await startServices(t);
  const other = await startMl();
  t.after(() => other.close());
  const dir = tempDir(t, "reuse");
  assert.equal((await sweep(env, dir)).code, 0);

  const moved = await sweep({ ...env, ML_SERVER: other.url }, dir);
  assert.equal(moved.code, 0, moved.stderr);
  assert.deepEqual(parseReport(moved.stdout).predictions, { made: 7, reused: 0 });
  assert.equal(predictsSince(other.requests, 0), 7);

  // --full asks the ML server again although every entry would be reused.
  const file = predictionsFile(dir);
  predictedAgo(file, 60_000);
  const from = ml.requests.length;
  const full = await sweep({ ...env, ML_SERVER: other.url }, dir, ["--full"]);
  assert.equal(full.code, 0, full.stderr);
  assert.deepEqual(parseReport(full.stdout).predictions, { made: 7, reused: 0 });
  assert.equal(predictsSince(ml.requests, from), 0);
  assert.equal(recentPids(file).length, 7, "refreshed");
});

test("a dry run reads what is remembered and changes nothing in the state directory", async (t) => {
  const { backend, env } = await startServices(t);
  const dir = tempDir(t, "reuse");
  assert.equal((await sweep(env, dir)).code, 0);
  const before = snapshot(dir);
  backend.addVital(1, { heart_rate: 80, sao2: 97, respiration: 16, systolic: 122, diastolic: 78 });
  backend.setStatus(3, 1);

  const dry = await sweep(env, dir, ["--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  const report = parseReport(dry.stdout);
  assert.deepEqual(report.predictions, { made: 1, reused: 6 });
  assert.equal(report.counts.would_update, 1, "pid 3 would go back to Normal");
  assert.deepEqual(snapshot(dir), before, "no prediction remembered, no offset moved");

  // A first run that is a dry run makes no key and no predictions file.
  const empty = tempDir(t, "reuse-dry");
  const first = await sweep(env, empty, ["--dry-run"]);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(
    readdirSync(empty).filter((n) => !n.startsWith("token-")),
    [],
    "only the login's token is kept",
  );
});

test("a damaged, foreign or future-versioned file is one warning, and the run predicts everything", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "reuse");
  assert.equal((await sweep(env, dir)).code, 0);
  const file = predictionsFile(dir);
  const good = readFileSync(file, "utf8");
  const { head, entries } = readPredictions(file);
  const bad: Array<[string, string, RegExp]> = [
    ["garbled", `${good.slice(0, 40)}`, /is not one this version writes/],
    ["future", predictionsText({ ...head, version: 2 }, entries), /is not one this version writes/],
    [
      "status 10 remembered",
      predictionsText(head, [[1, entries[0]?.[1] ?? "", 10, Date.now()]]),
      /is damaged: ignored/,
    ],
    [
      "another backend",
      predictionsText({ ...head, origin: "http://elsewhere" }, entries),
      /another backend/,
    ],
  ];
  for (const [what, text, warning] of bad) {
    writeFileSync(file, text, { mode: 0o600 });
    const res = await sweep(env, dir);
    assert.equal(res.code, 0, `${what}: ${res.stderr}`);
    assert.deepEqual(parseReport(res.stdout).predictions, { made: 7, reused: 0 }, what);
    const warnings = res.stderr.split("\n").filter((l) => l.includes(file));
    assert.equal(warnings.length, 1, `${what}: one warning: ${warnings}`);
    assert.match(warnings[0] ?? "", warning, what);
    assert.equal(readPredictions(file).entries.length, 7, `${what}: rewritten`);
  }
});

test("shards keep a file each: a file of a run with other shards is never read", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "reuse");
  const first = await sweep(env, dir, ["--shard", "0/2"]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(parseReport(first.stdout).predictions.made, 3, "pids 2, 4 and 6");
  const shardFile = predictionsFile(dir, "-shard-0-of-2");

  const other = await sweep(env, dir, ["--shard", "1/2"]);
  assert.deepEqual(parseReport(other.stdout).predictions, { made: 4, reused: 0 });
  predictionsFile(dir, "-shard-1-of-2");
  const whole = await sweep(env, dir);
  assert.deepEqual(parseReport(whole.stdout).predictions, { made: 7, reused: 0 });
  const again = await sweep(env, dir, ["--shard", "0/2"]);
  assert.deepEqual(parseReport(again.stdout).predictions, { made: 0, reused: 3 });

  // A shard's file copied under the unsharded name is foreign: one warning, nothing reused.
  writeFileSync(predictionsFile(dir), readFileSync(shardFile), { mode: 0o600 });
  const copied = await sweep(env, dir);
  assert.equal(copied.code, 0, copied.stderr);
  assert.deepEqual(parseReport(copied.stdout).predictions, { made: 7, reused: 0 });
  assert.match(copied.stderr, /written for another backend, shard or key: ignored/);

  // --patient updates its patients' entries only.
  const file = predictionsFile(dir);
  predictedAgo(file, 60_000);
  const one = await sweep(env, dir, ["--patient", "3", "--full"]);
  assert.deepEqual(parseReport(one.stdout).predictions, { made: 1, reused: 0 });
  assert.deepEqual(recentPids(file), [3]);
  assert.equal(readPredictions(file).entries.length, 7);
});

test("the memory: ML_SERVER's path is part of the question; each entry lives a random half to all of --reuse-for", async (t) => {
  const dir = tempDir(t, "reuse");
  const warnings: string[] = [];
  const state = openStateDir(dir, (w) => warnings.push(w));
  assert.ok(state);
  let clock = Date.parse("2026-12-01T12:00:00Z");
  const hour = 3_600_000;
  const open = (mlServer: string, extra: Partial<PredictionStoreOptions> = {}) =>
    predictionStore(
      state,
      {
        patientServer: "http://backend:8000",
        mlServer,
        reuseForMs: hour,
        full: false,
        dryRun: false,
        maxBytes: 1024 * 1024,
        now: () => clock,
        ...extra,
      },
      (w) => warnings.push(w),
    );
  const question = (pid: number) => JSON.stringify([{ heart_rate: pid }]);
  const pids = Array.from({ length: 200 }, (_, i) => i + 1);
  const first = await open("http://ml:8000/model-a");
  for (const pid of pids) first.remember(pid, question(pid), pid % 2 === 0 ? 1 : 9);
  assert.equal(first.recall(1, question(2)), undefined, "another question");
  await first.save();

  const same = await open("http://ml:8000/model-a");
  assert.equal(same.recall(2, question(2)), 1);
  assert.equal(same.recall(3, question(3)), 9);
  const other = await open("http://ml:8000/model-b");
  assert.equal(other.recall(2, question(2)), undefined, "another path");
  const full = await open("http://ml:8000/model-a", { full: true });
  assert.equal(full.recall(2, question(2)), undefined);

  // Just under half the time every entry lives; at the full time none; in between, some.
  const alive = () => pids.filter((pid) => same.recall(pid, question(pid)) !== undefined).length;
  clock += hour / 2 - 1;
  assert.equal(alive(), pids.length);
  clock += hour / 4;
  const between = alive();
  assert.ok(between > 0 && between < pids.length, `some, not all: ${between}`);
  clock += hour / 4 + 1;
  assert.equal(alive(), 0);
  // A clock set back: an entry from the future is not trusted.
  clock -= 2 * hour;
  assert.equal(alive(), 0);
  assert.deepEqual(warnings, []);

  // A run past --reuse-for drops every entry it did not renew.
  clock += 3 * hour;
  const later = await open("http://ml:8000/model-a");
  later.remember(7, question(7), 9);
  await later.save();
  const file = join(dir, predictionsFileName("http://backend:8000"));
  assert.deepEqual(
    readPredictions(file).entries.map((e) => e[0]),
    [7],
  );
});

test("the memory keeps pids of any shape apart: high halves only, near 2^53, consecutive; each is found after a save and a read", async (t) => {
  const dir = tempDir(t, "reuse");
  const warnings: string[] = [];
  const state = openStateDir(dir, (w) => warnings.push(w));
  assert.ok(state);
  const open = () =>
    predictionStore(
      state,
      {
        patientServer: "http://backend:8000",
        mlServer: "http://ml:8000",
        reuseForMs: 3_600_000,
        full: false,
        dryRun: false,
        maxBytes: 4 * 1024 * 1024,
      },
      (w) => warnings.push(w),
    );
  // Shapes a hash of the low bits, or of the halves folded, would pile into one run of its index.
  const pids = [
    ...Array.from({ length: 3_000 }, (_, i) => (i + 1) * 2 ** 32),
    ...Array.from({ length: 3_000 }, (_, i) => Number.MAX_SAFE_INTEGER - i * 2 ** 20),
    ...Array.from({ length: 3_000 }, (_, i) => (i + 1) * 2 ** 20),
    ...Array.from({ length: 3_000 }, (_, i) => i + 1),
  ];
  assert.equal(new Set(pids).size, pids.length);
  const question = (pid: number) => `[{"pid":${pid}}]`;
  const status = (pid: number) => (pid % 3 === 0 ? 1 : 9);
  const first = await open();
  for (const pid of pids) first.remember(pid, question(pid), status(pid));
  // Remembered again: one entry per pid, the newest answer.
  first.remember(pids[0] as number, question(pids[0] as number), 1);
  await first.save();
  const file = join(dir, predictionsFileName("http://backend:8000"));
  assert.equal(readPredictions(file).entries.length, pids.length);
  const again = await open();
  const wrong = pids.filter(
    (pid, i) => again.recall(pid, question(pid)) !== (i === 0 ? 1 : status(pid)),
  );
  assert.deepEqual(wrong, []);
  assert.equal(again.recall(5_000_000, question(5_000_000)), undefined, "never remembered");
  assert.deepEqual(warnings, []);
});
