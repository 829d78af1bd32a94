/**
 * The patients' results as a sweep keeps them until its report: columns, not objects. A
 * result object takes ~80 bytes of heap; 100,000 of them, kept for the whole sweep, were a fifth
 * of a capped heap's live data, walked by every collection of the old generation. Here a result
 * costs 25 bytes outside the heap, plus an object only for one that carries a stage, reason or
 * detail (a patient that did not end well). The objects are made again for the report.
 */
import { OUTCOMES, type Outcome, type PatientResult } from "./report.ts";

type Extra = Pick<PatientResult, "stage" | "reason" | "detail">;

const OUTCOME_INDEX = new Map<Outcome, number>(OUTCOMES.map((o, i) => [o, i]));

export class ResultList {
  #length = 0;
  /** pid, from and to; NaN for null. */
  #pids = new Float64Array(0);
  #froms = new Float64Array(0);
  #tos = new Float64Array(0);
  #outcomes = new Uint8Array(0);
  /** Stage, reason and detail of the results that have any, by index. */
  #extras = new Map<number, Extra>();
  #failed = false;

  /** Whether a patient failed or was interrupted (the run exits 1). */
  get failed(): boolean {
    return this.#failed;
  }

  push(result: PatientResult): void {
    const at = this.#length++;
    this.#grow(this.#length);
    this.#pids[at] = result.pid ?? Number.NaN;
    this.#froms[at] = result.from ?? Number.NaN;
    this.#tos[at] = result.to ?? Number.NaN;
    this.#outcomes[at] = OUTCOME_INDEX.get(result.outcome) ?? 0;
    const { stage, reason, detail } = result;
    if (stage !== null || reason !== null || detail !== null) {
      this.#extras.set(at, { stage, reason, detail });
    }
    if (result.outcome === "failed" || result.outcome === "interrupted") this.#failed = true;
  }

  /** The results as objects, in the order they were pushed. */
  toArray(): PatientResult[] {
    const list = new Array<PatientResult>(this.#length);
    for (let at = 0; at < this.#length; at++) {
      const extra = this.#extras.get(at);
      list[at] = {
        pid: orNull(this.#pids[at]),
        outcome: OUTCOMES[this.#outcomes[at] ?? 0] as Outcome,
        from: orNull(this.#froms[at]),
        to: orNull(this.#tos[at]),
        stage: extra?.stage ?? null,
        reason: extra?.reason ?? null,
        detail: extra?.detail ?? null,
      };
    }
    return list;
  }

  /** Room for `size` results, doubling. */
  #grow(size: number): void {
    if (size <= this.#outcomes.length) return;
    const capacity = Math.max(256, this.#outcomes.length * 2);
    this.#pids = widen(this.#pids, capacity);
    this.#froms = widen(this.#froms, capacity);
    this.#tos = widen(this.#tos, capacity);
    const outcomes = new Uint8Array(capacity);
    outcomes.set(this.#outcomes);
    this.#outcomes = outcomes;
  }
}

function widen(column: Float64Array, capacity: number): Float64Array<ArrayBuffer> {
  const wider = new Float64Array(capacity);
  wider.set(column);
  return wider;
}

function orNull(value: number | undefined): number | null {
  return value === undefined || Number.isNaN(value) ? null : value;
}
