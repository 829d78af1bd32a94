/**
 * The command-line options, declared once as data, by the key commander gives each flag: the CLI
 * registers them with commander, config resolves each from its flag, its environment variable and
 * its default into one typed `Options` object, and the README mirrors them. A value is parsed by
 * its rule (rules.ts): a bad flag is a usage error (exit 2), a bad variable a config error (exit 3).
 */
import type { z } from "zod";
import { DEFAULTS, LIMITS } from "../defaults.ts";
import { addGroupingLabel, RULES, type Rule } from "./rules.ts";

/** The commands a flag belongs to: `global` flags work with every command, anywhere on the line. */
export type OptionScope = "global" | "sweep";

/**
 * One flag, declared once: commander registers it (parsing with `rule`, exit 2), config resolves
 * its environment variable with the same rule (exit 3) and applies `default`, --help shows all of
 * it, and a test checks that the README's tables list it.
 */
export interface OptionSpec {
  flags: string;
  description: string;
  scope: OptionScope;
  /** Environment variable (also read from the env file) behind the flag. */
  env?: string;
  /** The rule (in rules.ts) that parses the flag's (and the variable's) text into its value. */
  rule?: Rule;
  /** A parser of its own, for a flag that adds up over repeats (`--patient`). */
  parse?: (value: string, previous: unknown) => unknown;
  /** Applied by config after the flag and the environment. */
  default?: unknown;
  /** The key of a flag it cannot be given with: a usage error (exit 2). */
  conflicts?: string;
}

/** `--patient 3 --patient 5` and `--patient 3,5` both add up; duplicates drop out. */
function pidList(value: string, previous: unknown): number[] {
  const pids = new Set(Array.isArray(previous) ? (previous as number[]) : []);
  for (const part of value.split(",")) {
    if (!/^[1-9]\d*$/.test(part.trim()) || !Number.isSafeInteger(Number(part))) {
      throw new Error("expected positive integer pids, e.g. --patient 3,5.");
    }
    pids.add(Number(part));
  }
  return [...pids];
}

/** `--pushgateway-label a=x --pushgateway-label b=y` add up, in order. */
function groupingLabels(value: string, previous: unknown): Array<[string, string]> {
  const labels = Array.isArray(previous) ? (previous as Array<[string, string]>) : [];
  const added = addGroupingLabel(labels, value);
  if (typeof added === "string") throw new Error(`It ${added}.`);
  return added;
}

