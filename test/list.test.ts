/**
 * The patient list: read one record at a time and reduced to pids and statuses as it is parsed
 * (so a heap-capped run never holds the raw records), and its size cap (--max-list-mib).
 */
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { runSweep, type SweepEvent } from "../src/index.ts";
import { streamText } from "../src/services/body-stream.ts";
import { createClient } from "../src/services/client.ts";
import { type ArrayScan, createArrayReader, eachArrayElement } from "../src/services/json-array.ts";
import { configProblems, USABLE_ENV, usageError } from "./helpers/argv.ts";
import { parseReport, run } from "./helpers/exec.ts";
import { demoPatients, startServices, sweepConfig } from "./helpers/services.ts";
import { DEMO_USER, makePatients } from "./stand-ins/seed.ts";
import type { RecordedRequest } from "./stand-ins/server.ts";

const isList = (r: RecordedRequest) => r.path === "/api/patient/fetchAllPatients";

/** `count` valid records, each padded with a long name to weigh about `bytes` in the body. */
function paddedList(count: number, bytes: number): string {
  const name = "n".repeat(Math.max(0, bytes - 60));
  const records = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ pid: i + 1, firstname: name, status: { id: 9, text: "Normal" } }),
  );
  return `[${records.join(",")}]`;
}

test("a patient list over --max-list-mib fails naming the flag (exit 5); under it, it is read", async (t) => {
  const { backend, env } = await startServices(t);
  // 1,500 records of about 1 KiB: over 1 MiB, under 2.
  const body = paddedList(1_500, 1_024);
  assert.ok(body.length > 1024 * 1024 && body.length < 2 * 1024 * 1024);
  backend.fault(isList, { kind: "body", body });

  const ways: Array<[string[], Record<string, string>]> = [
    [["--max-list-mib", "1"], env],
    [[], { ...env, MAX_LIST_MIB: "1" }],
  ];
  for (const [args, runEnv] of ways) {
    const over = await run(["--json", "--retries", "0", ...args], { env: runEnv });
    assert.equal(over.code, 5, over.stderr);
    assert.match(over.stderr, /the list is over 1 MiB; .*raise --max-list-mib \(MAX_LIST_MIB\)/);
    const report = parseReport(over.stdout);
    assert.equal(report.error.code, "upstream");
    assert.match(report.error.message, /--max-list-mib/);
    assert.ok(!report.error.message.includes("\n"), "one line");
    assert.equal(report.patients.length, 0);
  }

  const fits = await run(["check", "--json", "--max-list-mib", "2"], { env });
  assert.equal(fits.code, 0, fits.stderr);
  const list = parseReport(fits.stdout).steps.find(
    (s: { step: string }) => s.step === "patient_list",
  );
  assert.equal(list.detail, "1500 patients, 0 records that cannot be handled");
});

test("--max-list-mib and MAX_LIST_MIB refuse what is not a whole number of MiB from 1 to 500", async (t) => {
  const rule = /must be a whole number of MiB from 1 to 500/;
  for (const value of ["0", "501", "1.5", "-1", "64k", ""]) {
    assert.match(usageError(["check", "--max-list-mib", value]), rule, `--max-list-mib ${value}`);
    if (value === "") continue; // an empty variable is unset
    const lines = configProblems({ ...USABLE_ENV, MAX_LIST_MIB: value });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.match(lines[0] as string, new RegExp(`^MAX_LIST_MIB ${rule.source}`), value);
  }
  // The bin once for each: a refused flag is exit 2, a refused variable exit 3.
  const { env } = await startServices(t);
  const flag = await run(["check", "--max-list-mib", "501"], { env });
  assert.equal(flag.code, 2, flag.stderr);
  assert.match(flag.stderr, /--max-list-mib.*must be a whole number of MiB from 1 to 500/);
  const variable = await run(["check"], { env: { ...env, MAX_LIST_MIB: "501" } });
  assert.equal(variable.code, 3, variable.stderr);
  assert.match(variable.stderr, /MAX_LIST_MIB must be a whole number of MiB from 1 to 500/);
});

test("the list is reduced as it is parsed: records that would fill a 48 MB heap many times over fit it", async (t) => {
  const { backend, env } = await startServices(t);
  // 20,000 records with 100 empty objects each: about 7 MB of text, but over 100 MB of heap
  // were the whole list parsed at once, as JSON.parse would.
  const extra = Array(100).fill("{}").join(",");
  const records = Array.from(
    { length: 20_000 },
    (_, i) => `{"pid":${i + 1},"status":{"id":9,"text":"Normal"},"x":[${extra}]}`,
  );
  backend.fault(isList, { kind: "body", body: `[${records.join(",")}]` });
  const res = await run(["check", "--json"], {
    env: { ...env, NODE_OPTIONS: "--max-old-space-size=48" },
    timeoutMs: 120_000,
  });
  assert.equal(res.code, 0, `${res.signal ?? ""} ${res.stderr.slice(-500)}`);
  const list = parseReport(res.stdout).steps.find(
    (s: { step: string }) => s.step === "patient_list",
  );
  assert.equal(list.detail, "20000 patients, 0 records that cannot be handled");
});

