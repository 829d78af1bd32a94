/**
 * The command-line options, declared once as data: the CLI registers them with commander and the
 * README mirrors them. Values are parsed here, so a bad one is a usage error (exit 2).
 */
import { InvalidArgumentError } from "commander";
import { DEFAULTS } from "./defaults.ts";

export interface CliOption {
  flags: string;
  description: string;
  /** Environment variable that backs the flag (resolved in config, not by commander). */
  env?: string;
  parse?: (value: string, previous: unknown) => unknown;
  defaultDescription?: string;
}

function positiveInt(value: string): number {
  if (!/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError("expected a positive integer.");
  }
  return Number(value);
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError("expected a whole number, 0 or more.");
  }
  return Number(value);
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) {
    throw new InvalidArgumentError("expected a number of seconds greater than 0.");
  }
  return n;
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

export const CLI_OPTIONS: readonly CliOption[] = [
  {
    flags: "--patient <pid>",
    description: "only these patients; repeatable or comma-separated",
    parse: pidList,
  },
  { flags: "--dry-run", description: "fetch and predict, but write nothing" },
  {
    flags: "--concurrency <n>",
    description: "patients handled at the same time",
    env: "CONCURRENCY",
    parse: positiveInt,
    defaultDescription: String(DEFAULTS.concurrency),
  },
  { flags: "--json", description: "print the report as one JSON document" },
  { flags: "--verbose", description: "log every patient's outcome on stderr" },
  { flags: "--quiet", description: "log only errors on stderr; no progress line" },
  {
    flags: "--env-file <path>",
    description: "read settings from this file",
    defaultDescription: ".env",
  },
  {
    flags: "--request-timeout <ms>",
    description: "timeout of each request attempt",
    parse: positiveInt,
    defaultDescription: String(DEFAULTS.requestTimeoutMs),
  },
  {
    flags: "--retries <n>",
    description: "retries of a request after a network error, timeout, 408, 429 or 5xx",
    parse: nonNegativeInt,
    defaultDescription: String(DEFAULTS.retries),
  },
  {
    flags: "--breaker <n>",
    description: "stop after n patients in a row failed because a service is down",
    parse: positiveInt,
    defaultDescription: String(DEFAULTS.breaker),
  },
  {
    flags: "--max-failures <n>",
    description: "stop after n failed patients of any kind",
    parse: positiveInt,
  },
  {
    flags: "--deadline <seconds>",
    description: "start no patient after this many seconds; in-flight ones finish",
    parse: positiveSeconds,
  },
  {
    flags: "--grace <seconds>",
    description: "after SIGTERM/SIGINT, time for in-flight patients to finish",
    parse: positiveSeconds,
    defaultDescription: String(DEFAULTS.graceSeconds),
  },
  {
    flags: "--lock <file>",
    description: "skip this run (exit 7) while another run holds the lock",
  },
];
