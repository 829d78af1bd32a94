/**
 * How many patients are in flight: a fixed number, or an adaptive limiter (`--concurrency auto`)
 * that learns from every attempt the services answer: TCP Vegas steered by the services' latency
 * (see `adaptivePacing`). It starts at 1 and grows by an eighth (at least one) per window while the
 * latency stays near its floor, then by one while the estimated queue is short; it holds while the
 * queue is moderate and cuts in proportion when latency stays up. A shed answer (429, 503) takes it
 * a step back and a timeout or 504 halves it, at once. Past where a cut landed, each step up is a
 * probe that waits a gap of a few rounds of every patient. Plain state; the sweep hands the number
 * to p-limit.
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
/**
 * Vegas's thresholds, in patients' worth of waiting (the estimated queue): below ALPHA the limit
 * grows, above BETA it is cut, between them it holds. Vegas uses 2 and 4 packets (Netflix's
 * VegasLimit 3 and 6 requests at small limits); a patient spends only part of its time at the
 * service that queues, so one patient's worth of waiting is already a queue there, and a service
 * whose latency climbs steeply runs away within a step or two past its knee (the benchmark's).
 */
const ALPHA = 1;
const BETA = 3;
/**
 * Until the first cut, the limit grows by this share of itself (at least one) per window: an
 * overshoot adds at most an eighth more patients than the services took cleanly, so a service
 * that sheds sheds that eighth, not the half more that doubling would send it.
 */
const SLOW_START_GROWTH = 1 / 8;
/** Latency past this multiple of its floor ends the slow start, though it is no reason to cut. */
const SLOW_START_EXIT = 1.2;
/**
 * What a shed answer (429, 503) leaves of the limit: one step back (at least one patient). The
 * service said it is just past what it takes, at once and without slowing the others.
 */
const SHED_CUT = 0.9;
/** What a timeout or a proxy's 504 leaves: the service is too slow to answer at all. */
const TIMEOUT_CUT = 0.5;
/**
 * The deepest a latency cut goes in one decision: latency measured while a queue drains overstates
 * it, and the next decision (two windows on) cuts again if it must.
 */
const LATENCY_CUT_LEAST = 0.7;
/**
 * After a cut, growing past where it landed waits a gap of windows (each about one round of every
 * patient): this many after an overload, doubled by each overload or failed probe since, up to
 * PROBE_GAP_MOST. A shed costs its patient a Retry-After (1 s is common: a slot idle for as long
 * as a few dozen patients take), so probing must be rare (one shed in 8 rounds of 8 patients is
 * about 0.6% of their requests, and the gap doubles); yet not so rare that a cut made while the
 * limit first overshot (a 429 from a service whose latency climbs) keeps it low for long. A limit
 * that holds at the ceiling for a whole gap shows the service takes that much, and the next step
 * past it waits a shorter gap.
 */
const PROBE_GAP = 8;
const PROBE_GAP_MOST = 256;
/**
 * The first gap after a latency cut, and the shortest: half as long, since probing a service that
 * slows costs latency for a window or two, not a patient's Retry-After.
 */
const LATENCY_GAP = PROBE_GAP / 2;
/**
 * Answered attempts per decision: at least this many, and about one round of every patient (a
 * patient makes two or three requests), so a decision sees the answers of the limit it made.
 */
const MIN_WINDOW = 12;
const WINDOW_PER_PATIENT = 3;
/** A route's mean over fewer answers than this does not move its floor (once it has one). */
const FLOOR_SAMPLES = 5;
/** Fewer answers than this are too few to say what slowed every service alike. */
const COMMON_SAMPLES = 3;

/** Statuses that shed load: the service's own "too many" (429) or "unavailable, retry" (503). */
const SHED_STATUS: ReadonlySet<number> = new Set([429, 503]);

/**
 * TCP Vegas's decision (estimate the queue from the latency over its floor, grow below ALPHA, cut
 * above BETA), adapted from packets in flight on one path to patients in flight across two
 * services, with Netflix Gradient2's decrease (limit x floor/latency + a queue of ALPHA) and, for
 * services that shed instead of slowing, AIMD with a small cut; after any cut, the steps up past
 * where it landed are probes spaced by a gap (CUBIC's plateau at the last loss, in spirit). Latency is compared route by route with its floor (the
 * lowest mean a window of enough answers showed for that route), so a slow route and a fast one
 * weigh by their time, and a single lucky fast answer does not set the bar. After a cut, a window
 * or two go by before the next decision: their answers were asked for at the old limit.
 */
