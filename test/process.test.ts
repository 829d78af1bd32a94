/**
 * The process around a sweep: a bug anywhere is exit 70, a report that cannot be written is 74, a
 * stderr whose reader is gone never stops the sweep, SIGHUP is 129, and the process always ends.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { BIN, parseReport, run, waitForStderr } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";
import { tempDir } from "./helpers/temp.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const BUG = fileURLToPath(new URL("./fixtures/bug.mjs", import.meta.url));
const isVitals = (r: RecordedRequest) => r.path === "/api/patient/fetchVitals";

for (const mode of ["throw", "uncaught", "rejection"] as const) {
  test(`a bug mid-sweep (${mode}) is exit 70: one line, the JSON document, the lock released`, async (t) => {
    const { backend, env } = await startServices(t);
    const lock = join(tempDir(t, "bug"), "sweep.lock");
    const res = await run(["--json", "--concurrency", "1", "--lock", lock], {
      env: { ...env, BUG_AFTER_PARSES: "7", BUG_MODE: mode },
      nodeArgs: ["--import", BUG],
    });
    assert.equal(res.code, 70, res.stderr);
    const report = parseReport(res.stdout);
    assert.equal(report.exitCode, 70);
    assert.equal(report.error.code, "internal");
    assert.match(res.stderr, /Internal error \(a bug, please report it\): \w+Error: injected/);
    assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack without --verbose");
    assert.equal(res.stderr.match(/Internal error/g)?.length, 1);
    assert.ok(!existsSync(lock), "the lock was released");
    assert.ok(backend.requests.filter(isVitals).length >= 1, "the bug came mid-sweep");
  });
}

test("with --verbose a bug's stack is shown", async (t) => {
  const { env } = await startServices(t);
  const res = await run(["--verbose"], {
    env: { ...env, BUG_AFTER_PARSES: "7", BUG_MODE: "throw" },
    nodeArgs: ["--import", BUG],
  });
  assert.equal(res.code, 70, res.stderr);
  assert.match(res.stderr, /\n\s+at /);
});

test("a report that cannot be written (/dev/full) is exit 74 after the sweep ran", async (t) => {
  const { backend, env } = await startServices(t);
  const full = openSync("/dev/full", "w");
  t.after(() => closeSync(full));
  const res = await run(["--json"], { env, stdout: full });
  assert.equal(res.code, 74, res.stderr);
  assert.match(res.stderr, /report could not be written/);
  assert.equal(backend.writes.length, 4, "the sweep itself ran");
});

/** Spawns the bin with piped stdio; `close` says which of its pipes the test closes at once. */
function spawnBin(env: Record<string, string>, args: string[], close: "stdout" | "stderr") {
  const child = spawn(process.execPath, ["--", BIN, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child[close].destroy();
  let out = "";
  const other = close === "stdout" ? child.stderr : child.stdout;
  other.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, out });
    });
  });
}

test("stdout closed by its reader (EPIPE, as `| head` does) is exit 74", async (t) => {
  const { backend, env } = await startServices(t);
  const { code, out } = await spawnBin(env, ["--json"], "stdout");
  assert.equal(code, 74, out);
  assert.equal(backend.writes.length, 4);
});

test("a stderr nobody reads never stops the sweep: the report and exit code stand", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => isVitals(r) && r.query.get("key") === "2", { kind: "status", status: 500 });
  const { code, out } = await spawnBin(env, ["--json", "--verbose", "--retries", "0"], "stderr");
  assert.equal(code, 1);
  const report = parseReport(out);
  assert.equal(report.counts.failed, 1);
  assert.equal(report.counts.updated, 3);
});

test("SIGHUP is handled like SIGTERM: the grace, then exit 129", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold((r) => isVitals(r) && r.query.get("key") === "3");
  const res = await run(["--json", "--concurrency", "1", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      child.kill("SIGHUP");
      await waitForStderr(child, /SIGHUP: no new patient starts/);
      hold.release();
    },
  });
  assert.equal(res.code, 129, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "sighup");
  assert.equal(report.counts.not_started, 1);
  assert.deepEqual(backend.writes, [{ pid: 3, status: 9 }]);
});

