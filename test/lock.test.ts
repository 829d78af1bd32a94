/**
 * `--lock`: a lock is alive only while its holder refreshes it. Tests make a lock stale by setting
 * its mtime into the past, never by waiting, and synchronise on held requests and on stderr.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { acquireLock } from "../src/host/lock.ts";
import { BIN, beforeFinished, parseReport, run, waitForStderr } from "./helpers/exec.ts";
import { asPid1, canUnshare, childOf } from "./helpers/namespace.ts";
import { startServices } from "./helpers/services.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const vitalsOf = (pid: number) => (r: RecordedRequest) =>
  r.path === "/api/patient/fetchVitals" && r.query.get("key") === String(pid);

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "ml-scheduler-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Makes the file look last refreshed `seconds` ago. */
function age(file: string, seconds: number): void {
  const then = (Date.now() - seconds * 1000) / 1000;
  utimesSync(file, then, then);
}

/** A pid that no process on this host has any longer. */
function deadPid(): number {
  return spawnSync(process.execPath, ["-e", "0"]).pid as number;
}

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const host = literal(hostname());

/** Polls `ready` every 100 ms, at most `timeoutMs`. */
async function until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
  for (let waited = 0; !ready(); waited += 100) {
    if (waited >= timeoutMs) throw new Error(`${what}: not seen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

test("a live run's fresh lock is exit 7 with no request; a dead run's is taken over at once", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");

  writeFileSync(lock, `${process.pid}\n${hostname()}\n`);
  const held = await run(["--lock", lock, "--json"], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.match(
    held.stderr,
    new RegExp(
      `pid ${process.pid} on host ${host}, last refreshed \\d+s ago.*this run did nothing`,
    ),
  );
  assert.equal(beforeFinished(held.stderr).length, 1, held.stderr);
  assert.equal(parseReport(held.stdout).error.code, "locked");
  assert.equal(backend.requests.length + ml.requests.length, 0);

  writeFileSync(lock, `${deadPid()}\n${hostname()}\n`);
  const taken = await run(["--lock", lock], { env });
  assert.equal(taken.code, 0, taken.stderr);
  assert.equal(backend.writes.length, 4);
  assert.ok(!existsSync(lock), "the lock is released when the run ends");
});

test("another host's lock: exit 7 with its pid, host and age while fresh; taken over once 30 s unrefreshed", async (t) => {
  const { backend, ml, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");
  writeFileSync(lock, "4242\nother-host.example\nsome-nonce\n");
  age(lock, 12);

  const held = await run(["--lock", lock, "--json"], { env });
  assert.equal(held.code, 7, held.stderr);
  const seen = held.stderr.match(
    /pid 4242 on host other-host\.example, last refreshed (\d+)s ago.*this run did nothing/,
  );
  assert.ok(seen, held.stderr);
  const seconds = Number(seen[1]);
  assert.ok(seconds >= 12 && seconds < 30, `age ${seconds}s`);
  assert.equal(backend.requests.length + ml.requests.length, 0);

  age(lock, 60);
  const taken = await run(["--lock", lock, "--json"], { env });
  assert.equal(taken.code, 0, taken.stderr);
  assert.equal(backend.writes.length, 4);
  assert.ok(!existsSync(lock));
});

test("an empty lock is exit 7 while fresh and taken over once older than 30 s", async (t) => {
  const { backend, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");
  writeFileSync(lock, "");

  const held = await run(["--lock", lock], { env });
  assert.equal(held.code, 7, held.stderr);
  assert.match(held.stderr, /names no holder \(empty or unreadable.*this run did nothing/);

  age(lock, 60);
  const taken = await run(["--lock", lock], { env });
  assert.equal(taken.code, 0, taken.stderr);
  assert.equal(backend.writes.length, 4);
  assert.ok(!existsSync(lock));
});

test("a lock left by PID 1 killed mid-sweep: exit 7 while fresh, taken over once stale", {
  skip: canUnshare ? false : "unshare --pid is not permitted on this machine",
}, async (t) => {
  const { backend, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");
  const hold = backend.hold(vitalsOf(3));
  const child = spawn("unshare", asPid1(BIN, ["--lock", lock, "--patient", "3"]), {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: "ignore",
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  let pid1: number | undefined;
  t.after(() => {
    try {
      if (pid1 !== undefined) process.kill(pid1, "SIGKILL");
    } catch {
      // Already gone, as it should be.
    }
  });
  await hold.waitFor();
  pid1 = childOf(child.pid as number);
  assert.ok(pid1, "found the namespaced process");
  assert.match(readFileSync(lock, "utf8"), /^1\n/, "the lock names PID 1");
  process.kill(pid1, "SIGKILL");
  await exited;
  hold.release();
  assert.ok(existsSync(lock), "a killed run leaves its lock");

  const fresh = await run(["--lock", lock], { env });
  assert.equal(fresh.code, 7, fresh.stderr);
  assert.match(fresh.stderr, new RegExp(`pid 1 on host ${host}, last refreshed \\d+s ago`));

  age(lock, 60);
  const taken = await run(["--lock", lock], { env });
  assert.equal(taken.code, 0, taken.stderr);
  assert.equal(backend.writes.length, 4);
  assert.ok(!existsSync(lock));
});

test("six runs racing for one stale lock: exactly one holds it, every round", {
  timeout: 120_000,
}, async (t) => {
  const dir = tempDir(t);
  const lock = join(dir, "sweep.lock");
  const racers = 6;
  const barrier = new SharedArrayBuffer(4);
  const workers = Array.from(
    { length: racers },
    () =>
      new Worker(new URL("./helpers/lock-racer.ts", import.meta.url), {
        workerData: { barrier, racers },
      }),
  );
  t.after(() => Promise.all(workers.map((w) => w.terminate())));
  const reply = (w: Worker) =>
    new Promise<{ won: boolean; code?: string } | "released">((resolve, reject) => {
      w.once("error", reject);
      w.once("message", (message) => {
        w.off("error", reject);
        resolve(message);
      });
    });
  const all = async (message: unknown) => {
    const replies = workers.map(reply);
    for (const w of workers) w.postMessage(message);
    return Promise.all(replies);
  };
  // A dead pid of this host is stale at once; the other two once unrefreshed for 30 s.
  const stale = [`${deadPid()}\n${hostname()}\nold\n`, "4242\nother-host\nold\n", ""];

  for (let round = 1; round <= 60; round++) {
    const kind = (round - 1) % stale.length;
    writeFileSync(lock, stale[kind] as string);
    if (kind > 0) age(lock, 60);
    const results = (await all({ round, path: lock })) as { won: boolean; code?: string }[];
    assert.equal(
      results.filter((r) => r.won).length,
      1,
      `round ${round}: ${JSON.stringify(results)}`,
    );
    for (const r of results.filter((r) => !r.won)) assert.equal(r.code, "locked");
    await all("release");
    assert.deepEqual(readdirSync(dir), [], `round ${round}: the winner released, no guard left`);
  }
});

test("a guard left by a run that died mid-takeover blocks while fresh and is passed once stale", (t) => {
  const dir = tempDir(t);
  const lock = join(dir, "sweep.lock");
  writeFileSync(lock, "4242\nother-host\nold\n");
  age(lock, 60);
  // The guard's name carries the stale lock's identity (see src/host/lock-takeover.ts).
  const { ino, mtimeNs } = statSync(lock, { bigint: true });
  const guard = `${lock}.${ino}-${mtimeNs}.0.takeover`;
  writeFileSync(guard, "");
  assert.throws(() => acquireLock(lock), {
    code: "locked",
    message: /Another run is taking over the stale lock .* right now; this run did nothing/,
  });

  age(guard, 60);
  const held = acquireLock(lock);
  assert.match(readFileSync(lock, "utf8"), new RegExp(`^${process.pid}\n${host}\n`));
  held.release();
  assert.deepEqual(readdirSync(dir), [], "the lock released and the dead run's guard removed");
});

test("the holder refreshes the lock's mtime while the sweep runs", async (t) => {
  const { backend, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");
  const hold = backend.hold(vitalsOf(3));
  const running = run(["--lock", lock, "--patient", "3"], { env });
  try {
    await hold.waitFor();
    age(lock, 60);
    await until(() => statSync(lock).mtimeMs > Date.now() - 30_000, 12_000, "a refresh");
  } finally {
    hold.release();
  }
  const res = await running;
  assert.equal(res.code, 0, res.stderr);
  assert.ok(!existsSync(lock));
});

test("a holder whose lock is taken over starts no further patient, lets the in-flight one finish, exit 7", async (t) => {
  const { backend, env } = await startServices(t);
  const lock = join(tempDir(t), "sweep.lock");
  const other = `4242\nother-host.example\nanother-nonce\n`;
  const hold = backend.hold(vitalsOf(3));
  const res = await run(["--json", "--lock", lock, "--concurrency", "1", "--patient", "3,2"], {
    env,
    onSpawn: async (child) => {
      await hold.waitFor();
      writeFileSync(lock, other);
      await waitForStderr(child, /taken over/, 12_000);
      hold.release();
    },
  });
  assert.equal(res.code, 7, res.stderr);
  assert.match(res.stderr, /The lock .* was taken over by pid 4242 on host other-host\.example/);
  assert.equal(res.stderr.match(/taken over/g)?.length, 1, "said once");
  const report = parseReport(res.stdout);
  assert.equal(report.error.code, "locked");
  assert.deepEqual(
    report.patients.map((p: { pid: number; outcome: string }) => [p.pid, p.outcome]),
    [
      [2, "not_started"],
      [3, "updated"],
    ],
  );
  assert.deepEqual(backend.writes, [{ pid: 3, status: 9 }]);
  assert.equal(readFileSync(lock, "utf8"), other, "the new holder's lock is left alone");
});

test("a lock file that cannot be written is removed before exit 3", (t) => {
  const dir = tempDir(t);
  const lock = join(dir, "sweep.lock");
  // RLIMIT_FSIZE 0: creating the file works, writing a byte fails with EFBIG, as a full disk would.
  const res = spawnSync(
    "sh",
    ["-c", 'ulimit -f 0 && exec "$0" "$@"', process.execPath, "--", BIN, "--lock", lock],
    {
      cwd: dir,
      encoding: "utf8",
      timeout: 20_000,
      env: {
        PATH: process.env.PATH ?? "",
        PATIENT_SERVER: "http://127.0.0.1:9",
        ML_SERVER: "http://127.0.0.1:9",
        BACKEND_USERNAME: "demo",
        BACKEND_PASSWORD: "unused",
      },
    },
  );
  assert.equal(res.status, 3, res.stderr);
  assert.ok(!existsSync(lock), "no lock file is left");
  assert.match(res.stderr, /cannot write the lock file \(EFBIG\), so it was removed/);
});
