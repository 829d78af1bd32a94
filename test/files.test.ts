/**
 * Files the run writes (--report-file, --metrics-file, --lock) are acted on only when they are a
 * regular file or nothing: a FIFO, a socket, a directory, a symlink or a device node is refused
 * (checked with lstat), and never replaced, opened for a blocking read or followed.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError } from "../src/errors.ts";
import { NotRegularFile, writeFileAtomic } from "../src/host/atomic-write.ts";
import { acquireLock } from "../src/host/lock.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";
import { makeSpecialFiles } from "./helpers/special-files.ts";
import { tempDir } from "./helpers/temp.ts";

test("writeFileAtomic refuses whatever is not a regular file, and leaves nothing beside it", async (t) => {
  const dir = tempDir(t, "files");
  const special = await makeSpecialFiles(t, dir);
  const before = readdirSync(dir).sort();
  assert.equal(Object.keys(special.paths).length, process.getuid?.() === 0 ? 5 : 4);
  for (const [kind, path] of Object.entries(special.paths)) {
    await assert.rejects(writeFileAtomic(path, "text\n"), NotRegularFile, kind);
  }
  special.assertUntouched();
  assert.deepEqual(readdirSync(dir).sort(), before, "no temporary file left");
  // A regular file, or nothing, is still written.
  await writeFileAtomic(join(dir, "new.json"), "{}\n");
  await writeFileAtomic(join(dir, "new.json"), "[]\n");
});

test("acquireLock refuses whatever is not a regular file with exit 3, without blocking on a FIFO", async (t) => {
  const dir = tempDir(t, "files");
  const special = await makeSpecialFiles(t, dir);
  for (const [kind, path] of Object.entries(special.paths)) {
    assert.throws(
      () => acquireLock(path),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.exitCode === 3 &&
        /is not a regular file .*: point --lock at a regular file or a new path\.$/.test(
          error.message,
        ),
      kind,
    );
  }
  special.assertUntouched();
});

test("the bin: --report-file that is no regular file is exit 74, --metrics-file one is one warning, --lock a FIFO is exit 3 at once", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "files");
  const special = await makeSpecialFiles(t, dir);
  const { device, fifo, symlink } = special.paths;
  const reportFile = device ?? symlink;
  const res = await run(
    ["--json", "--report-file", reportFile as string, "--metrics-file", fifo as string],
    { env },
  );
  assert.equal(res.code, 74, res.stderr);
  assert.equal(parseReport(res.stdout).exitCode, 0, "the sweep itself ran");
  assert.match(
    res.stderr,
    /The report was not written to --report-file .*: it is not a regular file/,
  );
  const metrics = res.stderr.match(
    /The metrics file .* was not written: it is not a regular file/g,
  );
  assert.equal(metrics?.length, 1, res.stderr);
  special.assertUntouched();

  const started = Date.now();
  const locked = await run(["--lock", fifo as string], { env, timeoutMs: 10_000 });
  assert.equal(locked.code, 3, locked.stderr);
  assert.match(locked.stderr, /--lock .* is not a regular file/);
  assert.ok(Date.now() - started < 5_000, "no hang on the FIFO");
  special.assertUntouched();
});
