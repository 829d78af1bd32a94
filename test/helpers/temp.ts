/**
 * Temporary directories that vanish with the test that made them, whether it passed or failed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

/**
 * Makes a fresh `ml-scheduler-<name>-*` directory under os.tmpdir() (which honours TMPDIR) and
 * removes it with everything in it once the test is over: t.after runs after a failed assertion too,
 * and some of these directories hold test passwords.
 */
export function tempDir(t: TestContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ml-scheduler-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
