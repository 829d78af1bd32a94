/**
 * What stops a sweep, in one place: the halt (no new patient starts) with its grace, the hard
 * abort of in-flight requests, the deadline, and the failure thresholds (breaker per service and
 * --max-failures). Plain state and timers; the sweep asks it and it never prints.
 */
import { LIMITS } from "../defaults.ts";
import { SchedulerError } from "../errors.ts";
import type { Service } from "../services/http.ts";

export interface StopsConfig {
  deadlineSeconds?: number | undefined;
  graceSeconds: number;
  breaker: number;
  maxFailures?: number | undefined;
}

export interface StopsOptions {
  /** The caller's hard abort: in-flight requests stop now. */
  signal?: AbortSignal | undefined;
  /** The caller's graceful stop: no new patient starts, in-flight ones get the grace. */
  stop?: AbortSignal | undefined;
  /** Whether patients (or the steps before them) still wait to start. */
  waiting: () => boolean;
  /** Whether any patient is in flight: only those get the grace. */
  busy: () => boolean;
  /**
   * Whether the steps before the first patient (login, the ML check, the list) still run: they
   * have nothing to finish, so a graceful halt then aborts them at once.
   */
  preparing: () => boolean;
  /** A stop that matters, said once, when it happens. */
  onStop: (reason: SchedulerError) => void;
}

export interface Stops {
  /** Aborted when in-flight requests must stop: the caller's abort, a grace's end, or a bug. */
  readonly signal: AbortSignal;
  /** Why no new patient starts, once something said so (the first reason wins). */
  readonly halted: SchedulerError | undefined;
  /** What ended the run early, if anything did: undefined when the halt cost nothing. */
  readonly cause: SchedulerError | undefined;
  /**
   * No new patient starts, for this reason; in-flight ones finish (within the grace if `grace`;
   * before the first patient, a halt with a grace aborts at once: nothing is there to finish).
   */
  halt(reason: SchedulerError, grace?: boolean): void;
  /** A patient was kept from starting by the halt. */
  keptWaiting(): void;
  /** Stops everything now: in-flight requests are aborted. */
  abortNow(reason: unknown): void;
  dispose(): void;
}

export function createStops(config: StopsConfig, options: StopsOptions): Stops {
  const abort = new AbortController();
  let halted: SchedulerError | undefined;
  /** Whether the halt kept something from happening, so that it ends the run early. */
  let mattered = false;
  const timers: NodeJS.Timeout[] = [];
  const later = (ms: number, fn: () => void) => {
    // Durations are bounded by config; the clamp keeps a too-long timer from firing at once.
    const timer = setTimeout(fn, Math.min(ms, LIMITS.timerMs));
    timer.unref();
    timers.push(timer);
  };

  const matters = () => {
    if (mattered || halted === undefined) return;
    mattered = true;
    options.onStop(halted);
  };

  const stops: Stops = {
    signal: abort.signal,
    get halted() {
      return halted;
    },
    get cause() {
      return mattered ? halted : undefined;
    },
    halt(reason, grace = false) {
      if (halted === undefined) {
        halted = reason;
        // A deadline that passes with nothing left to start is no stop at all (see keptWaiting).
        if (reason.code !== "deadline" || options.waiting()) matters();
      }
      if (!grace) return;
      if (options.preparing()) {
        matters();
        stops.abortNow(halted);
        return;
      }
      later(config.graceSeconds * 1000, () => {
        if (!options.busy() || abort.signal.aborted) return;
        matters();
        abort.abort(halted);
      });
    },
    keptWaiting: matters,
    abortNow(reason) {
      if (!abort.signal.aborted) abort.abort(reason);
    },
    dispose() {
      for (const timer of timers) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      options.stop?.removeEventListener("abort", onStop);
    },
  };

  const onAbort = () => {
    const reason = interruption(options.signal?.reason);
    if (halted === undefined) stops.halt(reason);
    matters();
    stops.abortNow(reason);
  };
  const onStop = () => stops.halt(interruption(options.stop?.reason), true);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.stop?.aborted) onStop();
  else options.stop?.addEventListener("abort", onStop, { once: true });
  if (config.deadlineSeconds !== undefined) {
    const { deadlineSeconds, graceSeconds } = config;
    later(deadlineSeconds * 1000, () =>
      stops.halt(
        new SchedulerError(
          "deadline",
          `Deadline of ${deadlineSeconds}s reached: no new patient starts; in-flight patients get ${graceSeconds}s to finish.`,
        ),
        true,
      ),
    );
  }
  return stops;
}

/** A caller's own abort reason counts as SIGTERM. */
function interruption(reason: unknown): SchedulerError {
  return reason instanceof SchedulerError
    ? reason
    : new SchedulerError("sigterm", "Stopped by the caller.");
}

const SERVICE_NAMES: Record<Service, string> = { backend: "the backend", ml: "the ML server" };

/** The breaker, per service, and --max-failures. */
export interface Thresholds {
  /** One patient's verdicts: services that answered (`up`) or looked down, and whether it failed. */
  record(
    verdicts: Partial<Record<Service, "up" | "down">>,
    failed: boolean,
  ): SchedulerError | undefined;
}

/**
 * The breaker trips after `breaker` patients in a row failed because one service was unavailable;
 * a service's count resets only when that service answers with anything but 408, 429 or 5xx.
 */
export function createThresholds(config: StopsConfig): Thresholds {
  const down: Record<Service, number> = { backend: 0, ml: 0 };
  let failures = 0;
  return {
    record(verdicts, failed) {
      if (failed) failures++;
      for (const service of ["backend", "ml"] as const) {
        const verdict = verdicts[service];
        if (verdict === "up") down[service] = 0;
        else if (verdict === "down") down[service]++;
        if (down[service] >= config.breaker) {
          return new SchedulerError(
            "aborted",
            `${down[service]} patients in a row failed because ${SERVICE_NAMES[service]} is unavailable (--breaker ${config.breaker}); stopped starting patients.`,
          );
        }
      }
      if (config.maxFailures !== undefined && failures >= config.maxFailures) {
        return new SchedulerError(
          "aborted",
          `${failures} patients failed (--max-failures ${config.maxFailures}); stopped starting patients.`,
        );
      }
      return undefined;
    },
  };
}
