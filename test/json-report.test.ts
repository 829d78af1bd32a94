/**
 * The JSON report written in pieces (a 100,000-patient report is 10 MB, which as one string and
 * its UTF-8 copy was a heap-capped run's peak): the pieces add up to the one document.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildReport, type PatientResult } from "../src/core/report.ts";
import { formatJson, jsonPieces } from "../src/output/report.ts";
import { safeJson } from "../src/output/safe-text.ts";

test("the JSON report's pieces add up to the one document, whatever the number of patients", () => {
  const result = (pid: number): PatientResult => ({
    pid,
    outcome: pid % 3 === 0 ? "failed" : "updated",
    from: 10,
    to: 9,
    stage: pid % 3 === 0 ? "vitals" : null,
    reason: pid % 3 === 0 ? "http_500" : null,
    detail: pid % 3 === 0 ? 'GET /x: HTTP 500 "quoted" \u2028' : null,
  });
  for (const count of [0, 1, 2, 5_000]) {
    const report = buildReport({
      runId: "r",
      startedAt: new Date(0),
      finishedAt: new Date(1000),
      dryRun: false,
      concurrency: 4,
      exitCode: 0,
      error: null,
      patients: Array.from({ length: count }, (_, i) => result(i + 1)),
    });
    const pieces = [...jsonPieces(report)];
    // JSON.stringify's text, with U+2028 escaped (safe-text.ts): the same document once parsed.
    assert.equal(pieces.join(""), `${safeJson(report)}\n`, `${count} patients`);
    assert.equal(formatJson(report), `${safeJson(report)}\n`);
    assert.deepEqual(JSON.parse(formatJson(report)), JSON.parse(JSON.stringify(report)));
    if (count === 5_000) assert.ok(pieces.length > 3, "written in several pieces");
    for (const piece of pieces.slice(0, -1)) assert.ok(piece.length < 70 * 1024);
  }
});
