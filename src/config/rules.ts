/**
 * The rule of each option's value, as zod schemas: commander applies a flag's (exit 2) and config
 * the environment variable's behind it (exit 3). options.ts names each option's rule from here.
 */
import { z } from "zod";
import { DEFAULTS, LIMITS } from "../defaults.ts";

/** A whole number from min to max, in plain digits; `rule` completes "it ..." and "VARIABLE ...". */
function wholeNumber(min: number, max: number, rule: string) {
  return z
    .string()
    .refine((v) => /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max, { error: rule })
    .transform(Number);
}

/** `--concurrency`: a fixed number, or `{ auto: max }` for the adaptive limiter. */
export type ConcurrencySetting = number | { auto: number };

/** The most patients in flight a setting allows (auto's max), as the report states it. */
export function mostInFlight(setting: ConcurrencySetting): number {
  return typeof setting === "number" ? setting : setting.auto;
}

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

/**
 * A duration in seconds by `rule`, as milliseconds; with `zero`, also `0` (in any unit) for off.
 * `message` replaces the rule's own.
 */
function orZero(rule: z.ZodType<number, string>, message: string, zero = true) {
  return z.string().transform((v, ctx) => {
    if (zero && /^0+(?:\.0+)?(?:ms|s|m|h)?$/.test(v)) return 0;
    const parsed = rule.safeParse(v);
    if (parsed.success) return Math.round(parsed.data * 1_000);
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  });
}

/** How a duration rule's message ends: what a bare number means, and the units. */
const units = (bare: string) => `a bare number is ${bare}, or give a unit: 500ms, 10s, 4m, 1h`;

/**
 * An http(s) URL, checked in the order a person fixes one, one line for the first thing wrong
 * (abort: zod would otherwise run the later checks on a value that failed an earlier one). The
 * URL parser quietly drops tabs and newlines (`http://back\nend` would become http://backend), so
 * no space or control character may stand inside it; only its ends may be blank. A URL ends up in
 * log lines (as its origin), so credentials never go in it: `credentials` says where they go.
 * A base URL (a service's, the Pushgateway's) takes no query string: got refuses one, as it would
 * swallow every path; a check URL keeps its own (Healthchecks' `?create=1`).
 */
export function httpUrl(how: { credentials: string; query: "refused" | "kept" }) {
  const refusesQuery = how.query === "refused";
  return z
    .string()
    .refine((u) => !/[\s\p{Cc}]/u.test(u.trim()), {
      error: "must not contain spaces or control characters",
      abort: true,
    })
    .pipe(z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL", abort: true }))
    .refine((u) => !URL.parse(u)?.username && !URL.parse(u)?.password, {
      error: `must not carry credentials (user:password@): ${how.credentials}`,
      abort: true,
    })
    .refine((u) => !(refusesQuery ? /[?#]/ : /#/).test(u), {
      error: refusesQuery
        ? "must not have a query string or fragment: give the base URL only"
        : "must not have a fragment",
      abort: true,
    });
}

/**
 * `--ping-url` / `PING_URL`: a check URL with its own query string kept; `rid` is the run's, so
 * the URL may not set one.
 */
const PING_URL_RULE = httpUrl({
  credentials: "the check's URL alone identifies it",
  query: "kept",
}).refine((u) => !URL.parse(u)?.searchParams.has("rid"), {
  error: "must not set rid: each ping carries the run's id",
});

/** A grouping label's value: a Prometheus label value, no control characters (a log line shows it). */
type GroupingLabel = [name: string, value: string];

/**
 * One `name=value` of `--pushgateway-label`, or why not: the name valid in Prometheus and none of
 * the names the run sets itself (`job`, `shard`) or Prometheus reserves (`__*`).
 */
export function groupingLabel(text: string): GroupingLabel | string {
  const at = text.indexOf("=");
  const [name, value] = at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
  if (value === undefined) return `must be name=value, e.g. env=prod (got no "=")`;
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name))
    return `must start with a label name of letters, digits and _ (not a digit first), e.g. env=prod`;
  if (name.startsWith("__"))
    return `must not use a name starting with __ (Prometheus reserves them)`;
  if (name === "job" || name === "shard")
    return `must not set ${name}: the run sets it (job="ml_scheduler", shard with --shard/--shards)`;
  if (/\p{Cc}/u.test(value)) return "must not have control characters in its value";
  return [name, value];
}

