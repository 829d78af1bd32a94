/**
 * The `--lock` file itself (see lock.ts): its format, `<pid>\n<host>\n<nonce>\n`, creating it
 * with O_EXCL, and reading it through one descriptor that neither blocks nor follows a symlink.
 * Anything but a regular file is a ConfigError, never a file to judge, remove or replace.
 */
import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { ConfigError } from "../errors.ts";

export interface Holder {
  pid: number;
  host: string;
  nonce: string | undefined;
}

/** A lock file as one read saw it. */
export interface Seen {
  /** Inode and mtime: another file, or the same one refreshed, has another identity. */
  id: string;
  ageMs: number;
  /** Undefined when the file is empty, unreadable or garbled. */
  holder: Holder | undefined;
}

/** Creates the lock with O_EXCL: false when one exists. A file it could not finish is removed. */
export function create(path: string, content: string): boolean {
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
export function inspect(path: string, now: () => number): Seen | undefined {
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
export function readLockFile(path: string): LockFile | undefined {
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
export function isRegularOrAbsent(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.isFile() ?? true;
}

export function notRegular(path: string): ConfigError {
  return new ConfigError(
    `--lock ${path} is not a regular file (a symlink, directory, device, FIFO or socket), which is never opened or replaced: point --lock at a regular file or a new path.`,
  );
}

/** `<pid>\n<host>\n<nonce>\n`; locks written before the nonce existed have none. */
export function parse(text: string): Holder | undefined {
  const [pidText = "", host = "", nonce] = text.split("\n");
  const pid = Number(pidText);
  if (!/^[1-9]\d*$/.test(pidText) || !Number.isSafeInteger(pid) || host === "") return undefined;
  return { pid, host, nonce: nonce || undefined };
}

export function identity(stat: { ino: bigint; mtimeNs: bigint }): string {
  return `${stat.ino}-${stat.mtimeNs}`;
}

export function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

export function errno(error: unknown): string | undefined {
  return error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
}
