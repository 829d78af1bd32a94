/**
 * What output shows of text it did not write: a configured URL as its origin only (in usage
 * errors, human and JSON lines and the --json report), and characters that split or reverse a
 * line escaped in every format.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { buildReport } from "../src/core/report.ts";
import { createOutput } from "../src/output/human.ts";
import { createJsonLog } from "../src/output/json-log.ts";
import { formatHuman, formatJson } from "../src/output/report.ts";
import { escapeLine, hideValues, NOT_SHOWN, safeJson, shownUrl } from "../src/output/safe-text.ts";
import { beforeFinished, parseReport, run } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";

/** Secrets a URL can hide in: user info (with @, /, ' and spaces), the path, the query. */
const HOSTILE = [
  "http://admin:S3CRET@gw.example:9091",
  "http://admin:S3@CRET@gw.example:9091/",
  "https://admin:S3CR'ET@gw.example/",
  "http://admin:S3%20CRET@gw.example",
  "https://hc.example/ping/S3CRET-uuid?token=S3CRET",
  "https://user@hc.example:8443/S3CRET#S3CRET",
];

test("shownUrl is a URL's origin only, and nothing for a value that is not a URL", () => {
  assert.equal(shownUrl(HOSTILE[0] as string), "http://gw.example:9091");
  assert.equal(shownUrl(HOSTILE[1] as string), "http://gw.example:9091");
  assert.equal(shownUrl(HOSTILE[4] as string), "https://hc.example");
  assert.equal(shownUrl(HOSTILE[5] as string), "https://hc.example:8443");
  for (const value of HOSTILE) assert.doesNotMatch(shownUrl(value) ?? "", /S3|CRET|admin|user/);
  for (const value of ["hc.example/S3CRET", "S3CRET", "", "mailto:S3CRET@x", "http://"]) {
    assert.equal(shownUrl(value), undefined, value);
  }
});

test("hideValues replaces each given value whole, the longest first", () => {
  const given = [...HOSTILE, "hc.example/p w'd S3CRET", "http://a:S3CRET@h"];
  const text = given.map((v) => `argument '${v}' is invalid.`).join(" ");
  const shown = hideValues(text, given);
  assert.doesNotMatch(shown, /S3|CRET|admin/);
  assert.match(shown, /argument 'http:\/\/gw\.example:9091' is invalid/);
  assert.ok(shown.includes(`argument '${NOT_SHOWN}' is invalid`));
  // A value that holds another is not cut into pieces by the shorter one.
  assert.equal(
    hideValues("x http://h/a/S3CRET y", ["http://h/a", "http://h/a/S3CRET"]),
    "x http://h y",
  );
  assert.equal(hideValues("nothing given", []), "nothing given");
  // A value that is no URL is replaced only where it stands quoted, never inside the words.
  assert.equal(
    hideValues("argument 'h' is invalid. It must be an http URL", ["h"]),
    `argument '${NOT_SHOWN}' is invalid. It must be an http URL`,
  );
});

