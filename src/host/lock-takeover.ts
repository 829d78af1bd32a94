/**
 * Taking over a stale `--lock` file (lock.ts judges it stale; lock-file.ts reads and creates it).
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
import { closeSync, openSync, readdirSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { DEFAULTS } from "../defaults.ts";
import { errno, identity, removeQuietly, type Seen } from "./lock-file.ts";

/** Guard names per stale lock; each is tried only when the one before was left by a dead run. */
const GUARD_LEVELS = 4;
const GUARD_SUFFIX = ".takeover";

/**
 * Removes the stale lock `seen` if the lock is still that file (see the module comment).
 * "changed": it is another file now, judge again; "busy": another run is taking it over.
 */
export function takeOver(
  path: string,
  seen: Seen,
  now: () => number,
): "removed" | "changed" | "busy" {
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

function ageOf(file: string, now: () => number): number | undefined {
  const stat = statSync(file, { throwIfNoEntry: false });
  return stat && now() - stat.mtimeMs;
}
