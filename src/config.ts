/**
 * Configuration: flags, then the environment, then the env file (first hit wins), validated with
 * zod before any request. Every problem is one line naming the variable; values are never echoed.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import dotenv from "dotenv";
import { z } from "zod";
import type { Credentials } from "./backend.ts";
import { RULES } from "./cli-options.ts";
import { DEFAULTS } from "./defaults.ts";
import { ConfigError } from "./errors.ts";

export { DEFAULTS };

import type { SweepConfig } from "./sweep.ts";

/** Flags that feed the sweep's configuration, already parsed by the CLI. */
export interface ConfigFlags {
  envFile?: string | undefined;
  patient?: number[] | undefined;
  dryRun?: boolean | undefined;
  concurrency?: number | undefined;
  requestTimeout?: number | undefined;
  retries?: number | undefined;
  breaker?: number | undefined;
  maxFailures?: number | undefined;
  deadline?: number | undefined;
  grace?: number | undefined;
}

export interface ConfigInput {
  flags: ConfigFlags;
  /** The process environment (the CLI passes process.env). */
  env: Record<string, string | undefined>;
  /** Where a relative env file or `.env` is looked up. */
  cwd: string;
}

const serviceUrl = (what: string) =>
  z
    .url({
      protocol: /^https?$/,
      error: (issue) =>
        issue.input === undefined
          ? `is required: the ${what}'s base URL, e.g. http://localhost:8000`
          : "must be an http:// or https:// URL",
    })
    // zod runs this even after the URL check failed: an unparsable value is that check's to report.
    .refine((u) => !URL.parse(u)?.username && !URL.parse(u)?.password, {
      message: "must not carry credentials: use BACKEND_USERNAME and BACKEND_PASSWORD",
    });

/** The environment-backed settings; keys are the variable names, so an issue path names one. */
const EnvSchema = z.object({
  PATIENT_SERVER: serviceUrl("backend"),
  ML_SERVER: serviceUrl("ML server"),
  CONCURRENCY: RULES.concurrency.optional(),
});

/** Builds the sweep's configuration or throws one ConfigError listing every problem. */
export function resolveConfig({ flags, env, cwd }: ConfigInput): SweepConfig {
  const file = readEnvFile(flags.envFile, cwd);
  const lookup = (name: string): string | undefined => nonEmpty(env[name]) ?? nonEmpty(file[name]);
  const problems: string[] = [];

  const parsed = EnvSchema.safeParse({
    PATIENT_SERVER: lookup("PATIENT_SERVER"),
    ML_SERVER: lookup("ML_SERVER"),
    CONCURRENCY: flags.concurrency === undefined ? lookup("CONCURRENCY") : undefined,
  });
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      problems.push(`${issue.path.join(".")} ${issue.message}`);
  }
  const credentials = resolveCredentials(lookup, problems);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  const data = parsed.data as z.infer<typeof EnvSchema>;

  return {
    patientServer: data.PATIENT_SERVER,
    mlServer: data.ML_SERVER,
    credentials,
    concurrency: flags.concurrency ?? data.CONCURRENCY ?? DEFAULTS.concurrency,
    dryRun: flags.dryRun ?? false,
    patients: flags.patient,
    requestTimeoutMs: flags.requestTimeout ?? DEFAULTS.requestTimeoutMs,
    retries: flags.retries ?? DEFAULTS.retries,
    retryDelayMs: DEFAULTS.retryDelayMs,
    maxRetryAfterMs: DEFAULTS.maxRetryAfterMs,
    breaker: flags.breaker ?? DEFAULTS.breaker,
    maxFailures: flags.maxFailures,
    deadlineSeconds: flags.deadline,
    graceSeconds: flags.grace ?? DEFAULTS.graceSeconds,
  };
}

function readEnvFile(path: string | undefined, cwd: string): Record<string, string> {
  const target = resolve(cwd, path ?? ".env");
  const parsed: Record<string, string> = {};
  // processEnv: a fresh object, so the file never leaks into process.env.
  const { error } = dotenv.config({ path: target, quiet: true, processEnv: parsed });
  if (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    if (path === undefined && missing) return {};
    throw new ConfigError(
      `--env-file ${path ?? ".env"}: ${missing ? "no such file" : "cannot be read"}; fix the path or leave the flag out.`,
    );
  }
  return parsed;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

type Lookup = (name: string) => string | undefined;

/**
 * `BACKEND_X` or `BACKEND_X_FILE` (a secret file, one trailing newline dropped); the legacy `X`
 * only when neither is set anywhere. A TOKEN of `null` is the original scheduler's "no token".
 */
function resolveCredentials(lookup: Lookup, problems: string[]): Credentials {
  const secret = (short: string): { value?: string; source?: string } => {
    const name = `BACKEND_${short}`;
    const direct = lookup(name);
    const filePath = lookup(`${name}_FILE`);
    if (direct !== undefined && filePath !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set: keep one.`);
      return {};
    }
    if (direct !== undefined) return { value: direct, source: name };
    if (filePath !== undefined) return readSecret(`${name}_FILE`, filePath, problems);
    const legacy = lookup(short);
    return legacy === undefined ? {} : { value: legacy, source: short };
  };
  const username = secret("USERNAME");
  const password = secret("PASSWORD");
  const token = secret("TOKEN");
  if (token.value === "null") delete token.value;
  if (token.value === undefined && (username.value === undefined || password.value === undefined)) {
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
  problems: string[],
): { value?: string; source?: string } {
  let content: string;
  try {
    content = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    problems.push(`${variable}: cannot read the file it names (${code}).`);
    return {};
  }
  const value = content.replace(/\r?\n$/, "");
  if (value === "") {
    problems.push(`${variable}: the file it names is empty.`);
    return {};
  }
  return { value, source: variable };
}
