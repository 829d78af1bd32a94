/**
 * The results a sweep keeps in columns until its report (src/core/results.ts): every field of
 * every outcome comes back as it went in, in order, nulls included.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { OUTCOMES, type PatientResult } from "../src/core/report.ts";
import { ResultList } from "../src/core/results.ts";

test("results kept in columns come back as they were pushed, nulls and failures included", () => {
  const pushed: PatientResult[] = [];
  for (let i = 0; i < 1_000; i++) {
    const outcome = OUTCOMES[i % OUTCOMES.length] ?? "updated";
    const bad = outcome === "failed" || outcome === "skipped";
    pushed.push({
      pid: i % 97 === 0 ? null : 2 ** 52 + i,
      outcome,
      from: i % 5 === 0 ? null : 10,
      to: outcome === "updated" ? 1 : null,
      stage: bad ? "vitals" : null,
      reason: bad ? (i % 2 === 0 ? "http_503" : "insufficient_vitals") : null,
      detail: i % 7 === 0 ? `GET /vitals/${i}: HTTP 503` : null,
    });
  }
  const list = new ResultList();
  assert.equal(list.failed, false);
  for (const result of pushed.filter(
    (r) => r.outcome !== "failed" && r.outcome !== "interrupted",
  )) {
    list.push(result);
  }
  assert.equal(list.failed, false, "no failed or interrupted patient yet");
  const all = new ResultList();
  for (const result of pushed) all.push(result);
  assert.equal(all.failed, true);
  assert.equal(all.toArray().length, 1_000);
  assert.deepEqual(all.toArray(), pushed);
});
