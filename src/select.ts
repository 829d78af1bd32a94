/**
 * Which patients a sweep handles: each record of the list is validated on its own, so one bad
 * record fails alone; `--patient` narrows the list, and a pid it names that is absent is reported.
 */
import type { PatientResult } from "./report.ts";
import { describeIssues, Patient, PatientPid } from "./schemas.ts";

export interface Selection {
  selected: Patient[];
  /** Records that cannot be handled, and requested pids the backend does not have. */
  rejected: PatientResult[];
}

export function selectPatients(list: unknown[], wanted?: number[]): Selection {
  const want = wanted === undefined ? undefined : new Set(wanted);
  const byPid = new Map<number, Patient | PatientResult>();
  const rejected: PatientResult[] = [];

  for (const [index, record] of list.entries()) {
    const parsed = Patient.safeParse(record);
    const pid = parsed.success ? parsed.data.pid : PatientPid.safeParse(record).data?.pid;
    if (want !== undefined && (pid === undefined || !want.has(pid))) continue;
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
    if (!byPid.has(pid))
      byPid.set(pid, failed(pid, "not_found", "the backend has no patient with this pid"));
  }
  const selected: Patient[] = [];
  for (const entry of byPid.values()) {
    if ("outcome" in entry) rejected.push(entry);
    else selected.push(entry);
  }
  return { selected, rejected };
}

function failed(pid: number | null, reason: string, detail: string): PatientResult {
  return { pid, outcome: "failed", from: null, to: null, stage: "select", reason, detail };
}
