/**
 * The programmatic API: `runSweep(config, options)` and the types and errors around it.
 * Importing this module has no side effects.
 */
export { DEFAULTS, resolveConfig } from "./config/settings.ts";
export type { SweepEvent } from "./core/events.ts";
export type { PredictionMemory } from "./core/patient.ts";
export {
  buildReport,
  type Counts,
  type Outcome,
  type PatientResult,
  type Predictions,
  type Report,
  type Stage,
} from "./core/report.ts";
export { runSweep, type SweepConfig, type SweepOptions } from "./core/sweep.ts";
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
export { formatHuman, formatJson } from "./output/report.ts";
export type { Credentials } from "./services/backend-auth.ts";
export { RequestFailure } from "./services/failure.ts";
export type { RequestRecord, Service } from "./services/http.ts";
