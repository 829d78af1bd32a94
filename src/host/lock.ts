/**
 * `--lock <file>`: one sweep at a time on a host or a shared volume.
 *
 * The file names its holder: pid, hostname and a random nonce by which the holder knows its own
 * file. A lock is alive only while its holder keeps it fresh by refreshing the file's mtime (as
 * proper-lockfile does): one not refreshed for `lockStaleMs` is stale whatever it names, because a
 * pid proves nothing on another host, nor once a container's PID 1 is gone (every later run sees
 * its own PID 1 alive). A lock naming a pid of this host that no longer exists is stale at once.
 *
 * Taking over is where two runs trip: A and B both judge the lock stale, A removes it and creates
 * its own, then B removes A's fresh lock. So a stale lock is removed only by the one run that
 * creates, with O_EXCL, a guard file whose name carries that lock's identity (inode and mtime in
 * nanoseconds), and only after checking under the guard that the lock is still that very file. A
 * run that gets the guard once the takeover is over finds another file there and backs off. Every
 * lock is created with O_EXCL, so of the runs racing after the removal exactly one creates it and
 * the others find it fresh. A guard whose creator died in those few system calls is stale after
 * `lockStaleMs`; no run removes it to race for it again (that would reopen the race one level up):
 * they pass to the next level's guard name, where O_EXCL again picks one, and the run that
 * completes a takeover clears such dead guards. The one residual case is every lease's: a holder
 * or taker paused for longer than `lockStaleMs` acts on an old judgement.
 */
import { randomUUID } from "node:crypto";
import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { DEFAULTS } from "../defaults.ts";
import { ConfigError, LockedError, SchedulerError } from "../errors.ts";

/** Creations tried before giving up on a lock that keeps changing hands. */
const ATTEMPTS = 4;
/** Guard names per stale lock; each is tried only when the one before was left by a dead run. */
const GUARD_LEVELS = 4;
const GUARD_SUFFIX = ".takeover";

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

interface Holder {
  pid: number;
  host: string;
  nonce: string | undefined;
}

