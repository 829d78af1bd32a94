/**
 * Reading the small files a run is configured by (the env file, `*_FILE` secrets) without
 * trusting them: a FIFO, a device or a huge file is a problem to report, never a hang or a
 * memory blow-up.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from "node:fs";

/** Why a file could not be read: not a regular file, over the limit, or an errno code. */
export type FileProblem = "not_regular" | "too_large" | string;

/**
 * A small regular file's text, or why not. Checked before it is opened (a FIFO would block the
 * open, /dev/zero never ends), opened non-blocking in case it was swapped since, checked again,
 * and never read past the limit. Symlinks are followed: Kubernetes mounts Secrets as symlinks.
 */
export function readBounded(path: string, maxBytes: number): string | { problem: FileProblem } {
  const bad = (stats: Stats): FileProblem | undefined =>
    !stats.isFile() ? "not_regular" : stats.size > maxBytes ? "too_large" : undefined;
  let fd: number | undefined;
  try {
    const before = bad(statSync(path));
    if (before) return { problem: before };
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    const after = bad(fstatSync(fd));
    if (after) return { problem: after };
    // One byte more than allowed: a file that grew since the check is caught here.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) return { problem: "too_large" };
    return buffer.toString("utf8", 0, length);
  } catch (error) {
    return { problem: (error as NodeJS.ErrnoException).code ?? "unreadable" };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