export function adaptivePacing(options: AdaptiveOptions): Pacing {
  const { max } = options;
  let limit = 1;
  let lowest = limit;
  let highest = limit;
  /** Growing by an eighth until the first cut, then one at a time. */
  let slowStart = true;
  /** Windows still to go by after a cut before the next decision. */
  let settling = 0;
  /** The window before's latency ratio: a cut needs two windows that agree. */
  let previous = 1;
  let samples = 0;
  /** Growth to this limit (or past it) is a probe; the windows decided since the last cut or probe. */
  let ceiling: number | undefined;
  let sinceCut = 0;
  /** The limit that held for a whole gap before the probe past it, until the next cut. */
  let held: number | undefined;
  let probeGap = LATENCY_GAP;
  const window = new Map<string, { service: string; durations: number[] }>();
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

  const cut = (next: number, cause: ConcurrencyCause) => {
    // An overload answer, or a probe that failed: the next probe waits twice as long (after an
    // overload, PROBE_GAP at least).
    if (cause === "overload" || held !== undefined)
      probeGap = Math.min(PROBE_GAP_MOST, probeGap * 2);
    if (cause === "overload") probeGap = Math.max(PROBE_GAP, probeGap);
    sinceCut = 0;
    slowStart = false;
    // The answers of the window after a cut were asked for at the old limit; after a latency
    // cut, those of the next one still wait behind them in the service's queue.
    settling = cause === "latency" ? 2 : 1;
    restart();
    // A probe past a limit that held for a whole gap goes back to that limit, no further.
    set(held === undefined ? next : Math.max(next, Math.min(held, limit - 1)), cause);
    held = undefined;
    // Any growth past where a cut landed is a probe: the limit it came from was too much, and
    // the one below it may be too (a service whose latency climbs steeply runs away within a step
    // or two; one that sheds says where its limit is only by shedding, each shed costing its
    // patient the Retry-After).
    ceiling = limit + 1;
  };

  const overload = (keep: number) => {
    cut(Math.min(limit - 1, limit * keep), "overload");
  };

  const grow = () => {
    if (!options.demand()) return;
    const next = slowStart ? limit + Math.max(1, Math.floor(limit * SLOW_START_GROWTH)) : limit + 1;
    if (ceiling !== undefined && next >= ceiling) {
      if (sinceCut < probeGap) return;
      held = limit;
      // Held at the ceiling itself for a whole gap: the service takes that much now; the next
      // step past it is a probe too, and comes sooner.
      if (limit >= ceiling) {
        ceiling = next;
        probeGap = Math.max(LATENCY_GAP, probeGap / 2);
      }
      sinceCut = 0;
    }
    set(next, "headroom");
  };

  /**
   * The window's latency over the floors, weighted by time: 1 means at the floor. What slowed
   * every service alike (this process or the machine busy, not a service's queue) is taken out: a
   * pause adds the same milliseconds to every answer in flight, so the least any service's routes
   * rose over their floors, when both services answered, is subtracted from every route.
   */
  const ratio = (): number => {
    const routes: Array<{ service: string; mean: number; floor: number; answers: number }> = [];
    const excess = new Map<string, number>();
    for (const [route, { service, durations }] of window) {
      const mean = meanOf(durations);
      const known = floors.get(route);
      const floor =
        known === undefined || (durations.length >= FLOOR_SAMPLES && mean < known) ? mean : known;
      floors.set(route, floor);
      routes.push({ service, mean, floor, answers: durations.length });
      if (durations.length >= COMMON_SAMPLES)
        excess.set(
          service,
          Math.min(excess.get(service) ?? Number.POSITIVE_INFINITY, mean - floor),
        );
    }
    const common = excess.size >= 2 ? Math.max(0, Math.min(...excess.values())) : 0;
    let seen = 0;
    let floor = 0;
    for (const r of routes) {
      seen += Math.max(r.floor, r.mean - common) * r.answers;
      floor += r.floor * r.answers;
    }
    // A millisecond of slack per answer: sub-millisecond services would otherwise swing it by
    // their jitter alone.
    return (seen + samples) / (floor + samples);
  };

  const decide = () => {
    const measured = ratio();
    const before = previous;
    previous = measured;
    if (settling > 0) {
      settling--;
      return restart();
    }
    // Vegas: the patients' worth of waiting, by Little's law.
    const queue = limit * (1 - 1 / measured);
    // A cut needs two windows in a row that climbed: one alone may be the machine's hiccup (a
    // pause stalls every answer in flight at once), a service that queues stays slow.
    const sustained = Math.min(measured, before);
    if (limit * (1 - 1 / sustained) > BETA || sustained > LATENCY_TOLERANCE) {
      // Gradient2: the limit the floor latency would allow, plus a small queue.
      const next = Math.max(limit * LATENCY_CUT_LEAST, limit / sustained + ALPHA);
      if (next < limit) return cut(next, "latency");
    }
    const climbed = queue > BETA || measured > LATENCY_TOLERANCE;
    restart();
    sinceCut++;
    if (measured > SLOW_START_EXIT) slowStart = false;
    if (!climbed && queue < ALPHA) grow();
  };

  return {
    get concurrency() {
      return limit;
    },
    observe(attempt) {
      const timedOut =
        attempt.reason === "timeout" || (attempt.status !== null && attempt.status === 504);
      const shed = attempt.status !== null && SHED_STATUS.has(attempt.status);
      if (timedOut || shed) {
        if (settling === 0) overload(timedOut ? TIMEOUT_CUT : SHED_CUT);
        return;
      }
      if (attempt.status === null) return; // unreachable: says nothing about load
      const seen = window.get(attempt.route);
      if (seen) seen.durations.push(attempt.durationMs);
      else window.set(attempt.route, { service: attempt.service, durations: [attempt.durationMs] });
      samples++;
      if (samples >= Math.max(MIN_WINDOW, WINDOW_PER_PATIENT * limit)) decide();
    },
    range: () => ({ min: lowest, max: highest, final: limit }),
  };
}

function meanOf(values: number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return values.length === 0 ? 0 : sum / values.length;
}
