/**
 * Which patients a sweep handles: each record of the list is validated on its own, so one bad
 * record fails alone; `--patient` narrows the list, and a pid it names that is absent is reported.
 * A list that is mostly invalid is not a few bad records but a contract break, judged first.
 */
import { LIMITS } from "../defaults.ts";
import { UpstreamError } from "../errors.ts";
import { describeIssues, Patient, PatientPid } from "../services/schemas.ts";
import type { PatientResult, Reason } from "./report.ts";

/** This run's part of the list: the patients whose `pid mod count` is `index`. */
export interface Shard {
  index: number;
  count: number;
}

export interface Selection {
  selected: Patient[];
  /** Records that cannot be handled, and requested pids the backend does not have. */
  rejected: PatientResult[];
}

type Checked = ReturnType<typeof Patient.safeParse>;

/**
 * Splits the list into patients to handle and per-record failures. Throws UpstreamError (before
 * any result is built) when more than LIMITS.invalidRecords records, or more than half, are
 * invalid, whatever `wanted` or `shard` selects: then the list itself is wrong, in every shard.
 * With a shard, only its pids count (a wanted pid of another shard is that shard's to report),
 * and records without a usable pid belong to shard 0, so that exactly one shard reports them.
 */
export function selectPatients(list: unknown[], wanted?: number[], shard?: Shard): Selection {
  const checked = checkAll(list);
  const want = wanted === undefined ? undefined : new Set(wanted);
  const byPid = new Map<number, Patient | PatientResult>();
  const rejected: PatientResult[] = [];

  for (const [index, parsed] of checked.entries()) {
    const pid = parsed.success ? parsed.data.pid : PatientPid.safeParse(list[index]).data?.pid;
    if (want !== undefined && (pid === undefined || !want.has(pid))) continue;
    if (shard !== undefined && !inShard(pid, shard)) continue;
    if (pid === undefined) {
      const detail = parsed.success ? "" : describeIssues(parsed.error);
      rejected.push(failed(null, "invalid_record", `record ${index}: ${detail}`));
    } else if (byPid.has(pid)) {
      // Two records for one pid: which status is current is unknowable, so neither is handled.
      byPid.set(pid, failed(pid, "duplicate_record", "the patient list holds this pid twice"));
    } else {
      byPid.set(
        pid,
        parsed.success ? parsed.data : failed(pid, "invalid_record", describeIssues(parsed.error)),
      );
    }
  }
  for (const pid of want ?? []) {
    if (!byPid.has(pid) && (shard === undefined || inShard(pid, shard)))
      byPid.set(pid, failed(pid, "not_found", "the backend has no patient with this pid"));
  }
  const selected: Patient[] = [];
  for (const entry of byPid.values()) {
    if ("outcome" in entry) rejected.push(entry);
    else selected.push(entry);
  }
  return { selected, rejected };
}

/** Whether a pid (undefined: a record without a usable pid) falls in the shard. */
function inShard(pid: number | undefined, shard: Shard): boolean {
  return (pid === undefined ? 0 : pid % shard.count) === shard.index;
}

/** Every record parsed, or the contract-break verdict as soon as it is certain. */
function checkAll(list: unknown[]): Checked[] {
  const checked: Checked[] = [];
  let invalid = 0;
  let first = "";
  const verdict = (count: string) =>
    new UpstreamError(
      `The patient list breaks the contract: ${count} of its ${list.length} records are invalid (${first}); check that PATIENT_SERVER is the patient backend.`,
    );
  for (const [index, record] of list.entries()) {
    const parsed = Patient.safeParse(record);
    if (!parsed.success) {
      invalid++;
      first ||= `the first, record ${index}: ${describeIssues(parsed.error)}`;
      // Counting on would cost time and memory for nothing: 30 million invalid records fit 64 MiB.
      if (invalid > LIMITS.invalidRecords) throw verdict(`more than ${LIMITS.invalidRecords}`);
    }
    checked.push(parsed);
  }
  if (invalid * 2 > list.length) throw verdict(String(invalid));
  return checked;
}

function failed(pid: number | null, reason: Reason, detail: string): PatientResult {
  return { pid, outcome: "failed", from: null, to: null, stage: "select", reason, detail };
}
