/**
 * `ml-scheduler check`: the steps before a sweep's first patient and nothing after, with a
 * sweep's exit codes; never a prediction (beyond the empty probe), a write or a lock.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { usageError } from "./helpers/argv.ts";
import { beforeFinished, PACKAGE_VERSION, parseReport, run } from "./helpers/exec.ts";
import { secretsOf, startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import { demoPatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isPredict = (r: RecordedRequest) => r.path === "/predict" && r.body !== "[]";
const isWrite = (r: RecordedRequest) => r.method === "PUT";
const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";

test("check passes with both services up: exit 0, no vitals, prediction or write, no lock", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const lock = join(tempDir(t, "check"), "sweep.lock");
  const res = await run(["check", "--lock", lock], { env });
  // --lock is a sweep option: check refuses it.
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /check takes no sweep options: remove --lock/);
  assert.equal(backend.requests.length + ml.requests.length, 0);

  const ok = await run(["check"], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^login: ok/m);
  assert.match(ok.stdout, /^ML server: ok \(health\)/m);
  assert.match(ok.stdout, /^patient list: ok \(8 patients/m);
  assert.equal(backend.requests.filter(isVitals).length, 0);
  assert.equal(ml.requests.filter(isPredict).length, 0);
  assert.equal(backend.requests.filter(isWrite).length, 0);
  assert.ok(!existsSync(lock));
  for (const word of secretsOf(demoPatients())) assert.ok(!(ok.stdout + ok.stderr).includes(word));
});

test("check --json prints one document wherever --json stands", async (t) => {
  const { env } = await startServices(t);
  for (const args of [
    ["check", "--json"],
    ["--json", "check"],
  ]) {
    const res = await run(args, { env });
    assert.equal(res.code, 0, res.stderr);
    const report = parseReport(res.stdout);
    assert.equal(report.command, "check");
    assert.equal(report.schedulerVersion, PACKAGE_VERSION, "the package's version");
    assert.equal(report.exitCode, 0);
    assert.deepEqual(
      report.steps.map((s: { step: string; ok: boolean }) => [s.step, s.ok]),
      [
        ["login", true],
        ["ml_server", true],
        ["patient_list", true],
      ],
    );
  }
});

test("check exits 3, 4 or 5 as a sweep would, and stops at the failed step", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const config = await run(["check", "--json"], { env: { ...env, ML_SERVER: "" } });
  assert.equal(config.code, 3, config.stderr);
  assert.equal(parseReport(config.stdout).error.code, "config");

  const auth = await run(["check", "--json"], { env: { ...env, BACKEND_PASSWORD: "wrong" } });
  assert.equal(auth.code, 4, auth.stderr);
  const failedAuth = parseReport(auth.stdout);
  assert.deepEqual(
    failedAuth.steps.map((s: { step: string }) => s.step),
    ["login"],
  );
  assert.equal(failedAuth.error.code, "auth");

  ml.fault((r) => r.path === "/health", { kind: "status", status: 503 });
  ml.fault((r) => r.path === "/predict", { kind: "status", status: 503 });
  const down = await run(["check", "--json", "--retries", "0"], { env });
  assert.equal(down.code, 5, down.stderr);
  const failedMl = parseReport(down.stdout);
  assert.deepEqual(
    failedMl.steps.map((s: { step: string; ok: boolean }) => [s.step, s.ok]),
    [
      ["login", true],
      ["ml_server", false],
    ],
  );
  assert.equal(backend.requests.filter((r) => r.path.includes("fetchAllPatients")).length, 0);
  assert.equal(backend.requests.filter(isWrite).length, 0);
});

test("check refuses every sweep option with exit 2 and one line", async () => {
  // The bin once; the other places a sweep option can stand, in-process.
  const res = await run(["check", "--dry-run"], {});
  assert.equal(res.code, 2, res.stderr);
  assert.equal(beforeFinished(res.stderr).length, 1, res.stderr);
  assert.match(res.stderr, /check takes no sweep options: remove --dry-run/);
  for (const args of [
    ["--patient", "3", "check"],
    ["check", "--deadline", "5"],
  ]) {
    assert.match(usageError(args), /check takes no sweep options/, args.join(" "));
  }
});
