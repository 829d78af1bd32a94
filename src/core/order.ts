/**
 * The order patients start in, and where the next run starts (`--state-dir` keeps the offset), so
 * that runs cut short take turns at the list.
 */
import type { Patient } from "../services/schemas.ts";
import type { Report } from "./report.ts";

/**
 * Where the next run starts so that runs cut short take turns at the list: after the patients this
 * one started (they form a prefix of its rotated list, as no patient starts after a stop). Over
 * runs that each start at least one patient of an unchanged list of n, every patient starts
 * within n runs, within ceil(n/k) when each starts k. Undefined when the run never reached the
 * list, or found it empty: the next run keeps the same offset.
 */
export function nextOffset(report: Report): number | undefined {
  // Records rejected at selection (stage "select") were never in the rotated list.
  let listed = 0;
  let started = 0;
  for (const p of report.patients) {
    if (p.stage === "select") continue;
    listed++;
    if (p.outcome !== "not_started") started++;
  }
  return listed === 0 ? undefined : (report.offset + started) % listed;
}

function byPid(a: Patient, b: Patient): number {
  return a.pid - b.pid;
}

/**
 * The patients in the order they start (in pid order from `offset` when one is given), last
 * first, so that a window leaves the queue with a cheap splice from its end. Takes them out of
 * `listed`: the queue is then the only list that holds them.
 */
export function queueOf(listed: Patient[], offset: number | undefined): Patient[] {
  const sorted = offset === undefined ? listed : listed.toSorted(byPid);
  const queue = [...sorted.slice(offset ?? 0), ...sorted.slice(0, offset ?? 0)].reverse();
  listed.length = 0;
  return queue;
}
