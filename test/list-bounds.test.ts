/**
 * One record, or one body, must not end a run that a heap cap bounds (as the Dockerfile runs it):
 * a record is bounded before it is parsed (LIMITS.recordChars, LIMITS.recordDepth), a list is read
 * no further than its 1,001st invalid record, and a body that is not an array no further than its
 * first KiB. Each hostile body is made as it is sent: the test process never holds it.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { createListCheck } from "../src/core/select.ts";
import { LIMITS } from "../src/defaults.ts";
import { UpstreamError } from "../src/errors.ts";
import { type ArrayScan, createArrayReader, type Unread } from "../src/services/json-array.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isList = (r: RecordedRequest) => r.path === "/api/patient/fetchAllPatients";
const RSS_PROBE = fileURLToPath(new URL("./fixtures/rss-probe.mjs", import.meta.url));
/** The Dockerfile's NODE_OPTIONS, and the probe that reports the peak resident memory. */
const CAPPED = `--max-old-space-size=128 --max-semi-space-size=8 --import=${RSS_PROBE}`;
const MIB = 1024 * 1024;

/** A body of `parts` in order, each `[text, times]` repeated, sent in pieces of about 64 KiB. */
function body(parts: Array<[string, number]>, made = { pieces: 0 }): () => Readable {
  return () =>
    Readable.from(
      (function* () {
        for (const [text, times] of parts) {
          const batch = Math.max(1, Math.floor(65_536 / text.length));
          for (let left = times; left > 0; left -= batch) {
            made.pieces++;
            yield text.repeat(Math.min(batch, left));
          }
        }
      })(),
    );
}

const record = (pid: number) => `{"pid":${pid},"status":{"id":9,"text":"Normal"}}`;
/** Three valid patients (pids 1-3) around one hostile record: exit 1, not a contract break. */
const amongValid = (hostile: Array<[string, number]>): Array<[string, number]> => [
  [`[${record(1)},${record(2)},`, 1],
  ...hostile,
  [`,${record(3)}]`, 1],
];

interface Case {
  what: string;
  parts: Array<[string, number]>;
  gzip?: boolean;
  code: 1 | 5;
  /** For exit 1: the hostile record's pid (null: none to be had) and its detail. */
  invalid?: [number | null, RegExp];
  /** For exit 5: the error's message. */
  error?: RegExp;
  /** Decided early: most of the body is never sent. */
  stops?: boolean;
}

/** The pieces `body(parts)` sends when it is read to its end. */
function pieceCount(parts: Array<[string, number]>): number {
  let pieces = 0;
  for (const [text, times] of parts) {
    pieces += Math.ceil(times / Math.max(1, Math.floor(65_536 / text.length)));
  }
  return pieces;
}

const cases: Case[] = [
  {
    what: "a record holding a 30-million-element array",
    parts: amongValid([
      ['{"pid":4,"status":{"id":9},"x":[0', 1],
      [",0", 30_000_000],
      ["]}", 1],
    ]),
    code: 1,
    invalid: [4, /^over 65536 characters: not read$/],
  },
  {
    what: "a record holding a 60 MiB string, gzipped on the wire",
    parts: amongValid([
      ['{"pid":5,"firstname":"', 1],
      ["x", 60 * MIB],
      ['"}', 1],
    ]),
    gzip: true,
    code: 1,
    invalid: [5, /^over 65536 characters: not read$/],
  },
  {
    what: '{"a":{"a":... ten million levels deep, closed',
    parts: amongValid([
      ['{"a":', 10_000_000],
      ["1", 1],
      ["}", 10_000_000],
    ]),
    code: 1,
    invalid: [null, /^record 2: nested deeper than 32 levels: not read$/],
  },
  {
    what: "[[[[... ten million levels deep, never closed",
    parts: [["[", 10_000_000]],
    code: 5,
    error: /: HTTP 200 body is not JSON/,
  },
  {
    what: "a body of 50 MiB that is not an array",
    parts: [
      ['{"detail":"', 1],
      ["y", 50 * MIB],
      ['"}', 1],
    ],
    code: 5,
    stops: true,
    error:
      /body is not a JSON array \(judged by its first 1024 characters; the rest was not read\)/,
  },
  {
    what: "a list of 8 million numbers",
    parts: [
      ["[0", 1],
      [",0", 8_000_000 - 1],
      ["]", 1],
    ],
    code: 5,
    stops: true,
    error: /more than 1000 of its first 1001 records are invalid/,
  },
];