/** A lock file as one read saw it. */
interface Seen {
  /** Inode and mtime: another file, or the same one refreshed, has another identity. */
  id: string;
  ageMs: number;
  /** Undefined when the file is empty, unreadable or garbled. */
  holder: Holder | undefined;
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

/** Creates the lock with O_EXCL: false when one exists. A file it could not finish is removed. */
function create(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (error) {
    if (errno(error) === "EEXIST") return false;
    throw new ConfigError(
      `--lock ${path}: cannot create the lock file (${errno(error)}); check that its directory exists and is writable.`,
      { cause: error },
    );
  }
  try {
    try {
      writeFileSync(fd, content);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    removeQuietly(path);
    throw new ConfigError(
      `--lock ${path}: cannot write the lock file (${errno(error)}), so it was removed; check the space and limits of its file system.`,
      { cause: error },
    );
  }
  return true;
}

/** Reads the lock through one descriptor, so its identity, age and holder are one file's. */
function inspect(path: string, now: () => number): Seen | undefined {
  let read: LockFile | undefined;
  try {
    read = readLockFile(path);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // Unreadable: judged by its age alone.
    const stat = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    if (stat && !stat.isFile()) throw notRegular(path);
    return stat && { id: identity(stat), ageMs: now() - Number(stat.mtimeMs), holder: undefined };
  }
  if (read === undefined) return undefined;
  const { stat, text } = read;
  return { id: identity(stat), ageMs: now() - Number(stat.mtimeMs), holder: parse(text) };
}

/** A lock file as one descriptor read it. */
interface LockFile {
  stat: BigIntStats;
  text: string;
}

/** Far more than a lock holds (pid, host, nonce): a larger file is read only this far. */
const MAX_LOCK_BYTES = 4096;

/**
 * The lock file, read through a descriptor opened so that it cannot block (O_NONBLOCK: a FIFO
 * swapped in since the check) nor follow a symlink; undefined when there is none. A ConfigError
 * when it is not a regular file; the file system's error when it cannot be read.
 */
function readLockFile(path: string): LockFile | undefined {
  let fd: number;
  try {
    const flags = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);
    fd = openSync(path, flags);
  } catch (error) {
    if (errno(error) === "ENOENT") return undefined;
    if (errno(error) === "ELOOP") throw notRegular(path);
    throw error;
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw notRegular(path);
    const buffer = Buffer.alloc(MAX_LOCK_BYTES);
    let text = "";
    try {
      text = buffer.toString("utf8", 0, readSync(fd, buffer, 0, MAX_LOCK_BYTES, 0));
    } catch {
      // Unreadable (an I/O error): judged by its age alone.
    }
    return { stat, text };
  } finally {
    closeSync(fd);
  }
}

/** Whether `path` is a regular file or nothing (lstat: a symlink is neither). */
function isRegularOrAbsent(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.isFile() ?? true;
}

function notRegular(path: string): ConfigError {
  return new ConfigError(
    `--lock ${path} is not a regular file (a symlink, directory, device, FIFO or socket), which is never opened or replaced: point --lock at a regular file or a new path.`,
  );
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

/**
 * Removes the stale lock `seen` if the lock is still that file (see the module comment).
 * "changed": it is another file now, judge again; "busy": another run is taking it over.
 */
function takeOver(path: string, seen: Seen, now: () => number): "removed" | "changed" | "busy" {
  for (let level = 0; level < GUARD_LEVELS; level++) {
    const guard = `${path}.${seen.id}.${level}${GUARD_SUFFIX}`;
    try {
      closeSync(openSync(guard, "wx"));
    } catch (error) {
      if (errno(error) !== "EEXIST") throw error;
      const age = ageOf(guard, now);
      if (age === undefined) return "changed"; // its creator has just finished
      if (age < DEFAULTS.lockStaleMs) return "busy";
      continue;
    }
    try {
      const current = statSync(path, { bigint: true, throwIfNoEntry: false });
      if (current === undefined || identity(current) !== seen.id) return "changed";
      try {
        unlinkSync(path);
      } catch (error) {
        if (errno(error) !== "ENOENT") throw error; // ENOENT: its holder released it meanwhile
      }
      removeDeadGuards(path, now);
      return "removed";
    } finally {
      removeQuietly(guard);
    }
  }
  return "busy";
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

/** Guards of this lock left by runs that died taking it over: litter once a takeover is done. */
function removeDeadGuards(path: string, now: () => number): void {
  const prefix = `${basename(path)}.`;
  try {
    for (const name of readdirSync(dirname(path))) {
      if (!name.startsWith(prefix) || !name.endsWith(GUARD_SUFFIX)) continue;
      const guard = join(dirname(path), name);
      if ((ageOf(guard, now) ?? 0) >= DEFAULTS.lockStaleMs) removeQuietly(guard);
    }
  } catch {
    // Best effort: litter, never a reason to fail a takeover that is done.
  }
}

/** `<pid>\n<host>\n<nonce>\n`; locks written before the nonce existed have none. */
function parse(text: string): Holder | undefined {
  const [pidText = "", host = "", nonce] = text.split("\n");
  const pid = Number(pidText);
  if (!/^[1-9]\d*$/.test(pidText) || !Number.isSafeInteger(pid) || host === "") return undefined;
  return { pid, host, nonce: nonce || undefined };
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

function identity(stat: { ino: bigint; mtimeNs: bigint }): string {
  return `${stat.ino}-${stat.mtimeNs}`;
}

function ageOf(file: string, now: () => number): number | undefined {
  const stat = statSync(file, { throwIfNoEntry: false });
  return stat && now() - stat.mtimeMs;
}

function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

function errno(error: unknown): string | undefined {
  return error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
}