export const OPTIONS = {
  patient: {
    flags: "--patient <pid>",
    description: "only these patients; repeatable or comma-separated",
    scope: "sweep",
    parse: pidList,
  },
  shard: {
    flags: "--shard <i/n>",
    description:
      "only the patients whose pid mod n is i (0 <= i < n); records without a pid go to shard 0",
    scope: "sweep",
    env: "SHARD",
    rule: RULES.shard,
    conflicts: "shards",
  },
  shards: {
    flags: "--shards <n>",
    description: "like --shard, with i from JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job)",
    scope: "sweep",
    env: "SHARDS",
    rule: RULES.shards,
  },
  dryRun: {
    flags: "--dry-run",
    description: "fetch and predict, but write nothing",
    scope: "sweep",
  },
  concurrency: {
    flags: "--concurrency <n>",
    description: `patients handled at the same time, at most ${LIMITS.concurrency}; or auto / auto:<max> to follow the services' latency and overload answers (max ${DEFAULTS.adaptiveMaxConcurrency} unless given)`,
    scope: "sweep",
    env: "CONCURRENCY",
    rule: RULES.concurrency,
    default: DEFAULTS.concurrency,
  },
  json: {
    flags: "--json",
    description: "print the report as one JSON document",
    scope: "global",
  },
  verbose: {
    flags: "--verbose",
    description: "log every patient's outcome on stderr",
    scope: "global",
  },
  quiet: {
    flags: "--quiet",
    description: "log only errors on stderr; no progress line",
    scope: "global",
  },
  logFormat: {
    flags: "--log-format <format>",
    description: "stderr as human lines or one JSON object per line",
    scope: "global",
    env: "LOG_FORMAT",
    rule: RULES.logFormat,
    default: "human",
  },
  envFile: {
    flags: "--env-file <path>",
    description: "read settings from this file (default: .env, if there)",
    scope: "global",
  },
  requestTimeout: {
    flags: "--request-timeout <duration>",
    description:
      "timeout of each request attempt (a bare number is milliseconds; or 500ms, 10s, 4m)",
    scope: "global",
    env: "REQUEST_TIMEOUT",
    rule: RULES.milliseconds,
    default: DEFAULTS.requestTimeoutMs,
  },
  retries: {
    flags: "--retries <n>",
    description: `retries of a request after a network error, timeout, 408, 429 or 5xx, at most ${LIMITS.retries}; of the login only if it cannot have started`,
    scope: "global",
    rule: RULES.retries,
    default: DEFAULTS.retries,
  },
  maxListMib: {
    flags: "--max-list-mib <n>",
    description: `the longest patient list accepted, in MiB; a longer one fails the run (default ${DEFAULTS.maxListMib}: about 400,000 patients)`,
    scope: "global",
    env: "MAX_LIST_MIB",
    rule: RULES.listMib,
    default: DEFAULTS.maxListMib,
  },
  maxRps: {
    flags: "--max-rps <n>",
    description: `at most n requests per second to each service, logins, probes and retries included; from ${LIMITS.minRps} to ${LIMITS.maxRps}, fractions allowed`,
    scope: "global",
    env: "MAX_RPS",
    rule: RULES.requestsPerSecond,
  },
  breaker: {
    flags: "--breaker <n>",
    description: "stop after n patients in a row failed because one service is unavailable",
    scope: "sweep",
    rule: RULES.positive,
    default: DEFAULTS.breaker,
  },
  maxFailures: {
    flags: "--max-failures <n>",
    description: "stop after n failed patients of any kind",
    scope: "sweep",
    rule: RULES.positive,
  },
  deadline: {
    flags: "--deadline <duration>",
    description: `start nothing after this long (a bare number is seconds; or 500ms, 10s, 4m); in-flight work gets --grace, then is aborted; with --grace at most ${LIMITS.timerSeconds - DEFAULTS.exitMarginSeconds}s`,
    scope: "sweep",
    env: "DEADLINE",
    rule: RULES.seconds,
  },
  grace: {
    flags: "--grace <duration>",
    description:
      "after a signal or the deadline, time for in-flight patients to finish (a bare number is seconds; or 500ms, 10s, 4m)",
    scope: "sweep",
    env: "GRACE",
    rule: RULES.seconds,
    default: DEFAULTS.graceSeconds,
  },
  lock: {
    flags: "--lock <file>",
    description: "skip this run (exit 7) while another run holds the lock",
    scope: "sweep",
  },
  metricsFile: {
    flags: "--metrics-file <path>",
    description:
      "after each sweep, write its metrics there atomically (Prometheus text, for node_exporter's textfile collector); {shard} in the path is the shard's index",
    scope: "sweep",
    env: "METRICS_FILE",
    rule: RULES.path,
  },
  pushgateway: {
    flags: "--pushgateway <url>",
    description: "after each sweep, push its metrics to this Prometheus Pushgateway",
    scope: "sweep",
    env: "PUSHGATEWAY_URL",
    rule: RULES.httpUrl,
  },
  pushgatewayLabel: {
    flags: "--pushgateway-label <name=value>",
    description:
      "add this label to the push's grouping key, so deployments sharing a gateway keep apart; repeatable (not job, shard or __*)",
    scope: "sweep",
    env: "PUSHGATEWAY_LABELS",
    rule: RULES.groupingLabels,
    parse: groupingLabels,
  },
  reportFile: {
    flags: "--report-file <path>",
    description: "also write the JSON report to this file, atomically (with or without --json)",
    scope: "sweep",
    rule: RULES.path,
  },
  pingUrl: {
    flags: "--ping-url <url>",
    description: "ping this healthchecks.io-style check URL when the sweep starts and ends",
    scope: "sweep",
    env: "PING_URL",
    rule: RULES.pingUrl,
  },
  stateDir: {
    flags: "--state-dir <dir>",
    description:
      "keep the login's token, where to start the patient list and the predictions made here between runs (created 0700)",
    scope: "sweep",
    env: "STATE_DIRECTORY",
  },
  reuseFor: {
    flags: "--reuse-for <duration>",
    description:
      "with --state-dir, reuse a prediction made for exactly the same vital records for a random half to all of this (a bare number is seconds; or 30m, 1h); 0 turns reuse off",
    scope: "sweep",
    env: "REUSE_FOR",
    rule: RULES.reuseFor,
    default: DEFAULTS.reuseForMs,
  },
  full: {
    flags: "--full",
    description:
      "ask the ML server for every patient, reusing no prediction (and remember the new ones)",
    scope: "sweep",
  },
  maxVitalsAge: {
    flags: "--max-vitals-age <duration>",
    description:
      "skip a patient whose newest vital record is older than this (stale_vitals; a bare number is seconds; or 30m, 1h); needs vitals with timestamps: without them every patient fails (no_vitals_timestamp)",
    scope: "global",
    env: "MAX_VITALS_AGE",
    rule: RULES.maxAge,
  },
} as const satisfies Record<string, OptionSpec>;

/** An option's key: commander's attribute name of its flag (`--request-timeout` is `requestTimeout`). */
export type OptionKey = keyof typeof OPTIONS;

/** What an option's value is once parsed: its rule's output, its parser's, or a switch's boolean. */
type ValueOf<S> = S extends { rule: infer R extends Rule }
  ? z.output<R>
  : S extends { parse: (value: string, previous: unknown) => infer V }
    ? V
    : S extends { flags: `${string}<${string}>` }
      ? string
      : boolean;

/** Every option's final value (flag, else variable, else default): unset only without a default. */
export type Options = {
  -readonly [K in OptionKey]: (typeof OPTIONS)[K] extends { default: unknown }
    ? ValueOf<(typeof OPTIONS)[K]>
    : ValueOf<(typeof OPTIONS)[K]> | undefined;
};

/** The options as a list of key and declaration, in --help's order. */
export const OPTION_LIST = Object.entries(OPTIONS) as Array<[OptionKey, OptionSpec]>;
