/**
 * How many patients are in flight: a fixed number, or an adaptive limiter (`--concurrency auto`)
 * that learns from every attempt the services answer. It starts at 1 and doubles while the
 * latency stays near its floor, then adds one at a time; an overload answer (429, 503, 504, a
 * timeout) halves it at once, and latency that climbs past the tolerance cuts it in proportion.
 * Plain state; the sweep hands the number to p-limit.
 */
import type { AttemptRecord } from "../services/http.ts";
import type { ConcurrencyRange } from "./report.ts";

/** Why the limiter moved: room to grow, latency that climbed, or a service that said it is full. */
export type ConcurrencyCause = "headroom" | "latency" | "overload";

export interface Pacing {
  /** Patients that may be in flight now. */
  readonly concurrency: number;
  /** Learns from one attempt; may change `concurrency`. */
  observe(attempt: AttemptRecord): void;
  /** The range an adaptive limiter used; null for a fixed number. */
  range(): ConcurrencyRange | null;
}

/** A fixed number of patients in flight. */
export function fixedPacing(concurrency: number): Pacing {
  return { concurrency, observe() {}, range: () => null };
}

export interface AdaptiveOptions {
  /** The most patients in flight, ever. */
  max: number;
  /** Whether patients wait for a slot: the limit only grows while it is what holds them back. */
  demand: () => boolean;
  onChange?: ((concurrency: number, cause: ConcurrencyCause) => void) | undefined;
}

/** Latency up to this multiple of its floor is "near the floor" (Netflix's Gradient2 uses 1.5). */
export const LATENCY_TOLERANCE = 1.5;
/** Latency past this multiple of its floor ends the doubling, though it is no reason to cut. */
const SLOW_START_EXIT = 1.2;
/** What an overload answer leaves of the limit. */
const OVERLOAD_CUT = 0.5;
/** What climbing latency leaves of the limit: in proportion to how far it climbed, within these. */
const LATENCY_CUT = { least: 0.5, most: 0.9 } as const;
/** Answered attempts per decision: at least this many, and about one round of every patient. */
const MIN_WINDOW = 12;
const WINDOW_PER_PATIENT = 2;
/** A route's median over fewer answers than this does not move its floor (once it has one). */
const FLOOR_SAMPLES = 5;

/** Statuses that mean "too much": the service's own words (429, 503) or a proxy's (504). */
const OVERLOAD_STATUS: ReadonlySet<number> = new Set([429, 503, 504]);

/**
 * An AIMD limiter steered by latency. Latency is compared route by route with its floor (the
 * lowest median a window showed for that route), so a slow route and a fast one weigh by their
 * time, and a single lucky fast answer does not set the bar. After a cut, one window goes by
 * before the next decision: the answers in it were asked for at the old limit.
 */
export function adaptivePacing(options: AdaptiveOptions): Pacing {
  const { max } = options;
  let limit = 1;
  let lowest = limit;
  let highest = limit;
  /** Doubling until the first cut, then one at a time. */
  let slowStart = true;
  /** Set by a cut until a window has gone by at the new limit. */
  let settling = false;
  /** The window before's latency ratio: a cut goes deep only when two windows agree. */
  let previous = 1;
  let samples = 0;
  const window = new Map<string, number[]>();
  const floors = new Map<string, number>();

  const set = (next: number, cause: ConcurrencyCause) => {
    const value = Math.min(max, Math.max(1, Math.floor(next)));
    if (value === limit) return;
    limit = value;
    lowest = Math.min(lowest, value);
    highest = Math.max(highest, value);
    options.onChange?.(value, cause);
  };

  const restart = () => {
    window.clear();
    samples = 0;
  };

  const cut = (keep: number, cause: ConcurrencyCause) => {
    slowStart = false;
    settling = true;
    restart();
    set(limit * keep, cause);
  };

  /** The window's latency over the floors, weighted by time: 1 means at the floor. */
  const ratio = (): number => {
    let seen = 0;
    let floor = 0;
    for (const [route, durations] of window) {
      const median = medianOf(durations);
      const known = floors.get(route);
      const lowestSeen =
        known === undefined || (durations.length >= FLOOR_SAMPLES && median < known)
          ? median
          : known;
      floors.set(route, lowestSeen);
      seen += median * durations.length;
      floor += lowestSeen * durations.length;
    }
    // A millisecond of slack per answer: sub-millisecond services would otherwise swing it by
    // their jitter alone.
    return (seen + samples) / (floor + samples);
  };

  const decide = () => {
    const measured = ratio();
    const before = previous;
    previous = measured;
    if (settling) {
      settling = false;
      return restart();
    }
    if (measured > LATENCY_TOLERANCE) {
      const sustained = Math.min(measured, before);
      const keep = Math.min(
        LATENCY_CUT.most,
        Math.max(LATENCY_CUT.least, LATENCY_TOLERANCE / sustained),
      );
      return cut(keep, "latency");
    }
    restart();
    if (measured > SLOW_START_EXIT) slowStart = false;
    if (options.demand()) set(slowStart ? limit * 2 : limit + 1, "headroom");
  };

  return {
    get concurrency() {
      return limit;
    },
    observe(attempt) {
      const overloaded =
        attempt.reason === "timeout" ||
        (attempt.status !== null && OVERLOAD_STATUS.has(attempt.status));
      if (overloaded) {
        if (!settling) cut(OVERLOAD_CUT, "overload");
        return;
      }
      if (attempt.status === null) return; // unreachable: says nothing about load
      const durations = window.get(attempt.route);
      if (durations) durations.push(attempt.durationMs);
      else window.set(attempt.route, [attempt.durationMs]);
      samples++;
      if (samples >= Math.max(MIN_WINDOW, WINDOW_PER_PATIENT * limit)) decide();
    },
    range: () => ({ min: lowest, max: highest, final: limit }),
  };
}

function medianOf(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
