/**
 * The real bin under signals, deadlines, locks and the breaker. Tests synchronise on the stand-ins
 * (held requests) and on what the bin says on stderr, never on sleeps.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { parseReport, run, waitForStderr } from "./helpers/exec.ts";
import { asPid1, canUnshare, childOf } from "./helpers/namespace.ts";
import { startServices } from "./helpers/services.ts";
import { makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const vitalsOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);
const isPredict = (r: RecordedRequest) => r.path === "/predict" && r.body !== "[]";
const isPut = (r: RecordedRequest) => r.method === "PUT";

test("SIGTERM: no new patient starts, the in-flight one finishes its write, exit 143", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(vitalsOf(3));
  const res = await run(["--json", "--concurrency", "1", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      child.kill("SIGTERM");
      await waitForStderr(child, /SIGTERM: no new patient starts/);
      hold.release();
    },
  });
  assert.equal(res.code, 143, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.exitCode, 143);
  assert.equal(report.error.code, "sigterm");
  assert.deepEqual(
    report.patients.map((p: { pid: number; outcome: string }) => [p.pid, p.outcome]),
    [
      [2, "not_started"],
      [3, "updated"],
    ],
  );
  assert.deepEqual(backend.writes, [{ pid: 3, status: 9 }]);
});

test("SIGINT: when the grace ends in-flight requests are aborted and no write starts, exit 130", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const hold = ml.hold(isPredict);
  const res = await run(["--json", "--concurrency", "2", "--grace", "0.3", "--patient", "2,3,5"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor(2);
      child.kill("SIGINT");
    },
  });
  hold.release();
  assert.equal(res.code, 130, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.counts.interrupted, 2);
  assert.equal(report.counts.not_started, 1);
  for (const p of report.patients.filter((p: { outcome: string }) => p.outcome === "interrupted")) {
    assert.equal(p.stage, "predict");
  }
  assert.equal(backend.requests.filter(isPut).length, 0);
});

test("a second signal ends the grace at once", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const hold = ml.hold(isPredict);
  const res = await run(["--json", "--concurrency", "1", "--grace", "600", "--patient", "2"], {
    env,
    timeoutMs: 20_000,
    onSpawn: async (child) => {
      await hold.waitFor();
      child.kill("SIGTERM");
      await waitForStderr(child, /SIGTERM: no new patient starts/);
      child.kill("SIGTERM");
    },
  });
  hold.release();
  assert.equal(res.code, 143, res.stderr);
  assert.equal(parseReport(res.stdout).counts.interrupted, 1);
  assert.equal(backend.requests.filter(isPut).length, 0);
});

test("as PID 1 in a container, SIGTERM is still handled", {
  skip: canUnshare ? false : "unshare --pid is not permitted on this machine",
}, async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(vitalsOf(3));
  const bin = new URL("../bin/ml-scheduler.js", import.meta.url).pathname;
  const child = spawn(
    "unshare",
    asPid1(bin, ["--json", "--concurrency", "1", "--patient", "3,2"]),
    { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  await hold.waitFor();
  const pid1 = childOf(child.pid as number);
  assert.ok(pid1, "found the namespaced process");
  process.kill(pid1, "SIGTERM");
  await waitForStderr(child, /SIGTERM: no new patient starts/);
  hold.release();
  const code = await exited;
  clearTimeout(killer);
  assert.equal(code, 143);
  assert.equal(parseReport(stdout).counts.not_started, 1);
  assert.deepEqual(backend.writes, [{ pid: 3, status: 9 }]);
});

test("--deadline: past it no new patient starts, in-flight ones finish, exit 8", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(vitalsOf(3));
  // 2 s: long enough for the login and the list on a loaded machine, so that the deadline passes
  // while patient 3 is held (a deadline during the login is another test's case).
  const res = await run(["--json", "--concurrency", "1", "--deadline", "2", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      await waitForStderr(child, /Deadline of 2s reached/);
      hold.release();
    },
  });
  assert.equal(res.code, 8, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.counts.updated, 1);
  assert.equal(report.counts.not_started, 1);
  assert.deepEqual(backend.writes, [{ pid: 3, status: 9 }]);
});

test("the breaker through the bin: a service down mid-sweep stops the sweep with exit 6", async (t) => {
  const { backend, env } = await startServices(t, { backend: { patients: makePatients(20) } });
  backend.fault((r) => r.path === "/api/patient/fetchVitals", { kind: "reset" });
  const res = await run(["--json", "--breaker", "3", "--retries", "0", "--concurrency", "1"], {
    env,
  });
  assert.equal(res.code, 6, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.counts.failed, 3);
  assert.equal(report.counts.not_started, 17);
  assert.equal(
    report.patients.find((p: { outcome: string }) => p.outcome === "failed").reason,
    "unreachable",
  );
  assert.equal(report.error.code, "aborted");
  assert.equal(
    res.stderr.match(/\[warn\] 3 patients in a row failed because the backend is unavailable/g)
      ?.length,
    1,
  );
  assert.equal(backend.writes.length, 0);
});

test("a write cut off by the end of the grace is reported interrupted at update", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold(isPut);
  const res = await run(["--json", "--concurrency", "1", "--grace", "0.2", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      child.kill("SIGTERM");
    },
  });
  hold.release();
  assert.equal(res.code, 143, res.stderr);
  const report = parseReport(res.stdout);
  const three = report.patients.find((p: { pid: number }) => p.pid === 3);
  assert.deepEqual(
    [three.outcome, three.stage, three.reason, three.to],
    ["interrupted", "update", "aborted", 9],
  );
  assert.equal(report.patients.find((p: { pid: number }) => p.pid === 2).outcome, "not_started");
});
