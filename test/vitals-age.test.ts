/**
 * `--max-vitals-age` (issue 15): stale vitals are skipped, vitals dated in the future are invalid,
 * vitals without timestamps cannot meet the guard; through the real bin, and the rule in-process.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyRule, RULES } from "../src/config/rules.ts";
import { CLOCK_SKEW_MS, freshness } from "../src/core/patient.ts";
import type { Vital } from "../src/services/schemas.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { demoPatients, startServices } from "./helpers/services.ts";
import type { SeedPatient } from "./stand-ins/backend.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const MINUTE = 60_000;
const isPredict = (r: RecordedRequest) => r.path === "/predict";

/** A naive UTC time as the backend writes it, `ms` from now. */
const at = (ms: number) => new Date(Date.now() + ms).toISOString().slice(0, 23);

/** Five records a minute apart, the newest `newest` ms from now. */
const stamps = (newest: number) => [0, 1, 2, 3, 4].map((i) => at(newest - i * MINUTE));

function byPid(report: { patients: Array<{ pid: number }> }) {
  return new Map(report.patients.map((p) => [p.pid, p as Record<string, unknown>]));
}

test("--max-vitals-age: stale vitals are skipped, vitals dated ahead of the clock skew fail as invalid, fresh ones are predicted", async (t) => {
  const patients: SeedPatient[] = demoPatients();
  const when: Record<number, number> = {
    1: -2 * 60 * MINUTE, // two hours old
    2: 10 * MINUTE, // ten minutes ahead: invalid
    3: -MINUTE, // fresh, Alert and recovering: written
    4: 3 * MINUTE, // ahead, within the skew: fresh
  };
  for (const p of patients)
    if (when[p.pid] !== undefined) p.timestamps = stamps(when[p.pid] as number);
  // pids 5 to 7 keep the stand-in's timestamps of November 2026: stale too.
  const { ml, env } = await startServices(t, { backend: { patients, vitalTimestamps: true } });
  const res = await run(["--json", "--max-vitals-age", "1h"], { env });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  const got = byPid(report);
  for (const pid of [1, 5, 6, 7]) {
    assert.deepEqual(
      [got.get(pid)?.outcome, got.get(pid)?.reason],
      ["skipped", "stale_vitals"],
      `pid ${pid}`,
    );
  }
  assert.deepEqual([got.get(2)?.outcome, got.get(2)?.reason], ["failed", "invalid_vitals"]);
  assert.deepEqual([got.get(3)?.outcome, got.get(3)?.to], ["updated", 9]);
  assert.equal(got.get(4)?.outcome, "unchanged");
  assert.equal(ml.requests.filter(isPredict).length, 2, "only pids 3 and 4 were asked");
  assert.doesNotMatch(res.stderr, /\d{4}-\d{2}-\d{2}T/, "no vital's time is said");

  // Without the option, the same vitals are all predicted.
  const plain = await run(["--json"], { env });
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(parseReport(plain.stdout).predictions.made, 7);
});

test("--max-vitals-age with vitals that carry no timestamp: every patient fails (exit 1); check warns; --help says so", async (t) => {
  const { ml, env } = await startServices(t);
  const res = await run(["--json"], { env: { ...env, MAX_VITALS_AGE: "30m" } });
  assert.equal(res.code, 1, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.counts.failed, 7);
  for (const p of report.patients.filter((p: { pid: number }) => p.pid !== 8)) {
    assert.deepEqual([p.stage, p.reason], ["vitals", "no_vitals_timestamp"]);
  }
  assert.equal(ml.requests.filter(isPredict).length, 0);

  const check = await run(["check", "--max-vitals-age", "30m"], { env });
  assert.equal(check.code, 0, check.stderr);
  assert.match(
    check.stderr,
    /pid \d+'s vital records carry no timestamp: with --max-vitals-age every patient would fail/,
  );
  assert.match(check.stdout, /^vitals: WARNING/m);

  const help = await run(["--help"]);
  assert.match(
    help.stdout.replace(/\s+/g, " "),
    /without them every patient fails \(no_vitals_timestamp\)/,
  );
});

test("check with --max-vitals-age and timestamped vitals says so without a warning", async (t) => {
  const { env } = await startServices(t, { backend: { vitalTimestamps: true } });
  const check = await run(["check", "--json", "--max-vitals-age", "30m"], { env });
  assert.equal(check.code, 0, check.stderr);
  const report = JSON.parse(check.stdout);
  // The first listed: the backend lists by status, Alert (pids 3 and 4) first.
  const last = report.steps.at(-1);
  assert.deepEqual({ ...last, detail: undefined }, { step: "vitals", ok: true, detail: undefined });
  assert.match(last.detail, /^pid [34]'s vital records carry timestamps$/);
  assert.doesNotMatch(check.stderr, /WARN/i);
});

const vital = (timestamp?: string): Vital => ({
  heart_rate: 70,
  sao2: 98,
  respiration: 14,
  systolic: 120,
  diastolic: 80,
  ...(timestamp === undefined ? {} : { timestamp }),
});

test("freshness: the age bound and the clock skew are inclusive; one record without a time fails all", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  const iso = (ms: number) => new Date(ms).toISOString();
  const five = (newest: number) => [0, 1, 2, 3, 4].map((i) => vital(iso(newest - i * MINUTE)));
  const hour = 60 * MINUTE;
  assert.equal(freshness(five(now - hour), hour, now), undefined);
  assert.equal(freshness(five(now - hour - 1), hour, now)?.reason, "stale_vitals");
  assert.equal(freshness(five(now + CLOCK_SKEW_MS), hour, now), undefined);
  assert.equal(freshness(five(now + CLOCK_SKEW_MS + 1), hour, now)?.reason, "invalid_vitals");
  const mixed = [...five(now).slice(0, 4), vital()];
  assert.equal(freshness(mixed, hour, now)?.reason, "no_vitals_timestamp");
  // A zone-less time is UTC, as the backend writes it.
  const naive = five(now).map((v) => ({ ...v, timestamp: v.timestamp?.slice(0, 19) }));
  assert.equal(freshness(naive, MINUTE, now + MINUTE), undefined);
});

test("the rules: --reuse-for takes 0 for off; --max-vitals-age does not", () => {
  assert.deepEqual(applyRule(RULES.reuseFor, "0"), { ok: true, value: 0 });
  assert.deepEqual(applyRule(RULES.reuseFor, "90"), { ok: true, value: 90_000 });
  assert.deepEqual(applyRule(RULES.reuseFor, "1h"), { ok: true, value: 3_600_000 });
  assert.equal(applyRule(RULES.reuseFor, "31d").ok, false);
  assert.equal(applyRule(RULES.reuseFor, "-1").ok, false);
  assert.deepEqual(applyRule(RULES.maxAge, "30m"), { ok: true, value: 1_800_000 });
  const zero = applyRule(RULES.maxAge, "0");
  assert.equal(zero.ok, false);
  assert.match(zero.ok ? "" : zero.message, /greater than 0/);
});
