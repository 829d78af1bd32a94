/**
 * The command-line options, declared once as data: the CLI registers them with commander and the
 * README mirrors them. Values are parsed here, so a bad one is a usage error (exit 2).
 */
import { InvalidArgumentError } from "commander";
import { z } from "zod";
import { DEFAULTS, LIMITS } from "../defaults.ts";
import { PING_URL_RULE } from "../reporters/ping.ts";

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
  /** Parses the flag's (and the variable's) text into its value. */
  rule?: z.ZodType<unknown, string>;
  /** A parser of its own, for a flag that adds up over repeats (`--patient`). */
  parse?: (value: string, previous: unknown) => unknown;
  /** Applied by config after the flag and the environment. */
  default?: unknown;
  /** The key (see optionKey) of a flag it cannot be given with: a usage error (exit 2). */
  conflicts?: string;
}

/** A whole number from min to max, in plain digits; `rule` completes "it ..." and "VARIABLE ...". */
function wholeNumber(min: number, max: number, rule: string) {
  return z
    .string()
    .refine((v) => /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max, { error: rule })
    .transform(Number);
}

/** `--concurrency`: a fixed number, or `{ auto: max }` for the adaptive limiter. */
export type ConcurrencySetting = number | { auto: number };

/** `auto` or `auto:<max>` as the limiter's max; undefined for anything else. */
function autoMax(value: string): number | undefined {
  const match = /^auto(?::(\d+))?$/.exec(value);
  if (!match) return undefined;
  const max = match[1] === undefined ? DEFAULTS.adaptiveMaxConcurrency : Number(match[1]);
  return max >= 1 && max <= LIMITS.concurrency ? max : undefined;
}

/** Milliseconds in each duration unit. */
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
type DurationUnit = keyof typeof UNIT_MS;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/**
 * A duration: a number with a unit (`500ms`, `10s`, `4m`, `1h`), or a bare number in `unit` as
 * before units existed. The value comes out in `unit`, greater than 0 and at most `max`;
 * milliseconds must come out whole (no timer is finer).
 */
function duration(unit: "ms" | "s", max: number, rule: string) {
  return z.string().transform((v, ctx) => {
    const match = DURATION.exec(v);
    const given = (match?.[2] ?? unit) as DurationUnit;
    // Rounded to the microsecond: 1.1 * 1000 is 1100.0000000000002 in floating point.
    const ms = match ? Math.round(Number(match[1]) * UNIT_MS[given] * 1_000) / 1_000 : Number.NaN;
    const value = ms / UNIT_MS[unit];
    if (value > 0 && value <= max && (unit !== "ms" || Number.isInteger(value))) return value;
    ctx.addIssue({ code: "custom", message: rule });
    return z.NEVER;
  });
}

/** How a duration rule's message ends: what a bare number means, and the units. */
const units = (bare: string) => `a bare number is ${bare}, or give a unit: 500ms, 10s, 4m, 1h`;

/**
 * The rule of each numeric setting, declared once: commander applies it to the flag (exit 2) and
 * config to the environment variable behind it (exit 3). Durations stop at Node's timer limit,
 * past which a timer fires after 1 ms instead.
 */
