/**
 * The rate cap of one service (`--max-rps`): requests leave in the order they asked, `1 / rps`
 * apart, so no second holds more than `rps` of them. Every attempt asks (the HTTP layer's hook
 * runs before the first attempt, each retry and each redirect), so retries count.
 */
import { LIMITS } from "../defaults.ts";

/**
 * How late a slot may be taken and still count as on time: a timer that fires a little late does
 * not cost the budget, and a stalled event loop never buys a burst larger than this.
 */
const CATCH_UP_MS = 10;

export interface RateCap {
  /**
   * Resolves when a request may leave. An aborted signal resolves it at once and hands its place
   * on: the caller sees the abort and sends nothing.
   */
  take(signal?: AbortSignal): Promise<void>;
}

interface Waiter {
  go: () => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/** A cap of `rps` requests per second (`rps` > 0; below 1, they are more than a second apart). */
export function createRateCap(rps: number): RateCap {
  const interval = 1000 / rps;
  /** When the next request may leave, in performance.now() ms. */
  let next = Number.NEGATIVE_INFINITY;
  const queue: Waiter[] = [];
  let timer: NodeJS.Timeout | undefined;

  /** Takes the next slot if it is due; the one after it is an interval later. */
  const claim = (): boolean => {
    const now = performance.now();
    // A slot nobody took in time is lost (beyond the catch-up), never saved up for a burst.
    next = Math.max(next, now - CATCH_UP_MS);
    if (next > now) return false;
    next += interval;
    return true;
  };

  const schedule = () => {
    const wait = Math.ceil(next - performance.now());
    timer = setTimeout(pump, Math.min(Math.max(wait, 1), LIMITS.timerMs));
  };

  function pump() {
    timer = undefined;
    while (queue.length > 0 && claim()) {
      const waiter = queue.shift() as Waiter;
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.go();
    }
    if (queue.length > 0) schedule();
  }

  return {
    take(signal) {
      if (signal?.aborted || (queue.length === 0 && claim())) return Promise.resolve();
      return new Promise<void>((go) => {
        const waiter: Waiter = {
          go,
          signal,
          onAbort: () => {
            queue.splice(queue.indexOf(waiter), 1);
            if (queue.length === 0) {
              clearTimeout(timer);
              timer = undefined;
            }
            go();
          },
        };
        signal?.addEventListener("abort", waiter.onAbort, { once: true });
        queue.push(waiter);
        if (timer === undefined) schedule();
      });
    },
  };
}
