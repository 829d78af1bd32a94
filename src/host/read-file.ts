/**
 * Reading the small files a run is configured by (the env file, `*_FILE` secrets) without
 * trusting them: a FIFO, a device or a huge file is a problem to report, never a hang or a
 * memory blow-up.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  type Stats,
  statSync,
} from "node:fs";

/** Why a file could not be read: not a regular file, over the limit, or an errno code. */
export type FileProblem = "not_regular" | "too_large" | string;

export interface ReadBoundedOptions {
  /** Refuse a symlink (`ELOOP`) instead of following it: for files the tool wrote itself. */
  noFollow?: boolean | undefined;
  /** A further check of the opened file: why it is refused, else undefined. */
  check?: ((stats: Stats) => FileProblem | undefined) | undefined;
}

/**
 * A small regular file's text, or why not. Checked before it is opened (a FIFO would block the
 * open, /dev/zero never ends), opened non-blocking in case it was swapped since, checked again,
 * and never read past the limit. Symlinks are followed unless `noFollow`: Kubernetes mounts
 * Secrets as symlinks.
 */
export function readBounded(
  path: string,
  maxBytes: number,
  options: ReadBoundedOptions = {},
): string | { problem: FileProblem } {
  const bad = (stats: Stats): FileProblem | undefined =>
    !stats.isFile() ? "not_regular" : stats.size > maxBytes ? "too_large" : undefined;
  let fd: number | undefined;
  try {
    const stat = options.noFollow ? lstatSync(path) : statSync(path);
    const before = options.noFollow && stat.isSymbolicLink() ? "ELOOP" : bad(stat);
    if (before) return { problem: before };
    const noFollow = options.noFollow ? constants.O_NOFOLLOW : 0;
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | noFollow);
    const opened = fstatSync(fd);
    const after = bad(opened) ?? options.check?.(opened);
    if (after) return { problem: after };
    // Sized by the file, not the bound (a bound of 64 MiB must not cost 64 MiB for a 4 MB file),
    // with one byte more: a file that grew since the check is caught here.
    const buffer = Buffer.allocUnsafe(Math.min(maxBytes, opened.size) + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) return { problem: "too_large" };
    if (length > opened.size) return { problem: "changed while it was read" };
    return buffer.toString("utf8", 0, length);
  } catch (error) {
    return { problem: (error as NodeJS.ErrnoException).code ?? "unreadable" };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