/** JSON texts of every kind, and near misses. */
const texts = fc.oneof(
  fc.json().map((j) => `[${j}]`),
  fc.array(fc.json(), { maxLength: 6 }).map((items) => `[${items.join(",")}]`),
  fc.array(fc.json(), { maxLength: 6 }).map((items) => ` \n[ ${items.join(" ,\t")} ]\r\n`),
  fc.json(),
  fc.array(fc.json(), { maxLength: 6 }).map((items) => `[${items.join(",")}]`.slice(0, -1)),
  fc
    .tuple(
      fc.array(fc.json(), { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.constantFrom(...',]}[{"\\ x'),
    )
    .map(([items, at, c]) => {
      const text = `[${items.join(",")}]`;
      const i = at % text.length;
      return text.slice(0, i) + c + text.slice(i);
    }),
  fc.string().map((s) => `[${s}]`),
);

/** `text` cut at `cuts` (positions, in any order), in pieces that may be empty. */
function cut(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  return [...at, text.length].map((end, i) => text.slice(i === 0 ? 0 : at[i - 1], end));
}

test("the array reader accepts exactly what JSON.parse accepts as an array, element for element, however the text is cut", () => {
  fc.assert(
    fc.property(texts, fc.array(fc.nat(), { maxLength: 12 }), (text, cuts) => {
      const pieces = cut(text, cuts);
      assert.equal(pieces.join(""), text);
      const seen: unknown[] = [];
      const whole: unknown[] = [];
      const reader = createArrayReader(
        (e) => seen.push(e),
        () => assert.fail("no element is over the bounds"),
      );
      let scan: ArrayScan | undefined;
      for (const piece of pieces) scan ??= reader.write(piece);
      scan ??= reader.end();
      assert.equal(
        eachArrayElement(
          text,
          (e) => whole.push(e),
          () => assert.fail("no element is over the bounds"),
        ),
        scan,
        "whole or in pieces",
      );
      assert.deepEqual(whole, seen);
      let parsed: unknown;
      let valid = true;
      try {
        parsed = JSON.parse(text);
      } catch {
        valid = false;
      }
      if (valid && Array.isArray(parsed)) {
        assert.equal(scan, "read");
        assert.deepEqual(seen, parsed);
      } else if (scan === "not_array") {
        assert.equal(seen.length, 0);
        assert.notEqual(text.trimStart()[0], "[");
      } else {
        assert.equal(scan, "malformed");
        assert.equal(valid, false);
        assert.equal(text.trimStart()[0], "[");
      }
    }),
    { numRuns: 3_000 },
  );
});

test("the array reader finds strings' ends across pieces: escaped quotes and runs of backslashes split anywhere", () => {
  const strings = ['a\\"b', '\\"', "\\\\", 'x"', '"', "\\", 'q\\\\"r'];
  const list = JSON.stringify([...strings, { k: strings }, "end"]);
  for (let a = 0; a <= list.length; a++) {
    for (let b = a; b <= list.length; b += 3) {
      const seen: unknown[] = [];
      const reader = createArrayReader(
        (e) => seen.push(e),
        () => assert.fail("no element is over the bounds"),
      );
      const scan =
        reader.write(list.slice(0, a)) ??
        reader.write(list.slice(a, b)) ??
        reader.write(list.slice(b)) ??
        reader.end();
      assert.equal(scan, "read", `cut at ${a} and ${b}`);
      assert.deepEqual(seen, JSON.parse(list), `cut at ${a} and ${b}`);
    }
  }
});

test("the list's bytes and text are never held whole, and nothing of them outlives the list", async (t) => {
  const { backend, env } = await startServices(t);
  const bytes = 8 * 1024 * 1024;
  backend.fault(isList, { kind: "body", body: paddedList(8_000, 1_024) });
  const probe = fileURLToPath(new URL("./fixtures/list-release-probe.mjs", import.meta.url));
  const res = await run(["--json", "--dry-run", "--patient", "1"], {
    env,
    nodeArgs: ["--expose-gc", `--import=${probe}`],
  });
  assert.equal(res.code, 0, res.stderr);
  const at = (name: string) => {
    const match = new RegExp(`^list-probe ${name} heap=(\\d+) buffers=(\\d+)$`, "m").exec(
      res.stderr,
    );
    assert.ok(match, `no ${name} line in ${res.stderr}`);
    return { heap: Number(match[1]), buffers: Number(match[2]) };
  };
  const [before, received, after] = [at("list"), at("list-end"), at("patient")];
  // Every byte of the list has arrived: read as it came, its bytes and text were never held
  // whole (buffered, they are all held at this point).
  assert.ok(
    received.buffers - before.buffers < bytes / 4,
    `buffers when the list's last byte came: ${before.buffers} -> ${received.buffers}`,
  );
  assert.ok(
    received.heap - before.heap < bytes / 4,
    `heap when the list's last byte came: ${before.heap} -> ${received.heap}`,
  );
  // 8,000 records kept as pids and statuses are well under 1 MB; the list's text or its bytes
  // would each add about 8 MB.
  assert.ok(
    after.buffers - before.buffers < bytes / 4,
    `buffers: ${before.buffers} -> ${after.buffers}`,
  );
  assert.ok(after.heap - before.heap < bytes / 4, `heap: ${before.heap} -> ${after.heap}`);
});

/**
 * A proxy in front of `target` on 127.0.0.1 that forwards every request, except that the first
 * 200 answer to the patient list sends only its first `keep` bytes, then resets the connection or
 * sends nothing more (both chunked), or closes the connection short of its Content-Length.
 */
async function cutOnce(
  t: TestContext,
  target: string,
  keep: number,
  then: "reset" | "stall" | "close" = "reset",
): Promise<{ url: string; cut: Promise<void> }> {
  let cut = false;
  let onSent = () => {};
  const sent = new Promise<void>((resolve) => {
    onSent = resolve;
  });
  const server = createServer((req, res) => {
    const forward = request(
      new URL(req.url ?? "/", target),
      { method: req.method, headers: req.headers },
      (answer) => {
        const cutting = !cut && req.url === "/api/patient/fetchAllPatients";
        if (!cutting || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        cut = true;
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () => {
          const whole = Buffer.concat(chunks);
          if (then === "close") {
            // The whole body's length announced, part of it sent, then a clean close (a FIN).
            res.writeHead(200, { ...answer.headers, "content-length": String(whole.length) });
            res.write(whole.subarray(0, keep), () => {
              onSent();
              setTimeout(() => req.socket.end(), 300);
            });
            return;
          }
          // Chunked, as a streaming backend sends it: the client reads records, then the reset.
          const { "content-length": _, ...headers } = answer.headers;
          res.writeHead(200, headers);
          res.write(whole.subarray(0, keep), () => onSent());
          if (then === "reset") setTimeout(() => req.socket.resetAndDestroy(), 300);
        });
      },
    );
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, cut: sent };
}

for (const then of ["reset", "close"] as const) {
  const how = then === "reset" ? "a chunked body reset" : "a Content-Length body closed short";
  test(`a list whose body breaks off midway is read again from its start: no record counted twice (${how})`, async (t) => {
    await readAgain(t, then);
  });
}

async function readAgain(t: TestContext, then: "reset" | "close") {
  const patients = makePatients(300);
  const { backend, env } = await startServices(t, { backend: { patients } });
  const listed = await fetch(`${backend.url}/api/patient/fetchAllPatients`, {
    headers: { authorization: `Bearer ${backend.issueToken(DEMO_USER.username)}` },
  }).then((res) => res.text());
  // Half the text: about 150 whole records reach the reader before the break.
  const proxy = (await cutOnce(t, backend.url, Math.floor(listed.length / 2), then)).url;
  const events: SweepEvent[] = [];
  const report = await runSweep(
    sweepConfig({ ...env, PATIENT_SERVER: proxy }, { retries: 2, dryRun: true }),
    { onEvent: (e) => events.push(e) },
  );
  assert.equal(report.error, null);
  assert.equal(report.counts.selected, 300);
  assert.deepEqual(
    report.patients.filter((p) => p.reason === "duplicate_record").map((p) => p.pid),
    [],
  );
  const list = events.find(
    (e) => e.type === "request_done" && e.route === "GET /api/patient/fetchAllPatients",
  );
  assert.deepEqual(list && "attempts" in list && [list.status, list.attempts], [200, 2]);
  assert.equal(backend.requests.filter(isList).length, 1 + 2, "this test's own, then two");
}

test("the list's text is decoded across pieces: a character split between two reads stays whole", async (t) => {
  const text = JSON.stringify(["é", "日本語", "😀", { ключ: "значение" }, "ü".repeat(20)]);
  const bytes = Buffer.from(text);
  // One byte per write, each on its own turn: most multi-byte characters arrive split.
  const server = createServer(async (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    for (const byte of bytes) {
      res.write(Buffer.of(byte));
      await new Promise(setImmediate);
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = createClient(
    {
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requestTimeoutMs: 10_000,
      retries: 0,
      retryDelayMs: 1,
      maxRetryAfterMs: 1_000,
    },
    { service: "backend" },
  );
  const pieces: string[] = [];
  let ended = 0;
  const answer = await streamText(client, "list", {
    maxBytes: 1024,
    open: () => ({ write: (piece) => pieces.push(piece), end: () => ended++ }),
  });
  assert.equal(answer.status, 200);
  assert.equal(ended, 1);
  assert.ok(pieces.length > 1, "the body came in pieces");
  assert.equal(pieces.join(""), text);
});

test("a list that is not an array, or not JSON, fails in parseBody's words as it did whole", async (t) => {
  const { backend, env } = await startServices(t);
  const cases: Array<[string, RegExp]> = [
    ['{"detail": "Not Found"}', /GET \/api\/patient\/fetchAllPatients: body: expected array$/],
    [`  ${JSON.stringify("x".repeat(900))}`, /: body: expected array$/],
    // Longer than LIMITS.notArrayChars: judged by its start, the rest never read.
    [
      `  ${JSON.stringify("x".repeat(200_000))}`,
      /: HTTP 200 body is not a JSON array \(judged by its first 1024 characters; the rest was not read\)$/,
    ],
    ["", /: HTTP 200 body is not JSON$/],
    ["  \n ", /: HTTP 200 body is not JSON$/],
    ["<html>", /: HTTP 200 body is not JSON$/],
    [`[${'{"pid": 1, "status": {"id": 9}},'.repeat(5_000)}`, /: HTTP 200 body is not JSON$/],
    ['[{"pid": 1, "status": {"id": 9}}] x', /: HTTP 200 body is not JSON$/],
  ];
  for (const [body, words] of cases) {
    backend.fault(isList, { kind: "body", body }, 1);
    const report = await runSweep(sweepConfig(env));
    assert.equal(report.exitCode, 5, body.slice(0, 40));
    assert.match(report.error?.message ?? "", words, body.slice(0, 40));
    assert.equal(report.patients.length, 0);
  }
});

test("the streamed list keeps the failure paths: a 401 re-login, a chunked list over the cap, an abort midway", async (t) => {
  const { backend, env } = await startServices(t);
  backend.fault(isList, { kind: "status", status: 401, body: '{"detail":"Invalid token"}' }, 1);
  const relogin = await runSweep(sweepConfig(env, { dryRun: true }));
  assert.equal(relogin.error, null);
  assert.equal(backend.logins, 2, "the run's login, then one re-login");
  assert.equal(relogin.counts.selected, demoPatients().length);

  // No content-length to judge it by: the bytes are counted as they come. Valid records: a list
  // of numbers would stop at its 1,001st invalid record first.
  const records = `{"pid":1,"status":{"id":9}},`.repeat(2_000);
  backend.fault(
    isList,
    {
      kind: "stream",
      body: () => Readable.from(["[", ...Array(60).fill(records), '{"pid":1,"status":{"id":9}}]']),
    },
    1,
  );
  const over = await runSweep(sweepConfig(env, { maxListBytes: 1024 * 1024 }));
  assert.equal(over.exitCode, 5);
  assert.match(over.error?.message ?? "", /the list is over 1 MiB; .*raise --max-list-mib/);

  const listed = await fetch(`${backend.url}/api/patient/fetchAllPatients`, {
    headers: { authorization: `Bearer ${backend.issueToken(DEMO_USER.username)}` },
  }).then((res) => res.text());
  const proxy = await cutOnce(t, backend.url, Math.floor(listed.length / 2), "stall");
  const abort = new AbortController();
  t.after(() => abort.abort());
  const events: SweepEvent[] = [];
  const sweep = runSweep(
    sweepConfig({ ...env, PATIENT_SERVER: proxy.url }, { requestTimeoutMs: 60_000 }),
    {
      signal: abort.signal,
      onEvent: (e) => events.push(e),
    },
  );
  // The list's first half has gone out (and is read within a moment); the rest never will.
  await proxy.cut;
  await new Promise((resolve) => setTimeout(resolve, 200));
  abort.abort();
  const aborted = await sweep;
  assert.equal(aborted.error?.code, "sigterm");
  assert.equal(aborted.patients.length, 0);
  const list = events.find(
    (e) => e.type === "request_done" && e.route === "GET /api/patient/fetchAllPatients",
  );
  assert.ok(list && "reason" in list && list.reason === "aborted", JSON.stringify(events));
});
