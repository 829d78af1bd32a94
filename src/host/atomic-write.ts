/**
 * Files replaced whole or not at all: a reader (node_exporter's textfile collector, a log shipper
 * reading the report) sees the old content or the new one, never half of it.
 */
import { randomBytes } from "node:crypto";
import { lstat, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Thrown when the target is there but is not a regular file: a symlink, a directory, a device, a
 * FIFO or a socket. The rename would replace it with a regular file (run as root, a device node
 * such as /dev/full), so nothing is written.
 */
export class NotRegularFile extends Error {
  override name = "NotRegularFile";
  readonly code = "not_regular";
  constructor(path: string) {
    super(`${path} is not a regular file`);
  }
}

/** Words for NotRegularFile in a log line: what was found, and what to do. */
export const NOT_REGULAR_HINT =
  "it is not a regular file (a symlink, directory, device, FIFO or socket), which is never replaced; point it at a regular file or a new path";

/** Throws NotRegularFile unless `path` is a regular file or nothing (lstat: a symlink counts). */
async function ensureRegularOrAbsent(path: string): Promise<void> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (stats !== undefined && !stats.isFile()) throw new NotRegularFile(path);
}

/**
 * Writes `text` (or its pieces, one after another) to `path` atomically: into a temporary file
 * beside it (same directory, so the rename stays on one file system), flushed to disk, then
 * renamed over the target. The temporary name starts with a dot and ends in `.tmp`, so the
 * textfile collector (which reads `*.prom`) never picks it up. Acts only on a regular file or on
 * nothing: anything else at `path` (checked before the temporary file is made and again before
 * the rename) is NotRegularFile. Throws the file system's error (with its `code`); nothing is
 * left behind. The file is 0644 less the process's umask, unless `mode` is given: then exactly
 * that, from its creation (a state file holding a token is never readable by others, and the
 * metrics file stays readable by node_exporter under systemd's `UMask=0027`).
 */
export async function writeFileAtomic(
  path: string,
  text: string | Iterable<string>,
  { mode }: { mode?: number } = {},
): Promise<void> {
  await ensureRegularOrAbsent(path);
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  let created = false;
  try {
    const file = await open(temp, "wx", mode ?? 0o644);
    created = true;
    try {
      // open's mode passes through the umask; chmod does not.
      if (mode !== undefined) await file.chmod(mode);
      await file.writeFile(text, "utf8");
      // Without it, a crash after the rename can leave an empty file under the target's name.
      await file.sync();
    } finally {
      await file.close();
    }
    await ensureRegularOrAbsent(path);
    await rename(temp, path);
    created = false;
  } finally {
    if (created) await unlink(temp).catch(() => {});
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename itself durable; best effort (some file systems refuse to sync a directory). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The file is in place either way.
  }
}
