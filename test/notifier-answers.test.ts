/**
 * What the notifiers read of an answer: the Pushgateway and the ping are best effort, so an answer
 * that is huge, or encoded without being asked for (a decompression bomb), must not end a run that
 * has already succeeded. The real bin, under the Dockerfile's heap flags, against a hostile server.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createGzip, gzipSync } from "node:zlib";
import { parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";

const RSS_PROBE = fileURLToPath(new URL("./fixtures/rss-probe.mjs", import.meta.url));
const CAPPED = `--max-old-space-size=128 --max-semi-space-size=8 --import=${RSS_PROBE}`;
const MIB = 1024 * 1024;

/** `mib` MiB of zeros, gzipped twice: under a KiB on the wire. */
async function bomb(mib: number): Promise<Buffer> {
  const zeros = Buffer.alloc(MIB);
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < mib; i++) yield zeros;
    })(),
  );
  const chunks: Buffer[] = [];
  for await (const chunk of source.pipe(createGzip({ level: 9 })).pipe(createGzip({ level: 9 }))) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * A server on 127.0.0.1 answering every request 200 with `answer`: a body of `huge` MiB sent as
 * it is read (counting the MiB it sent), or a fixed body with its headers.
 */
async function hostile(
  t: TestContext,
  answer: { huge: number } | { body: Buffer; headers: Record<string, string>; status?: number },
) {
  const seen = { requests: 0, mibSent: 0, encodings: new Set<string | undefined>() };
  const server = createServer((req, res) => {
    seen.requests++;
    seen.encodings.add(req.headers["accept-encoding"]);
    req.resume();
    if ("body" in answer) {
      res.writeHead(answer.status ?? 200, {
        ...answer.headers,
        "content-length": String(answer.body.length),
      });
      res.end(answer.body);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    const mib = Buffer.alloc(MIB, "x");
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < answer.huge; i++) {
          seen.mibSent++;
          yield mib;
        }
      })(),
    );
    source.pipe(res);
    res.on("close", () => source.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test("a Pushgateway or a ping answering 92 MiB, or a `gzip, gzip` bomb, costs one warning each; the run keeps its exit code", async (t) => {
  const { env } = await startServices(t);
  const answers = [
    { what: "92 MiB", answer: { huge: 92 } },
    {
      what: "256 MiB of zeros in 1 KiB of `gzip, gzip`",
      answer: { body: await bomb(256), headers: { "content-encoding": "gzip, gzip" } },
    },
  ];
  for (const { what, answer } of answers) {
    const gateway = await hostile(t, answer);
    const monitor = await hostile(t, answer);
    const started = performance.now();
    const res = await run(
      ["--json", "--pushgateway", gateway.url, "--ping-url", `${monitor.url}/ping`],
      { env: { ...env, NODE_OPTIONS: CAPPED }, timeoutMs: 60_000 },
    );
    const ms = performance.now() - started;
    const where = `${what}: ${res.signal ?? res.code} ${res.stderr.slice(-600)}`;
    assert.equal(res.code, 0, where);
    assert.equal(parseReport(res.stdout).exitCode, 0, where);
    const warnings = res.stderr.split("\n").filter((line) => line.includes("[error]"));
    const pushWarnings = warnings.filter((line) => line.includes("Pushgateway"));
    assert.ok(pushWarnings.length <= 1, `${where}: ${pushWarnings}`);
    // Promptly: not by the push's 3 s timeout, nor its retry.
    for (const line of pushWarnings) assert.match(line, /over 65536 bytes and was not read/);
    assert.equal(gateway.seen.requests, 1, `${what}: the push was not retried`);
    // Neither asks for compression: an encoded answer is one it did not ask for, and not decoded.
    assert.deepEqual([...gateway.seen.encodings], [undefined], what);
    assert.deepEqual([...monitor.seen.encodings], [undefined], what);
    assert.ok(
      warnings.filter((line) => line.includes("ping")).length <= 2,
      `${where}: at most one per ping`,
    );
    const rss = Number(/^rss-probe maxrss-kib=(\d+)$/m.exec(res.stderr)?.[1]);
    assert.ok(rss > 0 && rss < 256 * 1024, `${where}: peak RSS ${rss} KiB`);
    if ("huge" in answer) {
      assert.ok(gateway.seen.mibSent < 46, `${what}: the gateway sent ${gateway.seen.mibSent} MiB`);
      assert.ok(monitor.seen.mibSent < 92, `${what}: the monitor sent ${monitor.seen.mibSent} MiB`);
    }
    t.diagnostic(`${what}: ${Math.round(ms)} ms, peak RSS ${Math.round(rss / 1024)} MiB`);
  }
});

test("a refused push shows the first line of the gateway's reason, never an encoded answer's bytes", async (t) => {
  const { env } = await startServices(t);
  const reason = "pushed metrics are invalid or inconsistent with existing metrics";
  const plain = await hostile(t, {
    status: 400,
    body: Buffer.from(`${reason}\u001b[31m\nsecond line\n`),
    headers: { "content-type": "text/plain" },
  });
  const res = await run(["--pushgateway", plain.url], { env });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, new RegExp(`failed \\(HTTP 400: ${reason}\\[31m\\); the exit code`));
  assert.doesNotMatch(res.stderr, /second line/);
  assert.ok(!res.stderr.includes("\u001b"), "no terminal escape");

  const encoded = await hostile(t, {
    status: 400,
    body: gzipSync(reason),
    headers: { "content-type": "text/plain", "content-encoding": "gzip" },
  });
  const quiet = await run(["--pushgateway", encoded.url], { env });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.match(quiet.stderr, /failed \(HTTP 400\); the exit code/);
});