test("one hostile record or body ends a heap-capped run (the Dockerfile's flags) with its exit code and report", async (t) => {
  const { backend, env } = await startServices(t, {
    backend: {
      patients: [1, 2, 3].map((pid) => ({
        pid,
        firstname: "F",
        lastname: "L",
        age: null,
        gender: null,
        status: 9,
        vitals: [],
      })),
    },
  });
  const peaks: string[] = [];
  for (const c of cases) {
    for (const command of ["sweep", "check"]) {
      const made = { pieces: 0 };
      const make = body(c.parts, made);
      backend.fault(
        isList,
        {
          kind: "stream",
          body: c.gzip ? () => make().pipe(createGzip()) : make,
          headers: c.gzip ? { "content-encoding": "gzip" } : {},
        },
        1,
      );
      const args = command === "sweep" ? ["--json", "--dry-run"] : ["check", "--json"];
      const started = performance.now();
      const res = await run(args, { env: { ...env, NODE_OPTIONS: CAPPED }, timeoutMs: 120_000 });
      const ms = Math.round(performance.now() - started);
      const where = `${c.what} (${command}): ${res.signal ?? res.code} ${res.stderr.slice(-800)}`;
      const rss = Number(/^rss-probe maxrss-kib=(\d+)$/m.exec(res.stderr)?.[1]);
      peaks.push(`${command} ${c.what}: ${Math.round(rss / 1024)} MiB, ${ms} ms`);
      // The pod's limit in kubernetes.example.yaml is 256 MiB.
      assert.ok(rss > 0 && rss < 256 * 1024, `${where}: peak RSS ${rss} KiB`);
      const report = parseReport(res.stdout);
      if (command === "check") {
        // check judges the list like a sweep; one invalid record among valid ones is no failure.
        assert.equal(res.code, c.code === 5 ? 5 : 0, where);
        const list = report.steps.find((s: { step: string }) => s.step === "patient_list");
        if (c.code === 5) assert.match(list.detail, c.error as RegExp, where);
        else assert.equal(list.detail, "3 patients, 1 records that cannot be handled", where);
        continue;
      }
      assert.equal(res.code, c.code, where);
      assert.equal(report.exitCode, c.code, where);
      if (c.stops) {
        const all = pieceCount(c.parts);
        assert.ok(made.pieces < all / 2, `${where}: ${made.pieces} of ${all} pieces were made`);
      }
      if (c.code === 5) {
        assert.equal(report.error.code, "upstream", where);
        assert.match(report.error.message, c.error as RegExp, where);
        assert.equal(report.patients.length, 0, where);
      } else {
        const [pid, detail] = c.invalid as [number | null, RegExp];
        const failed = report.patients.filter((p: { outcome: string }) => p.outcome === "failed");
        assert.equal(failed.length, 1, where);
        assert.equal(failed[0].pid, pid, where);
        assert.equal(failed[0].reason, "invalid_record", where);
        assert.match(failed[0].detail, detail, where);
        assert.equal(report.counts.selected, 4, where);
      }
    }
  }
  t.diagnostic(peaks.join("; "));
});

/** Reads `text` cut into pieces of `size` with small bounds: what came out, in order. */
function readCut(text: string, size: number) {
  const out: Array<unknown | Unread> = [];
  const reader = createArrayReader(
    (e) => out.push(e),
    (u) => out.push(u),
    { maxChars: 40, maxDepth: 3 },
  );
  let scan: ArrayScan | undefined;
  for (let at = 0; at < text.length && scan === undefined; at += size) {
    scan = reader.write(text.slice(at, at + size));
  }
  return { out, scan: scan ?? reader.end() };
}

test("the array reader parses an element within its bounds and hands over one past them unread, however the text is cut", () => {
  const fits = `{"pid":1,"x":"${"a".repeat(40 - 16)}"}`;
  assert.equal(fits.length, 40);
  const long = `{"pid":2,"x":"${"a".repeat(500)}\\"]}"}`;
  const deep = "[[[1]]]";
  const deeper = '{"a":{"a":{"a":{"a":1}}}}';
  const text = `[${fits}, ${long},${deep},${deeper}, "end"]`;
  for (const size of [1, 2, 3, 7, 40, 41, text.length]) {
    const { out, scan } = readCut(text, size);
    assert.equal(scan, "read", `pieces of ${size}`);
    const [first, tooLong, third, tooDeep, last, ...rest] = out as [
      unknown,
      Unread,
      unknown,
      Unread,
      unknown,
    ];
    assert.deepEqual([first, third, last, rest], [JSON.parse(fits), [[[1]]], "end", []]);
    // The head is the element's start, at most 64 characters, and at least what was read of it
    // when it broke its bound: with a leading pid, the pid.
    for (const [unread, why, whole, least] of [
      [tooLong, "size", ` ${long}`, 41],
      [tooDeep, "depth", deeper, 16],
    ] as const) {
      assert.equal(unread.why, why, `pieces of ${size}`);
      assert.ok(whole.startsWith(unread.head), `pieces of ${size}: ${unread.head}`);
      assert.ok(unread.head.length >= least && unread.head.length <= 64, `pieces of ${size}`);
    }
  }
  // An unread element is not judged, but what follows it is: a fault after it is still found.
  assert.equal(readCut(`[${long}, x]`, 5).scan, "malformed");
  assert.equal(readCut(`[${long}] x`, 5).scan, "malformed");
  assert.equal(readCut(`[${"[".repeat(1_000)}`, 64).scan, "malformed");
});

test("the list check counts an unread record as invalid, named by a leading pid, and stops at the 1,001st invalid one", () => {
  const check = createListCheck();
  check.add({ pid: 1, status: { id: 9 } });
  check.skip({ why: "size", head: ' \n{ "pid" : 7, "firstname": "A' });
  check.skip({ why: "depth", head: '{"pid": 8' });
  check.add({ pid: 2, status: { id: 9 } });
  check.add({ pid: 3, status: { id: 9 } });
  const { selected, rejected } = check.select();
  assert.deepEqual(
    selected.map((p) => p.pid),
    [1, 2, 3],
  );
  assert.deepEqual(
    rejected.map((r) => [r.pid, r.reason, r.detail]),
    [
      // A pid cut off where the head ends is no pid.
      [
        null,
        "invalid_record",
        `record 2: nested deeper than ${LIMITS.recordDepth} levels: not read`,
      ],
      [7, "invalid_record", `over ${LIMITS.recordChars} characters: not read`],
    ],
  );

  const stops = createListCheck();
  for (let i = 0; i < LIMITS.invalidRecords; i++) {
    if (i % 2 === 0) stops.add(null);
    else stops.skip({ why: "size", head: "[" });
  }
  assert.throws(
    () => stops.skip({ why: "depth", head: "[" }),
    (error) =>
      error instanceof UpstreamError &&
      /more than 1000 of its first 1001 records are invalid/.test(error.message),
  );
});