export const RULES = {
  concurrency: z
    .string()
    .refine(
      (v) => (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= LIMITS.concurrency) || autoMax(v),
      {
        error: `must be a positive integer, at most ${LIMITS.concurrency}, or auto or auto:<max> (max from 1 to ${LIMITS.concurrency}; auto alone is auto:${DEFAULTS.adaptiveMaxConcurrency})`,
      },
    )
    .transform((v): ConcurrencySetting => {
      const max = autoMax(v);
      return max === undefined ? Number(v) : { auto: max };
    }),
  requestsPerSecond: z
    .string()
    .refine((v) => /^\d+(\.\d+)?$/.test(v) && Number(v) > 0 && Number(v) <= LIMITS.maxRps, {
      error: `must be a number of requests per second greater than 0 (fractions allowed), at most ${LIMITS.maxRps}`,
    })
    .transform(Number),
  milliseconds: duration(
    "ms",
    LIMITS.timerMs,
    `must be a duration of whole milliseconds greater than 0, at most ${LIMITS.timerMs}ms (24.8 days); ${units("milliseconds")}`,
  ),
  positive: wholeNumber(1, Number.MAX_SAFE_INTEGER, "must be a positive integer"),
  nonNegative: wholeNumber(0, Number.MAX_SAFE_INTEGER, "must be a whole number, 0 or more"),
  seconds: duration(
    "s",
    LIMITS.timerSeconds,
    `must be a duration greater than 0, at most ${LIMITS.timerSeconds}s (24.8 days); ${units("seconds")}`,
  ),
  /** A file path the run writes to: an empty one is a mistake, not "no file". */
  path: z.string().refine((v) => v !== "", { error: "must be a file path, not empty" }),
  /** `--shard i/n`: this run's part of the list, as `{index, count}`. */
  shard: z.string().transform((v, ctx) => {
    const match = /^(\d+)\/(\d+)$/.exec(v);
    const [index, count] = match ? [Number(match[1]), Number(match[2])] : [Number.NaN, 0];
    if (count >= 1 && count <= LIMITS.shards && index < count) return { index, count };
    ctx.addIssue({
      code: "custom",
      message: `must be i/n with 0 <= i < n <= ${LIMITS.shards}, e.g. 0/4 for the first of four shards`,
    });
    return z.NEVER;
  }),
  shards: wholeNumber(1, LIMITS.shards, `must be a whole number from 1 to ${LIMITS.shards}`),
  listMib: wholeNumber(
    1,
    LIMITS.maxListMib,
    `must be a whole number of MiB from 1 to ${LIMITS.maxListMib}`,
  ),
  /** The Pushgateway's base URL: it ends up in log lines, so no credentials in it. */
  httpUrl: z.string().refine(isPlainHttpUrl, {
    error: "must be an http:// or https:// URL without credentials, query or fragment",
  }),
} as const;

