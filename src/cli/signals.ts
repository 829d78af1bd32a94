/**
 * What stops a running command from outside it: a signal (the first stops new work, the second
 * aborts everything; after the report, its exit code stands), or a bug that escaped anywhere in
 * the process, which aborts the run (exit 70).
 */
import { DEFAULTS } from "../defaults.ts";
import { type ExitCode, type ExitName, SchedulerError } from "../errors.ts";
import type { ProcessIo } from "./io.ts";

/**
 * How a run stops on a signal. The first stops what has something to finish gracefully (in-flight
 * patients get the grace; before the first patient, nothing waits); the second aborts everything,
 * the notifiers' requests included. After the report, its exit code stands.
 */
export class Stops {
  /** Aborted when no new work may start (a signal, the lock taken over). */
  readonly stop = new AbortController();
  /** Aborted when in-flight requests must stop now (a second signal, a bug). */
  readonly abort = new AbortController();
  /** Aborted by a second signal: the notifiers' requests stop too. */
  readonly hush = new AbortController();
  /** The exit code once the report is written: it stands, whatever signal comes after. */
  reported: ExitCode | undefined;
  grace: number = DEFAULTS.graceSeconds;
  readonly #io: ProcessIo;

  constructor(io: ProcessIo) {
    this.#io = io;
    for (const name of Object.keys(SIGNAL_CODES) as NodeJS.Signals[])
      process.on(name, (signal: NodeJS.Signals) => this.#heard(signal));
  }

  #heard(name: NodeJS.Signals): void {
    const code = SIGNAL_CODES[name] ?? "sigterm";
    const { reported } = this;
    if (!this.stop.signal.aborted) {
      const message =
        reported === undefined
          ? `${name}: no new patient starts; in-flight patients get ${this.grace}s to finish.`
          : `${name}: the report is written and its exit code ${reported} stands; the notifiers finish their requests (${name} again aborts them).`;
      this.stop.abort(new SchedulerError(code, message));
      if (reported !== undefined) this.#warn(message, code);
      return;
    }
    if (this.hush.signal.aborted) return;
    this.#warn(
      reported === undefined
        ? `${name} again: aborting in-flight requests and the notifiers now.`
        : `${name} again: aborting the notifiers now; the exit code ${reported} stands.`,
      code,
    );
    this.abort.abort(this.stop.signal.reason);
    this.hush.abort(this.stop.signal.reason);
  }

  #warn(message: string, code: ExitName): void {
    if (this.#io.out) this.#io.out.warn(message, { code });
    else this.#io.warn(message);
  }
}

/** The signals a run stops gracefully on, and the error code each ends it with. */
const SIGNAL_CODES: Partial<Record<NodeJS.Signals, ExitName>> = {
  SIGTERM: "sigterm",
  SIGINT: "sigint",
  SIGHUP: "sighup",
};

/** Where a bug that escaped goes: to the running command to stop it, else kept for the end. */
export class BugTrap {
  stray: { error: unknown } | undefined;
  #onBug: ((error: unknown) => void) | undefined;
  catch(error: unknown): void {
    if (this.#onBug) this.#onBug(error);
    else this.stray ??= { error };
  }
  /** A promise that rejects with the next bug, until `release`. */
  trap(abort: AbortController): Promise<never> {
    const bugged = new Promise<never>((_, reject) => {
      this.#onBug = (error) => {
        abort.abort(error);
        reject(error);
      };
    });
    bugged.catch(() => {});
    return bugged;
  }
  release(): void {
    this.#onBug = undefined;
  }
}
