/**
 * Which patients a sweep handles: each record of the list is validated on its own, so one bad
 * record fails alone; `--patient` narrows the list, and a pid it names that is absent is reported.
 * A list that is mostly invalid is not a few bad records but a contract break, judged first.
 */
import { LIMITS } from "../defaults.ts";
import { UpstreamError } from "../errors.ts";
import type { Unread } from "../services/json-array.ts";
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

/**
 * A record of the list as selection keeps it: the patient (`{pid, status}`, see `compact`), or for
 * a record that cannot be handled its pid if it has a usable one, its index and the failing
 * fields. Nothing of the received record itself (its names) is kept.
 */
type Checked = Patient | Invalid;

interface Invalid {
  pid: number | undefined;
  index: number;
  issues: string;
}

/** The patient list, validated one record at a time as it is parsed; then selected from. */
export interface ListCheck {
  /**
   * Validates the next record and keeps only what `select` needs of it. Throws UpstreamError at
   * the record that makes the invalid ones more than LIMITS.invalidRecords: the list is then
   * wrong whatever follows, and is read no further.
   */
  add(record: unknown): void;
  /**
   * The next record was too large or too deep to parse (see LIMITS.recordChars): an invalid
   * record, with the pid its first characters show when it starts with one. Throws like `add`.
   */
  skip(record: Unread): void;
  /** Forgets every record: the list is read again from its start. */
  restart(): void;
  /**
   * Splits the list into patients to handle and per-record failures. Throws UpstreamError (before
   * any result is built) when more than LIMITS.invalidRecords records, or more than half, are
   * invalid, whatever `wanted` or `shard` selects: then the list itself is wrong, in every shard.
   * With a shard, only its pids count (a wanted pid of another shard is that shard's to report),
   * and records without a usable pid belong to shard 0, so that exactly one shard reports them.
   */
  select(wanted?: number[], shard?: Shard): Selection;
}

/** A list check to feed record by record (see BackendClient.fetchAllPatients). */
export function createListCheck(): ListCheck {
  /** One status object per status id, shared by its patients (see `compact`). */
  const statuses = new Map<number, Patient["status"]>();
  let checked: Checked[] = [];
  let count = 0;
  let invalid = 0;
  let first = "";
  const verdict = (what: string) =>
    new UpstreamError(
      `The patient list breaks the contract: ${what} records are invalid (${first}); check that PATIENT_SERVER is the patient backend.`,
    );
  const reject = (pid: number | undefined, index: number, issues: string) => {
    invalid++;
    // Past the limit the verdict is certain: reading on would cost time and memory for nothing
    // (8 million invalid records fit the list's cap).
    if (invalid > LIMITS.invalidRecords) {
      throw verdict(`more than ${LIMITS.invalidRecords} of its first ${count}`);
    }
    first ||= `the first, record ${index}: ${issues}`;
    checked.push({ pid, index, issues });
  };
  return {
    restart() {
      checked = [];
      count = 0;
      invalid = 0;
      first = "";
    },
    add(record) {
      const index = count++;
      const parsed = Patient.safeParse(record);
      if (parsed.success) {
        checked.push(compact(parsed.data, statuses));
        return;
      }
      reject(PatientPid.safeParse(record).data?.pid, index, describeIssues(parsed.error));
    },
    skip({ why, head }) {
      const index = count++;
      const broke =
        why === "size"
          ? `over ${LIMITS.recordChars} characters`
          : `nested deeper than ${LIMITS.recordDepth} levels`;
      reject(leadingPid(head), index, `${broke}: not read`);
    },
    select(wanted, shard) {
      if (invalid * 2 > count) throw verdict(`${invalid} of its ${count}`);
      return selectChecked(checked, wanted, shard);
    },
  };
}

/**
 * The pid of a record whose text starts `{"pid": <digits>` (the backend's field order), else
 * undefined: an unread record is named by its pid only when that costs no parse.
 */
function leadingPid(head: string): number | undefined {
  const digits = /^\s*\{\s*"pid"\s*:\s*(\d{1,16})\s*[,}]/.exec(head)?.[1];
  return PatientPid.safeParse({ pid: Number(digits) }).data?.pid;
}

/**
 * A patient as the sweep keeps it until its turn: a literal `{pid, status}` whose status object is
 * shared by every patient with that id. zod's objects carry room for four properties, the status
 * object a fifth of the rest: a heap snapshot of a 100,000-patient sweep found these 11 MB of its
 * 45 MB live (4 MB now), and every collection of the old generation walks them.
 */
function compact(patient: Patient, statuses: Map<number, Patient["status"]>): Patient {
  const { id } = patient.status;
  let status = statuses.get(id);
  if (status === undefined) {
    status = Object.freeze({ id });
    statuses.set(id, status);
  }
  return { pid: patient.pid, status };
}

/** `createListCheck` over a list already in memory. */
export function selectPatients(list: unknown[], wanted?: number[], shard?: Shard): Selection {
  const check = createListCheck();
  for (const record of list) check.add(record);
  return check.select(wanted, shard);
}

function selectChecked(checked: Checked[], wanted?: number[], shard?: Shard): Selection {
  const want = wanted === undefined ? undefined : new Set(wanted);
  const byPid = new Map<number, Patient | PatientResult>();
  const rejected: PatientResult[] = [];

  for (const entry of checked) {
    const { pid } = entry;
    if (want !== undefined && (pid === undefined || !want.has(pid))) continue;
    if (shard !== undefined && !inShard(pid, shard)) continue;
    const invalid = "issues" in entry ? entry : undefined;
    if (pid === undefined) {
      // Only an invalid record lacks a pid.
      const where = `record ${invalid?.index}: ${invalid?.issues}`;
      rejected.push(failed(null, "invalid_record", where));
    } else if (byPid.has(pid)) {
      // Two records for one pid: which status is current is unknowable, so neither is handled.
      byPid.set(pid, failed(pid, "duplicate_record", "the patient list holds this pid twice"));
    } else {
      byPid.set(pid, invalid ? failed(pid, "invalid_record", invalid.issues) : (entry as Patient));
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

function failed(pid: number | null, reason: Reason, detail: string): PatientResult {
  return { pid, outcome: "failed", from: null, to: null, stage: "select", reason, detail };
}