test("a refused URL's secrets reach no output: the human line, the JSON line and the --json report", async () => {
  const pushgateway = "http://admin:S3@C/R'ET x@127.0.0.1:9091/S3CRET";
  const ping = "https://hcadmin:S3CRET@hc.example/ping/S3CRET-uuid";
  const human = await run(["--pushgateway", pushgateway]);
  assert.equal(human.code, 2);
  assert.match(
    human.stderr,
    /^ml-scheduler: option '--pushgateway <url>' argument .* is invalid\. .*\(see --help\)\n\[error\] run finished: exit 2 \(usage\) in [\d.]+s\n$/,
  );
  assert.doesNotMatch(human.stderr, /S3|CRET|admin/);

  const json = await run(["--log-format", "json", "--json", `--ping-url=${ping}`]);
  assert.equal(json.code, 2);
  const [said] = beforeFinished(json.stderr);
  const line = JSON.parse(said ?? "") as { msg: string; code: string };
  assert.equal(line.code, "usage");
  assert.match(line.msg, /--ping-url <url>' argument 'https:\/\/hc\.example' is invalid/);
  const report = parseReport(json.stdout);
  assert.equal(report.error.message, line.msg);
  assert.doesNotMatch(json.stderr + json.stdout, /S3|CRET|hcadmin/);
});

/** What a service may send to split or reverse a line, and what must not reach any output raw. */
const SPLITTERS = "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069";
/** Any of them raw; a newline ends a line, so it is the one allowed (counted apart). */
const RAW = /(?!\n)[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
const HOSTILE_TEXT = `bad\u2028{"level":"error","msg":"injected"}\u2029\u202eevil\u2066x\u2069\u001b[31m\u0085\r\n`;

test("escapeLine and safeJson escape every character that splits or reverses a line", () => {
  const line = escapeLine(HOSTILE_TEXT + SPLITTERS);
  assert.doesNotMatch(line, RAW);
  assert.ok(!line.includes("\n"));
  assert.ok(line.includes("\\u2028") && line.includes("\\u202e") && line.includes("\\u001b"));
  assert.equal(escapeLine("plain: ünïcødé, 中文, emoji 🙂"), "plain: ünïcødé, 中文, emoji 🙂");
  const json = safeJson({ msg: HOSTILE_TEXT + SPLITTERS });
  assert.doesNotMatch(json, RAW);
  assert.ok(!json.includes("\n"));
  assert.deepEqual(JSON.parse(json), { msg: HOSTILE_TEXT + SPLITTERS }, "read back unchanged");
});

test("every format escapes them: human and JSON lines, the report's detail and error.message", () => {
  const capture = () => {
    const stream = new PassThrough();
    let text = "";
    stream.setEncoding("utf8").on("data", (d: string) => {
      text += d;
    });
    return { stream, text: () => text };
  };
  const human = capture();
  const out = createOutput({ verbose: true, quiet: false, stream: human.stream as never });
  out.warn(HOSTILE_TEXT);
  out.error(HOSTILE_TEXT, { code: "upstream" });
  const json = capture();
  const log = createJsonLog({ verbose: true, quiet: false, stream: json.stream, runId: "r" });
  log.warn(HOSTILE_TEXT, { detail: HOSTILE_TEXT });
  for (const [text, lines] of [
    [human.text(), 2],
    [json.text(), 1],
  ] as const) {
    assert.equal(text.split("\n").length, lines + 1, text);
    assert.doesNotMatch(text, RAW);
  }
  assert.equal(JSON.parse(json.text()).detail, HOSTILE_TEXT);

  const at = new Date();
  const report = buildReport({
    startedAt: at,
    finishedAt: at,
    dryRun: false,
    concurrency: 1,
    exitCode: 1,
    error: { code: "upstream", message: HOSTILE_TEXT },
    patients: [
      {
        pid: 2,
        outcome: "failed",
        from: 9,
        to: null,
        stage: "vitals",
        reason: "http_500",
        detail: HOSTILE_TEXT,
      },
    ],
  });
  const document = formatJson(report);
  assert.equal(document.split("\n").length, 2);
  assert.doesNotMatch(document, RAW);
  assert.equal(JSON.parse(document).patients[0].detail, HOSTILE_TEXT);
  assert.equal(JSON.parse(document).error.message, HOSTILE_TEXT);
  assert.doesNotMatch(formatHuman(report).replaceAll("\n", ""), RAW);
});

test("the bin: a service's answer with line separators and bidi controls stays one escaped line, human and JSON", async (t) => {
  const { env } = await startServices(t);
  // A Pushgateway that refuses every push with a hostile reason on its first line.
  const gateway = createServer((req, res) => {
    req.resume().on("end", () => {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8" });
      res.end(`${HOSTILE_TEXT.replace(/\r\n$/, "")}\nsecond line`);
    });
  });
  await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => gateway.close(() => resolve())));
  const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
  for (const format of ["human", "json"]) {
    const res = await run(["--pushgateway", url, "--log-format", format], { env });
    assert.equal(res.code, 0, res.stderr);
    assert.doesNotMatch(res.stderr, RAW, format);
    const said = res.stderr.split("\n").filter((l) => l.includes("Pushgateway"));
    assert.equal(said.length, 1, `${format}: ${res.stderr}`);
    assert.match(said[0] as string, /HTTP 400: bad\\{1,2}u2028\{/, format);
    assert.doesNotMatch(res.stderr, /^\{"level":"error","msg":"injected"/m, format);
  }
});
