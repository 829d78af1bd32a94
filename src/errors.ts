/**
 * Named errors and the exit-code table: the one place that maps what went wrong to how the
 * process ends. Messages say what to do next and never carry a secret or a patient's name.
 */

/** The exit-code table, in the order --help and the README show it. */
export const EXIT_CODES = [
  {
    code: 0,
    name: "ok",
    meaning: "sweep completed, no patient failed (skipped patients are not failures)",
  },
  { code: 1, name: "patients_failed", meaning: "sweep completed, one or more patients failed" },
  { code: 2, name: "usage", meaning: "usage error (unknown flag, bad flag value)" },
  {
    code: 3,
    name: "config",
    meaning:
      "configuration error (environment, env file, secret files, working directory, lock file)",
  },
  { code: 4, name: "auth", meaning: "authentication: login refused, token rejected, or any 403" },
  {
    code: 5,
    name: "upstream",
    meaning: "a service the whole sweep needs failed: before the first patient, or at a re-login",
  },
  {
    code: 6,
    name: "aborted",
    meaning: "aborted by the failure threshold (--breaker, --max-failures)",
  },
  {
    code: 7,
    name: "locked",
    meaning: "another run holds the lock (this run did nothing) or took it over mid-sweep",
  },
  { code: 8, name: "deadline", meaning: "deadline reached; the sweep stopped early" },
  {
    code: 70,
    name: "internal",
    meaning: "internal error (a bug): report it; --verbose shows the stack",
  },
  {
    code: 74,
    name: "io",
    meaning: "the report could not be written (stdout closed or full); the sweep ran",
  },
  { code: 129, name: "sighup", meaning: "interrupted by SIGHUP (e.g. a closed SSH session)" },
  { code: 130, name: "sigint", meaning: "interrupted by SIGINT" },
  { code: 143, name: "sigterm", meaning: "interrupted by SIGTERM" },
] as const satisfies ReadonlyArray<{ code: number; name: string; meaning: string }>;

export type ExitName = (typeof EXIT_CODES)[number]["name"];
export type ExitCode = (typeof EXIT_CODES)[number]["code"];

/** Exit code by name: `EXIT.auth === 4`. */
export const EXIT = Object.fromEntries(EXIT_CODES.map((e) => [e.name, e.code])) as {
  [K in ExitName]: Extract<(typeof EXIT_CODES)[number], { name: K }>["code"];
};

/** When several codes apply, the first of this list wins. */
const PRECEDENCE: readonly ExitCode[] = [129, 130, 143, 70, 7, 2, 3, 4, 5, 6, 8, 74, 1, 0];

/** The exit code that wins among several that apply (an empty list is a clean sweep). */
export function pickExitCode(codes: readonly ExitCode[]): ExitCode {
  const set = new Set(codes);
  return PRECEDENCE.find((c) => set.has(c)) ?? 0;
}

/** Base class of every error the scheduler expects; anything else escaping is a bug. */
export class SchedulerError extends Error {
  override name = "SchedulerError";
  readonly exitCode: ExitCode;
  /** Stable snake_case code, as the JSON report's `error.code`. */
  readonly code: ExitName;
  constructor(code: ExitName, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.exitCode = EXIT[code];
  }
}

/** A bad command-line flag or value: exit 2. */
export class UsageError extends SchedulerError {
  override name = "UsageError";
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

/** A bad environment, env file or secret file: exit 3. */
export class ConfigError extends SchedulerError {
  override name = "ConfigError";
  constructor(message: string, options?: ErrorOptions) {
    super("config", message, options);
  }
}

/** The backend refused who we are: exit 4. */
export class AuthError extends SchedulerError {
  override name = "AuthError";
  constructor(message: string, options?: ErrorOptions) {
    super("auth", message, options);
  }
}

/** A service failed before the first patient started: exit 5. */
export class UpstreamError extends SchedulerError {
  override name = "UpstreamError";
  constructor(message: string, options?: ErrorOptions) {
    super("upstream", message, options);
  }
}

/** Another run holds the lock: exit 7. */
export class LockedError extends SchedulerError {
  override name = "LockedError";
  constructor(message: string, options?: ErrorOptions) {
    super("locked", message, options);
  }
}
