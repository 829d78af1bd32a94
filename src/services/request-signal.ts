/**
 * The abort signal each request hands got. got attaches and detaches its abort listener three
 * times per attempt (node's `addAbortListener`), which on a real AbortSignal goes through
 * EventTarget each time: about 8% of got's work per request, counted with callgrind.
 * `addAbortListener` takes any object with `aborted` and add/removeEventListener; this one keeps
 * its listeners in a Set. The run's own signal reaches it through the client (see `linkAborts`).
 */
export class RequestSignal {
  aborted = false;
  reason: unknown;
  readonly #listeners = new Set<() => void>();

  addEventListener(_type: "abort", listener: () => void): void {
    if (!this.aborted) this.#listeners.add(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    this.#listeners.delete(listener);
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Aborts once, with `reason` (a DOMException named AbortError when none is given). */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException("This operation was aborted", "AbortError");
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const listener of listeners) listener();
  }

  /** As got's options type it; got reads only what this class has. */
  get asAbortSignal(): AbortSignal {
    return this as unknown as AbortSignal;
  }
}

/**
 * The requests of one client, aborted together when `signal` aborts: one listener on the run's
 * signal for all of them, instead of one per request.
 */
export function linkAborts(signal: AbortSignal | undefined): Set<RequestSignal> {
  const inFlight = new Set<RequestSignal>();
  signal?.addEventListener(
    "abort",
    () => {
      for (const request of inFlight) request.abort(signal.reason);
    },
    { once: true },
  );
  return inFlight;
}
