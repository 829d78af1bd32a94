/**
 * Logs on stderr: the human lines' wording.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { run } from "./helpers/exec.ts";
import { demoPatients, startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";

test("human lines name statuses and say why a patient was skipped", async (t) => {
  // Status 42 is no id of the status table: it is shown by its number.
  const patients = demoPatients().map((p) => (p.pid === 1 ? { ...p, status: 42 } : p));
  const { env } = await startServices(t, { backend: { patients } });
  const res = await run(["--verbose"], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /^\[debug\] pid 2: updated \(Normal -> Alert\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 3: updated \(Alert -> Normal\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 4: unchanged \(Alert\)$/m);
  assert.match(res.stderr, /^\[debug\] pid 1: updated \(status 42 -> Normal\)$/m);
  assert.match(
    res.stderr,
    /^\[debug\] pid 8: skipped: fewer than five vitals, nothing to predict from$/m,
  );
  assert.doesNotMatch(res.stderr, /"route"|GET \//, "request lines are for --log-format json");
});

test("a run that swept no patient says so and why, not '0 patients in'; a held lock is a warning", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/login/", { kind: "status", status: 500 });
  const failed = await run(["--retries", "0"], { env });
  assert.equal(failed.code, 5, failed.stderr);
  assert.doesNotMatch(failed.stdout, /patients in/);
  assert.match(failed.stdout, /^No patient was swept \(upstream\): Login failed: .*HTTP 500/);
  assert.match(failed.stdout, /^Exit code 5$/m);
  assert.equal(failed.stdout.match(/HTTP 500/g)?.length, 1, "the error is said once");

  const { ML_SERVER: _, ...noMl } = env;
  const config = await run([], { env: noMl });
  assert.equal(config.code, 3, config.stderr);
  assert.doesNotMatch(config.stdout, /patients in/);
  assert.match(config.stderr, /^\[error\] ML_SERVER is required/m);

  const lock = join(tempDir(t, "logs"), "sweep.lock");
  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const held = await run(["--lock", lock], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.doesNotMatch(held.stdout, /patients in/);
  assert.match(held.stderr, /^\[warn\] .*this run did nothing/m);
  assert.doesNotMatch(held.stderr, /\[error\]/);
});
