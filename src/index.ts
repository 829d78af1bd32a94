/**
 * The programmatic API: `runSweep(config, options)` and the types and errors around it.
 * Importing this module has no side effects.
 */
export type { Credentials } from "./backend.ts";
export { DEFAULTS, resolveConfig } from "./config.ts";
export {
  AuthError,
  ConfigError,
  EXIT,
  EXIT_CODES,
  LockedError,
  SchedulerError,
  UpstreamError,
  UsageError,
} from "./errors.ts";
export { RequestFailure } from "./http.ts";
export {
  buildReport,
  type Counts,
  formatHuman,
  formatJson,
  type Outcome,
  type PatientResult,
  type Report,
  type Stage,
} from "./report.ts";
export { runSweep, type SweepConfig, type SweepOptions } from "./sweep.ts";
