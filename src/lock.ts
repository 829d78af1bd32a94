/**
 * `--lock <file>`: one sweep at a time on a host. The file holds the owner's pid and hostname; a
 * lock whose process is gone is taken over, so a crashed run never blocks the next ones.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { ConfigError, LockedError } from "./errors.ts";

export interface Lock {
  /** Removes the file if it is still ours. */
  release(): void;
}

/** Takes the lock or throws LockedError (exit 7); a path that cannot be written is exit 3. */
export function acquireLock(path: string): Lock {
  const content = `${process.pid}\n${hostname()}\n`;
  // Two tries: the second follows the removal of a dead owner's file.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, content);
      closeSync(fd);
      return {
        release() {
          if (readOrEmpty(path) === content) unlinkSync(path);
        },
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") {
        throw new ConfigError(`--lock ${path}: cannot create the lock file (${code}).`, {
          cause: error,
        });
      }
    }
    const owner = readOrEmpty(path);
    if (attempt === 0 && isStale(owner)) {
      try {
        unlinkSync(path);
      } catch {
        // Another run removed it first; the next open decides.
      }
      continue;
    }
    break;
  }
  const pid = Number.parseInt(readOrEmpty(path), 10);
  throw new LockedError(
    Number.isNaN(pid)
      ? `The lock ${path} exists but names no process; remove it if no run is active. This run did nothing.`
      : `Another run (pid ${pid}) holds the lock ${path}; this run did nothing.`,
  );
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** A lock is stale when it names a process on this host that no longer exists. */
function isStale(owner: string): boolean {
  const [pidText, host] = owner.split("\n");
  const pid = Number(pidText);
  // Empty or garbled: maybe a run between creating and writing it; never assume it dead.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (host !== undefined && host !== "" && host !== hostname()) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
