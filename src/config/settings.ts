/**
 * Configuration: flags, then the environment, then the env file (first hit wins), validated with
 * zod before any request, into one typed settings object. Every problem is one line naming the
 * variable; values are never echoed. Reads no process state: the caller hands over the
 * environment, the env file's values and the working directory (secret files are read from it).
 */
import { resolve } from "node:path";
import { z } from "zod";
import type { SweepConfig } from "../core/sweep.ts";
import { DEFAULTS, LIMITS } from "../defaults.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { type FileProblem, readBounded } from "../host/read-file.ts";
import type { Credentials } from "../services/backend-auth.ts";
import { OPTION_LIST, type Options } from "./options.ts";
import { applyRule, deadlineBoundProblem, httpUrl, mostInFlight } from "./rules.ts";

export { DEFAULTS };

/** Flags as commander parsed them: any option may be given. */
export type ConfigFlags = Partial<Options>;

export interface ConfigInput {
  flags: ConfigFlags;
  /** The environment's variables (the CLI passes process.env). */
  env: Record<string, string | undefined>;
  /** The env file's variables, read when the environment does not set one (see env-file.ts). */
  envFile?: Record<string, string> | undefined;
  /** Where relative secret-file paths are read from. */
  cwd: string;
}

const serviceUrl = (what: string) =>
  z
    .string({ error: `is required: the ${what}'s base URL, e.g. http://localhost:8000` })
    .pipe(httpUrl({ credentials: "use BACKEND_USERNAME and BACKEND_PASSWORD", query: "refused" }));

/** The services' base URLs; keys are the variable names, so an issue path names one. */
const ServersSchema = z.object({
  PATIENT_SERVER: serviceUrl("backend"),
  ML_SERVER: serviceUrl("ML server"),
});

/** A run's settings: the sweep's configuration and every option's final value, by its key. */
export interface RunSettings {
  config: SweepConfig;
  /**
   * Each option of OPTIONS: the flag, else its variable, else its default. `shard` is the run's
   * shard however it was given (`--shard`, or `--shards` with JOB_COMPLETION_INDEX).
   */
  options: Options;
}

/** Builds the sweep's configuration or throws one ConfigError listing every problem. */
export function resolveConfig(input: ConfigInput): SweepConfig {
  return resolveRun(input).config;
}

/** Resolves every option and the sweep's configuration, or throws one ConfigError. */
export function resolveRun(input: ConfigInput): RunSettings {
  const lookup = lookupIn(input);
  const { flags, cwd } = input;
  const problems: string[] = [];

  const servers = ServersSchema.safeParse({
    PATIENT_SERVER: lookup("PATIENT_SERVER"),
    ML_SERVER: lookup("ML_SERVER"),
  });
  if (!servers.success) {
    for (const issue of servers.error.issues)
      problems.push(`${issue.path.join(".")} ${issue.message}`);
  }
  const options = resolveOptions(flags, lookup, problems);
  resolveShard(flags, options, lookup, problems);
  const credentials = resolveCredentials(lookup, cwd, problems);
  const bound = deadlineBoundProblem(options.deadline, options.grace, {
    deadline: flags.deadline === undefined ? "DEADLINE" : "--deadline",
    grace:
      flags.grace === undefined ? (lookup("GRACE") ? "GRACE" : "the default --grace") : "--grace",
  });
  // Both from the command line: a usage error, as a flag's own rule would be; else exit 3.
  const fromFlags = flags.deadline !== undefined && (flags.grace !== undefined || !lookup("GRACE"));
  if (bound && fromFlags) throw new UsageError(bound);
  if (bound) problems.push(bound);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  const data = servers.data as z.infer<typeof ServersSchema>;
  const o = options;
  const { concurrency } = o;

  return {
    options,
    config: {
      patientServer: data.PATIENT_SERVER,
      mlServer: data.ML_SERVER,
      credentials,
      concurrency: mostInFlight(concurrency),
      adaptive: typeof concurrency !== "number",
      maxRps: o.maxRps,
      // Unset: the backend client's default (DEFAULTS.maxListMib), which programmatic callers get too.
      maxListBytes: o.maxListMib * 1024 * 1024,
      dryRun: o.dryRun ?? false,
      patients: o.patient,
      shard: o.shard,
      requestTimeoutMs: o.requestTimeout,
      retries: o.retries,
      retryDelayMs: DEFAULTS.retryDelayMs,
      maxRetryAfterMs: DEFAULTS.maxRetryAfterMs,
      breaker: o.breaker,
      maxFailures: o.maxFailures,
      deadlineSeconds: o.deadline,
      graceSeconds: o.grace,
      maxVitalsAgeMs: o.maxVitalsAge,
    },
  };
}

/**
 * Every option's value when those alone can be read (the env file and the options' own variables),
 * even if the rest of the configuration cannot: notifiers still report a run that ended with
 * exit 3. Undefined when they cannot be read either.
 */
export function resolveOptionsOnly(input: ConfigInput): Options | undefined {
  const lookup = lookupIn(input);
  const problems: string[] = [];
  const options = resolveOptions(input.flags, lookup, problems);
  // A shard that cannot be resolved is left out: the notifiers still hear of the run.
  resolveShard(input.flags, options, lookup, []);
  return problems.length === 0 ? options : undefined;
}

/** A variable's value: the environment's, else the env file's; empty is unset. */
function lookupIn({ env, envFile = {} }: ConfigInput): Lookup {
  return (name) => nonEmpty(env[name]) ?? nonEmpty(envFile[name]);
}