/** The labels with one more: a name given twice is refused (which value was meant is unknowable). */
export function addGroupingLabel(
  labels: readonly GroupingLabel[],
  text: string,
): GroupingLabel[] | string {
  const label = groupingLabel(text);
  if (typeof label === "string") return label;
  if (labels.some(([name]) => name === label[0])) return `must not name ${label[0]} twice`;
  return [...labels, label];
}

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
    .refine(
      (v) => /^\d+(\.\d+)?$/.test(v) && Number(v) >= LIMITS.minRps && Number(v) <= LIMITS.maxRps,
      {
        error: `must be a number of requests per second from ${LIMITS.minRps} to ${LIMITS.maxRps} (fractions allowed)`,
      },
    )
    .transform(Number),
  milliseconds: duration(
    "ms",
    LIMITS.timerMs,
    `must be a duration of whole milliseconds greater than 0, at most ${LIMITS.timerMs}ms (24.8 days); ${units("milliseconds")}`,
  ),
  positive: wholeNumber(1, Number.MAX_SAFE_INTEGER, "must be a positive integer"),
  retries: wholeNumber(0, LIMITS.retries, `must be a whole number from 0 to ${LIMITS.retries}`),
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
  /** The Pushgateway's base URL. */
  httpUrl: httpUrl({
    credentials: "a Pushgateway behind authentication is reached through a proxy on the host",
    query: "refused",
  }),
  logFormat: z.enum(["human", "json"], { error: "must be human or json" }),
  pingUrl: PING_URL_RULE,
  /** `--reuse-for`: how long a remembered prediction may be reused, in ms; `0` is off. */
  reuseFor: orZero(
    duration("s", LIMITS.ageSeconds, ""),
    `must be 0 (off) or a duration greater than 0, at most ${LIMITS.ageSeconds / 86_400} days; ${units("seconds")}`,
  ),
  /** `--max-vitals-age`: the oldest a patient's newest vital record may be, in ms. */
  maxAge: orZero(
    duration("s", LIMITS.ageSeconds, ""),
    `must be a duration greater than 0, at most ${LIMITS.ageSeconds / 86_400} days; ${units("seconds")}`,
    false,
  ),
  /** `PUSHGATEWAY_LABELS=a=x,b=y`: the grouping labels, comma-separated (a value has no comma). */
  groupingLabels: z.string().transform((v, ctx) => {
    let labels: GroupingLabel[] = [];
    for (const part of v.split(",")) {
      const added = addGroupingLabel(labels, part);
      if (typeof added === "string") {
        ctx.addIssue({ code: "custom", message: `${added} (in ${JSON.stringify(part)})` });
        return z.NEVER;
      }
      labels = added;
    }
    return labels;
  }),
} as const satisfies Record<string, z.ZodType<unknown, string>>;

/**
 * Why `--deadline` and `--grace` cannot be used together, else undefined: with the exit margin
 * they bound the notifiers' timers, which fire after 1 ms past Node's limit. `names` says where
 * each came from (`--deadline` or `DEADLINE`).
 */
export function deadlineBoundProblem(
  deadlineSeconds: number | undefined,
  graceSeconds: number,
  names: { deadline: string; grace: string },
): string | undefined {
  if (deadlineSeconds === undefined) return undefined;
  const total = deadlineSeconds + graceSeconds + DEFAULTS.exitMarginSeconds;
  if (total <= LIMITS.timerSeconds) return undefined;
  return `${names.deadline} ${deadlineSeconds}s + ${names.grace} ${graceSeconds}s + ${DEFAULTS.exitMarginSeconds}s to exit is more than ${LIMITS.timerSeconds}s (24.8 days, the longest timer): shorten one of them.`;
}

/** A rule: a value's text in, its setting out. */
export type Rule = z.ZodType<unknown, string>;

/** The text's value by its rule, or the rule's message ("must be ...") when it refuses it. */
export function applyRule(
  rule: Rule,
  value: string,
): { ok: true; value: unknown } | { ok: false; message: string } {
  const parsed = rule.safeParse(value);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, message: parsed.error.issues[0]?.message ?? "is invalid" };
}
