/**
 * A worker thread that races for a lock: each round it waits at a barrier shared with the other
 * racers, calls acquireLock at the same moment as they do, and reports whether it won. The winner
 * holds the lock until the test says the round is over.
 */
import { parentPort, workerData } from "node:worker_threads";
import { acquireLock, type Lock } from "../../src/host/lock.ts";

const { barrier, racers } = workerData as { barrier: SharedArrayBuffer; racers: number };
const arrived = new Int32Array(barrier);
let held: Lock | undefined;

parentPort?.on("message", (message: { round: number; path: string } | "release") => {
  if (message === "release") {
    held?.release();
    held = undefined;
    parentPort?.postMessage("released");
    return;
  }
  const target = racers * message.round;
  Atomics.add(arrived, 0, 1);
  Atomics.notify(arrived, 0);
  // Bounded: a racer that never arrives fails the round instead of hanging the test.
  for (let spins = 0; spins < 100; spins++) {
    const now = Atomics.load(arrived, 0);
    if (now >= target) break;
    Atomics.wait(arrived, 0, now, 100);
  }
  try {
    held = acquireLock(message.path);
    parentPort?.postMessage({ won: true });
  } catch (error) {
    parentPort?.postMessage({ won: false, code: (error as { code?: string }).code });
  }
});
