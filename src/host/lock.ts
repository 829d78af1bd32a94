/**
 * `--lock <file>`: one sweep at a time on a host or a shared volume.
 *
 * The file names its holder: pid, hostname and a random nonce by which the holder knows its own
 * file. A lock is alive only while its holder keeps it fresh by refreshing the file's mtime (as
 * proper-lockfile does): one not refreshed for `lockStaleMs` is stale whatever it names, because a
 * pid proves nothing on another host, nor once a container's PID 1 is gone (every later run sees
 * its own PID 1 alive). A lock naming a pid of this host that no longer exists is stale at once.
 *
 * The file's format, creating and reading it are lock-file.ts; how a stale lock is taken over
 * without two runs tripping over each other is lock-takeover.ts.
 */
import { randomUUID } from "node:crypto";
import { unlinkSync, utimesSync } from "node:fs";
import { hostname } from "node:os";
import { DEFAULTS } from "../defaults.ts";
import { ConfigError, LockedError, SchedulerError } from "../errors.ts";
import {
  create,
  errno,
  type Holder,
  inspect,
  isRegularOrAbsent,
  notRegular,
  parse,
  readLockFile,
  type Seen,
} from "./lock-file.ts";
import { takeOver } from "./lock-takeover.ts";

/** Creations tried before giving up on a lock that keeps changing hands. */
const ATTEMPTS = 4;

export interface Lock {
  /** Stops refreshing; removes the file if it still holds our nonce. */
  release(): void;
}

export interface LockOptions {
  /** Called once when a refresh finds the file gone or another run's; refreshing then stops. */
  onLost?: ((error: LockedError) => void) | undefined;
  /** The clock (ms since the epoch) that judges a lock's age and stamps refreshes. */
  now?: (() => number) | undefined;
}

/**
 * Takes the lock, taking over a stale one, or throws LockedError (exit 7). A lock file that cannot
 * be created or fully written is a ConfigError (exit 3); a partly written one is removed first.
 * The holder refreshes the file until `release()`.
 */
export function acquireLock(path: string, options: LockOptions = {}): Lock {
  const now = options.now ?? Date.now;
  const host = hostname();
  const nonce = randomUUID();
  try {
    // Before any open: a FIFO would block it (and no signal handler exists yet), and a device,
    // socket or symlink is never ours to judge, remove or replace.
    if (!isRegularOrAbsent(path)) throw notRegular(path);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (create(path, `${process.pid}\n${host}\n${nonce}\n`)) {
        return hold(path, nonce, now, options.onLost);
      }
      const seen = inspect(path, now);
      if (seen === undefined) continue; // released or taken over meanwhile
      const held = heldMessage(path, seen, host);
      if (held !== undefined) throw new LockedError(held);
      if (takeOver(path, seen, now) === "busy") {
        throw new LockedError(
          `Another run is taking over the stale lock ${path} right now; this run did nothing.`,
        );
      }
    }
  } catch (error) {
    if (error instanceof SchedulerError || errno(error) === undefined) throw error;
    const what = `${errno(error)} on the lock file or its directory`;
    throw new ConfigError(`--lock ${path}: ${what}; check their permissions.`, { cause: error });
  }
  throw new LockedError(`The lock ${path} keeps changing hands; this run did nothing.`);
}

/** Why the lock is not ours to take, as the exit-7 message; undefined when it is stale. */
function heldMessage(path: string, seen: Seen, host: string): string | undefined {
  const age = Math.max(0, Math.round(seen.ageMs / 1000));
  const fresh = seen.ageMs < DEFAULTS.lockStaleMs;
  const staleAfter = `a lock not refreshed for ${DEFAULTS.lockStaleMs / 1000}s is taken over`;
  const { holder } = seen;
  if (holder === undefined) {
    if (!fresh) return undefined;
    return `The lock ${path} names no holder (empty or unreadable, written ${age}s ago: a run may be creating it); this run did nothing (${staleAfter}).`;
  }
  if (!fresh || (holder.host === host && !exists(holder.pid))) return undefined;
  return `Another run (pid ${holder.pid} on host ${holder.host}, last refreshed ${age}s ago) holds the lock ${path}; this run did nothing (${staleAfter}).`;
}

/** The holder: refreshes the mtime until released, and reports once a refresh finds it lost. */
function hold(path: string, nonce: string, now: () => number, onLost: LockOptions["onLost"]): Lock {
  const timer = setInterval(() => {
    let holder: Holder | undefined;
    try {
      // Anything but a regular file (ConfigError) is no longer our lock: lost.
      holder = parse(readLockFile(path)?.text ?? "");
    } catch (error) {
      if (!(error instanceof ConfigError)) return; // a passing I/O error: the next tick tries again
    }
    if (holder?.nonce === nonce) {
      try {
        const seconds = now() / 1000;
        utimesSync(path, seconds, seconds);
      } catch {
        // The next tick sees what happened to the file.
      }
      return;
    }
    clearInterval(timer);
    const by = holder
      ? `by pid ${holder.pid} on host ${holder.host}`
      : "(the file is gone or names no run)";
    onLost?.(
      new LockedError(
        `The lock ${path} was taken over ${by}: another run sweeps now, so this one starts no further patient.`,
      ),
    );
  }, DEFAULTS.lockRefreshMs);
  timer.unref();
  return {
    release() {
      clearInterval(timer);
      try {
        if (parse(readLockFile(path)?.text ?? "")?.nonce === nonce) unlinkSync(path);
      } catch {
        // Gone already: nothing of ours to remove.
      }
    },
  };
}

/** Whether this host has a process with that pid (EPERM: it exists, it is not ours). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errno(error) !== "ESRCH";
  }
}
