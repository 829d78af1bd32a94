/**
 * Paths that are not regular files, made inside a test's own temporary directory (never anything
 * under /dev): a FIFO, a socket, a directory, a symlink to a regular file and, as root, a
 * character device node (the numbers of /dev/full). Each must survive a run untouched.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";

export type SpecialKind = "fifo" | "socket" | "directory" | "symlink" | "device";

export interface SpecialFiles {
  /** Each kind's path; `device` only when the tests run as root (mknod needs it). */
  paths: Partial<Record<SpecialKind, string>>;
  /** Asserts that every path is still what it was made as, and the symlink's target unchanged. */
  assertUntouched(): void;
}

/** Makes one of each kind under `dir` (a tempDir), named `<prefix>-<kind>`. */
export async function makeSpecialFiles(
  t: TestContext,
  dir: string,
  prefix = "special",
): Promise<SpecialFiles> {
  const at = (kind: SpecialKind) => join(dir, `${prefix}-${kind}`);
  const paths: Partial<Record<SpecialKind, string>> = {};
  paths.fifo = at("fifo");
  execFileSync("mkfifo", [paths.fifo]);
  paths.socket = at("socket");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(paths.socket, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  paths.directory = at("directory");
  mkdirSync(paths.directory);
  const target = join(dir, `${prefix}-target`);
  writeFileSync(target, "keep\n");
  paths.symlink = at("symlink");
  symlinkSync(target, paths.symlink);
  if (process.getuid?.() === 0) {
    paths.device = at("device");
    execFileSync("mknod", [paths.device, "c", "1", "7"]);
  }
  const is: Record<SpecialKind, (path: string) => boolean> = {
    fifo: (p) => lstatSync(p).isFIFO(),
    socket: (p) => lstatSync(p).isSocket(),
    directory: (p) => lstatSync(p).isDirectory(),
    symlink: (p) => lstatSync(p).isSymbolicLink(),
    device: (p) => lstatSync(p).isCharacterDevice(),
  };
  return {
    paths,
    assertUntouched() {
      for (const [kind, path] of Object.entries(paths) as Array<[SpecialKind, string]>) {
        assert.ok(is[kind](path), `${kind} is still one`);
      }
      assert.equal(readFileSync(target, "utf8"), "keep\n", "the symlink's target is unchanged");
    },
  };
}
