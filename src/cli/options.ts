/**
 * The command-line options, declared once as data: the CLI registers them with commander and the
 * README mirrors them. Values are parsed here, so a bad one is a usage error (exit 2).
 */
import { InvalidArgumentError } from "commander";
import { z } from "zod";
import { DEFAULTS, LIMITS } from "../defaults.ts";

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
  milliseconds: wholeNumber(
    1,
    LIMITS.timerMs,
    `must be a positive integer of milliseconds, at most ${LIMITS.timerMs}`,
  ),
  positive: wholeNumber(1, Number.MAX_SAFE_INTEGER, "must be a positive integer"),
  nonNegative: wholeNumber(0, Number.MAX_SAFE_INTEGER, "must be a whole number, 0 or more"),
  seconds: z
    .string()
    .refine((v) => /^\d+(\.\d+)?$/.test(v) && Number(v) > 0 && Number(v) <= LIMITS.timerSeconds, {
      error: `must be a number of seconds greater than 0, at most ${LIMITS.timerSeconds} (24.8 days)`,
    })
    .transform(Number),
} as const;

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
    flags: "--env-file <path>",
    description: "read settings from this file (default: .env, if there)",
    scope: "global",
  },
  {
    flags: "--request-timeout <ms>",
    description: "timeout of each request attempt",
    scope: "global",
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
    flags: "--deadline <seconds>",
    description:
      "start nothing after this many seconds; in-flight work gets --grace, then is aborted",
    scope: "sweep",
    rule: RULES.seconds,
  },
  {
    flags: "--grace <seconds>",
    description: "after a signal or the deadline, time for in-flight patients to finish",
    scope: "sweep",
    rule: RULES.seconds,
    default: DEFAULTS.graceSeconds,
  },
  {
    flags: "--lock <file>",
    description: "skip this run (exit 7) while another run holds the lock",
    scope: "sweep",
  },
];
