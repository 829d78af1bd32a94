/**
 * What output shows of text it did not write: a configured URL as its origin only (in usage
 * errors, human and JSON lines and the --json report), and characters that split or reverse a
 * line escaped in every format.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  escapeLine,
  hideValues,
  NOT_SHOWN,
  safeJson,
  shownUrl,
} from "../src/reporters/safe-text.ts";
import { parseReport, run } from "./helpers/exec.ts";

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
});

test("a refused URL's secrets reach no output: the human line, the JSON line and the --json report", async () => {
  const pushgateway = "http://admin:S3@C/R'ET x@127.0.0.1:9091/S3CRET";
  const ping = "https://hcadmin:S3CRET@hc.example/ping/S3CRET-uuid";
  const human = await run(["--pushgateway", pushgateway]);
  assert.equal(human.code, 2);
  assert.match(
    human.stderr,
    /^ml-scheduler: option '--pushgateway <url>' argument .* is invalid\. .*\(see --help\)\n$/,
  );
  assert.doesNotMatch(human.stderr, /S3|CRET|admin/);

  const json = await run(["--log-format", "json", "--json", `--ping-url=${ping}`]);
  assert.equal(json.code, 2);
  const line = JSON.parse(json.stderr) as { msg: string; code: string };
  assert.equal(line.code, "usage");
  assert.match(line.msg, /--ping-url <url>' argument 'https:\/\/hc\.example' is invalid/);
  const report = parseReport(json.stdout);
  assert.equal(report.error.message, line.msg);
  assert.doesNotMatch(json.stderr + json.stdout, /S3|CRET|hcadmin/);
});