/** A server that answers every request with 101 Switching Protocols and keeps the socket open. */
async function startSwitcher(t: TestContext): Promise<string> {
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () =>
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      ),
    );
  });
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (s) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("a service that switches protocols and keeps the socket open cannot keep the process alive", async (t) => {
  const url = await startSwitcher(t);
  const res = await run(["--json", "--request-timeout", "500", "--retries", "0"], {
    env: {
      PATIENT_SERVER: url,
      ML_SERVER: url,
      BACKEND_USERNAME: "demo",
      BACKEND_PASSWORD: "demo-password",
    },
    timeoutMs: 15_000,
  });
  assert.equal(res.signal, null, "the test had to kill it: the process did not end");
  assert.equal(res.code, 5, res.stderr);
  assert.equal(parseReport(res.stdout).error.code, "upstream");
});

test("--deadline is a hard bound through the bin: a stalled login, a long Retry-After, the process ends", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault((r) => r.path === "/api/login/", { kind: "stall" });
  const stalled = await run(["--json", "--deadline", "0.5", "--grace", "0.2"], {
    env,
    timeoutMs: 10_000,
  });
  assert.equal(stalled.signal, null, "the test had to kill it");
  assert.equal(stalled.code, 8, stalled.stderr);

  const waiting = await startServices(t);
  waiting.backend.fault(isVitals, {
    kind: "status",
    status: 503,
    headers: { "retry-after": "25" },
  });
  // 3 s: the patient starts before the deadline even on a loaded machine, then waits on 25 s.
  const res = await run(["--json", "--deadline", "3", "--grace", "0.2", "--patient", "2"], {
    env: waiting.env,
    timeoutMs: 12_000,
  });
  assert.equal(res.signal, null, "the test had to kill it: a retry's wait outlived the deadline");
  assert.equal(res.code, 8, res.stderr);
  const report = parseReport(res.stdout);
  assert.equal(report.patients[0].outcome, "interrupted");
});

test("under a heap cap without a young-generation bound, the bin re-executes itself once with one", async (t) => {
  const { backend, env } = await startServices(t);
  const probe = fileURLToPath(new URL("./fixtures/heap-probe.mjs", import.meta.url));
  const capped = await run(["--json"], {
    env: { ...env, NODE_OPTIONS: `--max-old-space-size=128 --import=${probe}` },
  });
  assert.equal(capped.code, 0, capped.stderr);
  const starts = capped.stderr.match(/^heap-probe .*$/gm) ?? [];
  assert.equal(starts.length, 2, capped.stderr);
  const [first, second] = starts.map((line) => /pid=(\d+) semi=(\w+)/.exec(line)?.slice(1));
  assert.deepEqual(first?.[1], "false");
  assert.deepEqual(second?.[1], "true");
  assert.equal(first?.[0], second?.[0], "in place: the same pid");
  assert.doesNotMatch(capped.stderr, /Warning/);
  assert.equal(parseReport(capped.stdout).counts.updated, 4);
  assert.equal(backend.logins, 1, "the sweep ran once");

  const bounded = await run(["--version"], {
    env: { NODE_OPTIONS: `--max-old-space-size=128 --max-semi-space-size=4 --import=${probe}` },
  });
  assert.equal(bounded.stderr.match(/^heap-probe/gm)?.length, 1, "a bound given is kept as is");
});

test("a bug mid-sweep still reaches the metrics file: exit_code 70, last success not moved", async (t) => {
  const { env } = await startServices(t);
  const metrics = join(tempDir(t, "bug-metrics"), "ml.prom");
  const res = await run(["--metrics-file", metrics], {
    env: { ...env, BUG_AFTER_PARSES: "7", BUG_MODE: "uncaught" },
    nodeArgs: ["--import", BUG],
  });
  assert.equal(res.code, 70, res.stderr);
  const text = readFileSync(metrics, "utf8");
  assert.match(text, /^ml_scheduler_exit_code 70$/m);
  assert.match(text, /^ml_scheduler_last_success_timestamp_seconds 0$/m);
});