/**
 * Every option's value: the flag (already parsed by commander), else its environment variable
 * parsed with the flag's own rule (a bad value is one problem line naming the variable), else
 * its default.
 */
function resolveOptions(flags: ConfigFlags, lookup: Lookup, problems: string[]): Options {
  const values: Record<string, unknown> = {};
  for (const [key, spec] of OPTION_LIST) {
    let value: unknown = flags[key];
    const raw = value === undefined && spec.env ? lookup(spec.env) : undefined;
    if (raw !== undefined) {
      const parsed = spec.rule ? applyRule(spec.rule, raw) : { ok: true as const, value: raw };
      if (parsed.ok) value = parsed.value;
      else problems.push(`${spec.env} ${parsed.message}`);
    }
    values[key] = value ?? spec.default;
  }
  // Each value went through its option's rule or parser, which Options is derived from.
  return values as Options;
}

/**
 * Sets `options.shard` to the run's shard: `--shard`/SHARD as given, or `--shards`/SHARDS with the
 * index from JOB_COMPLETION_INDEX (Kubernetes sets it in an Indexed Job). Both given, one from
 * the environment (two flags are commander's usage error), or an index missing or out of range, is a problem (exit 3); the shard is
 * then left unset.
 */
function resolveShard(
  flags: ConfigFlags,
  options: Options,
  lookup: Lookup,
  problems: string[],
): void {
  const count = options.shards;
  if (count === undefined) return;
  if (options.shard !== undefined) {
    const name = (flag: "shard" | "shards", env: string) =>
      flags[flag] === undefined ? `${env} (in the environment)` : `--${flag}`;
    problems.push(
      `${name("shard", "SHARD")} and ${name("shards", "SHARDS")} are both set: keep one.`,
    );
    options.shard = undefined;
    return;
  }
  const raw = lookup("JOB_COMPLETION_INDEX");
  const range = `a whole number from 0 to ${count - 1}`;
  if (raw === undefined) {
    problems.push(
      `JOB_COMPLETION_INDEX is not set, and --shards (SHARDS) takes this run's index from it: run in a Kubernetes Indexed Job, set it to ${range}, or use --shard i/n.`,
    );
  } else if (!/^\d+$/.test(raw) || Number(raw) >= count) {
    problems.push(`JOB_COMPLETION_INDEX must be ${range} for --shards ${count}.`);
  } else {
    options.shard = { index: Number(raw), count };
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

type Lookup = (name: string) => string | undefined;

/**
 * `BACKEND_X` or `BACKEND_X_FILE` (a secret file, one trailing newline dropped; a relative path is
 * taken from `cwd`, like the env file's); the legacy `X`
 * only when neither is set anywhere. A TOKEN of `null` is the original scheduler's "no token".
 */
function resolveCredentials(lookup: Lookup, cwd: string, problems: string[]): Credentials {
  const secret = (short: string): { value?: string; source?: string } => {
    const name = `BACKEND_${short}`;
    const direct = lookup(name);
    const filePath = lookup(`${name}_FILE`);
    if (direct !== undefined && filePath !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set: keep one.`);
      return {};
    }
    if (direct !== undefined) return { value: direct, source: name };
    if (filePath !== undefined) return readSecret(`${name}_FILE`, filePath, cwd, problems);
    const legacy = lookup(short);
    return legacy === undefined ? {} : { value: legacy, source: short };
  };
  const before = problems.length;
  const username = secret("USERNAME");
  const password = secret("PASSWORD");
  const token = secret("TOKEN");
  if (token.value === "null") delete token.value;
  // It goes into an Authorization header: a control character there makes Node throw, and a
  // space or a non-ASCII character is no token a backend issues (RFC 6750 b64token is ASCII).
  if (token.value !== undefined && !/^[\x21-\x7e]+$/.test(token.value)) {
    problems.push(
      `${token.source} must be printable ASCII without spaces or control characters: check the value (or the file's line endings).`,
    );
    delete token.value;
  }
  // A secret that is set but unusable has its own line already; "required" would mislead.
  const broken = problems.length > before;
  if (
    !broken &&
    token.value === undefined &&
    (username.value === undefined || password.value === undefined)
  ) {
    problems.push(
      "BACKEND_USERNAME and BACKEND_PASSWORD (or their _FILE forms) are required unless BACKEND_TOKEN is set.",
    );
  }
  return {
    username: username.value,
    password: password.value,
    token: token.value,
    usernameSource:
      username.source === "USERNAME"
        ? "the legacy USERNAME variable, which shells often set to the login user: set BACKEND_USERNAME"
        : username.source,
  };
}

function readSecret(
  variable: string,
  path: string,
  cwd: string,
  problems: string[],
): { value?: string; source?: string } {
  const content = readBounded(resolve(cwd, path), LIMITS.secretFileBytes);
  if (typeof content !== "string") {
    problems.push(`${variable}: ${secretProblem(content.problem)}`);
    return {};
  }
  const value = content.replace(/\r?\n$/, "");
  if (value === "") {
    problems.push(`${variable}: the file it names is empty.`);
    return {};
  }
  return { value, source: variable };
}

function secretProblem(problem: FileProblem): string {
  if (problem === "not_regular")
    return "the file it names is not a regular file (a directory, device or pipe); point it at the secret's file.";
  if (problem === "too_large")
    return `the file it names is larger than ${LIMITS.secretFileBytes / 1024} KiB; a secret file holds one value.`;
  return `cannot read the file it names (${problem}).`;
}