/** http(s), parsable, with nothing the URL parser would quietly drop or we would log. */
function isPlainHttpUrl(value: string): boolean {
  if (/[\s\p{Cc}?#]/u.test(value)) return false;
  const url = URL.parse(value);
  return (
    (url?.protocol === "http:" || url?.protocol === "https:") &&
    url.username === "" &&
    url.password === ""
  );
}

/** Commander's parser for a rule: a refused value is a usage error naming the rule. */
function byRule(rule: z.ZodType<unknown, string>): (value: string) => unknown {
  return (value) => {
    const parsed = rule.safeParse(value);
    if (!parsed.success) throw new InvalidArgumentError(`It ${parsed.error.issues[0]?.message}.`);
    return parsed.data;
  };
}

/** `--patient 3 --patient 5` and `--patient 3,5` both add up; duplicates drop out. */
function pidList(value: string, previous: unknown): number[] {
  const pids = new Set(Array.isArray(previous) ? (previous as number[]) : []);
  for (const part of value.split(",")) {
    if (!/^[1-9]\d*$/.test(part.trim()) || !Number.isSafeInteger(Number(part))) {
      throw new InvalidArgumentError("expected positive integer pids, e.g. --patient 3,5.");
    }
    pids.add(Number(part));
  }
  return [...pids];
}

/** Commander's attribute name of a flag: `--request-timeout <ms>` is `requestTimeout`. */
export function optionKey(spec: Pick<OptionSpec, "flags">): string {
  const long = /--([a-z][a-z-]*)/.exec(spec.flags)?.[1] ?? "";
  return long.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A rule's parser for commander: a refused value is a usage error naming the rule. */
export function commanderParser(
  spec: OptionSpec,
): ((value: string, previous: unknown) => unknown) | undefined {
  const { rule } = spec;
  return spec.parse ?? (rule && byRule(rule));
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    flags: "--patient <pid>",
    description: "only these patients; repeatable or comma-separated",
    scope: "sweep",
    parse: pidList,
  },
  {
    flags: "--shard <i/n>",
    description:
      "only the patients whose pid mod n is i (0 <= i < n); records without a pid go to shard 0",
    scope: "sweep",
    env: "SHARD",
    rule: RULES.shard,
    conflicts: "shards",
  },
  {
    flags: "--shards <n>",
    description: "like --shard, with i from JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job)",
    scope: "sweep",
    env: "SHARDS",
    rule: RULES.shards,
  },
  { flags: "--dry-run", description: "fetch and predict, but write nothing", scope: "sweep" },
  {
    flags: "--concurrency <n>",
    description: `patients handled at the same time, at most ${LIMITS.concurrency}; or auto / auto:<max> to follow the services' latency and overload answers (max ${DEFAULTS.adaptiveMaxConcurrency} unless given)`,
    scope: "sweep",
    env: "CONCURRENCY",
    rule: RULES.concurrency,
    default: DEFAULTS.concurrency,
  },
  {
    flags: "--json",
    description: "print the report as one JSON document",
    scope: "global",
  },
  { flags: "--verbose", description: "log every patient's outcome on stderr", scope: "global" },
  {
    flags: "--quiet",
    description: "log only errors on stderr; no progress line",
    scope: "global",
  },
  {
    flags: "--log-format <format>",
    description: "stderr as human lines or one JSON object per line",
    scope: "global",
    env: "LOG_FORMAT",
    rule: z.enum(["human", "json"], { error: "must be human or json" }),
    default: "human",
  },
  {
    flags: "--env-file <path>",
    description: "read settings from this file (default: .env, if there)",
    scope: "global",
  },
  {
    flags: "--request-timeout <duration>",
    description:
      "timeout of each request attempt (a bare number is milliseconds; or 500ms, 10s, 4m)",
    scope: "global",
    env: "REQUEST_TIMEOUT",
    rule: RULES.milliseconds,
    default: DEFAULTS.requestTimeoutMs,
  },
  {
    flags: "--retries <n>",
    description:
      "retries of a request after a network error, timeout, 408, 429 or 5xx; of the login only if it cannot have started",
    scope: "global",
    rule: RULES.nonNegative,
    default: DEFAULTS.retries,
  },
  {
    flags: "--max-list-mib <n>",
    description: `the longest patient list accepted, in MiB; a longer one fails the run (default ${DEFAULTS.maxListMib}: about 400,000 patients)`,
    scope: "global",
    env: "MAX_LIST_MIB",
    rule: RULES.listMib,
    default: DEFAULTS.maxListMib,
  },
  {
    flags: "--max-rps <n>",
    description:
      "at most n requests per second to each service, logins, probes and retries included; fractions allowed",
    scope: "global",
    env: "MAX_RPS",
    rule: RULES.requestsPerSecond,
  },
  {
    flags: "--breaker <n>",
    description: "stop after n patients in a row failed because one service is unavailable",
    scope: "sweep",
    rule: RULES.positive,
    default: DEFAULTS.breaker,
  },
  {
    flags: "--max-failures <n>",
    description: "stop after n failed patients of any kind",
    scope: "sweep",
    rule: RULES.positive,
  },
  {
    flags: "--deadline <duration>",
    description:
      "start nothing after this long (a bare number is seconds; or 500ms, 10s, 4m); in-flight work gets --grace, then is aborted",
    scope: "sweep",
    env: "DEADLINE",
    rule: RULES.seconds,
  },
  {
    flags: "--grace <duration>",
    description:
      "after a signal or the deadline, time for in-flight patients to finish (a bare number is seconds; or 500ms, 10s, 4m)",
    scope: "sweep",
    env: "GRACE",
    rule: RULES.seconds,
    default: DEFAULTS.graceSeconds,
  },
  {
    flags: "--lock <file>",
    description: "skip this run (exit 7) while another run holds the lock",
    scope: "sweep",
  },
  {
    flags: "--metrics-file <path>",
    description:
      "after each sweep, write its metrics there atomically (Prometheus text, for node_exporter's textfile collector)",
    scope: "sweep",
    env: "METRICS_FILE",
    rule: RULES.path,
  },
  {
    flags: "--pushgateway <url>",
    description: "after each sweep, push its metrics to this Prometheus Pushgateway",
    scope: "sweep",
    env: "PUSHGATEWAY_URL",
    rule: RULES.httpUrl,
  },
  {
    flags: "--report-file <path>",
    description: "also write the JSON report to this file, atomically (with or without --json)",
    scope: "sweep",
    rule: RULES.path,
  },
  {
    flags: "--ping-url <url>",
    description: "ping this healthchecks.io-style check URL when the sweep starts and ends",
    scope: "sweep",
    env: "PING_URL",
    rule: PING_URL_RULE,
  },
  {
    flags: "--state-dir <dir>",
    description:
      "keep the login's token and where to start the patient list here between runs (created 0700)",
    scope: "sweep",
    env: "STATE_DIRECTORY",
  },
];
