/**
 * Arbitrary bodies against every parser of the wire contract: each either yields a valid value or
 * fails with a reason code and a detail that carries no received value. Never a crash. Likewise
 * arbitrary settings against the configuration's rules: refused with a ConfigError, or usable.
 */
import assert from "node:assert/strict";
import { validateHeaderValue } from "node:http";
import { test } from "node:test";
import { InvalidArgumentError } from "commander";
import fc from "fast-check";
import { commanderParser } from "../src/cli/program.ts";
import { OPTIONS } from "../src/config/options.ts";
import { selectPatients } from "../src/core/select.ts";
import { ConfigError, resolveConfig, UpstreamError } from "../src/index.ts";
import { createClient } from "../src/services/client.ts";
import { type Answer, parseBody, RequestFailure } from "../src/services/failure.ts";
import {
  Health,
  LoginResponse,
  Patient,
  PatientList,
  Prediction,
  ProbeRejection,
  UpdatedPatient,
  ValidateResponse,
  VitalList,
} from "../src/services/schemas.ts";
import { tempDir } from "./helpers/temp.ts";

const SCHEMAS = {
  LoginResponse,
  ValidateResponse,
  PatientList,
  VitalList,
  Prediction,
  UpdatedPatient,
  Health,
  ProbeRejection,
};

/** A marker no parser can invent: if it shows up in a detail, a received value leaked. */
const MARK = "Zq7marker";

const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(null, true, false, 0, -1, 1, 9, 10, 1.5, 2 ** 53, MARK, "", "9", `${MARK}@x`),
    fc.string(),
    fc.integer(),
    fc.double(),
    tie("array"),
    tie("object"),
  ),
  array: fc.array(tie("value"), { maxLength: 7 }),
  object: fc.dictionary(
    fc.constantFrom(
      "pid",
      "status",
      "id",
      "token",
      "heart_rate",
      "sao2",
      "respiration",
      "systolic",
      "diastolic",
      "timestamp",
      "detail",
      "firstname",
      MARK,
    ),
    tie("value"),
    { maxKeys: 8 },
  ),
}));

/** Raw bodies: valid JSON of any shape, truncated JSON, HTML, plain text. */
const bodies = fc.oneof(
  jsonish.value.map((v) => JSON.stringify(v) ?? "null"),
  jsonish.value.map((v) => (JSON.stringify(v) ?? "null").slice(0, -1)),
  fc.constant(`<!doctype html><html><body>${MARK}</body></html>`),
  fc.string().map((s) => `${MARK}${s}`),
);

function expectParsedOrFailure(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RequestFailure, `threw ${String(error)}`);
    assert.match(error.reason, /^[a-z_0-9]+$/);
    assert.ok(!error.message.includes(MARK), `detail leaked a received value: ${error.message}`);
    assert.ok(!error.message.includes("\n"), "detail is one line");
  }
}

for (const [name, schema] of Object.entries(SCHEMAS)) {
  test(`parseBody(${name}) never crashes and never echoes the body`, () => {
    fc.assert(
      fc.property(bodies, fc.integer({ min: 100, max: 599 }), (body, status) => {
        const answer: Answer = { status, body, route: "GET /x", attempts: 1 };
        expectParsedOrFailure(() => parseBody(answer, schema));
      }),
      { numRuns: 300 },
    );
  });
}

test("selectPatients turns any list into one entry per usable pid and a reason for the rest, or refuses a mostly invalid list", () => {
  fc.assert(
    fc.property(
      fc.array(jsonish.value, { maxLength: 20 }),
      fc.option(fc.array(fc.integer({ min: 1, max: 5 }))),
      (list, wanted) => {
        const invalid = list.filter((r) => !Patient.safeParse(r).success).length;
        let selection: ReturnType<typeof selectPatients>;
        try {
          selection = selectPatients(list, wanted ?? undefined);
        } catch (error) {
          assert.ok(error instanceof UpstreamError, `threw ${String(error)}`);
          assert.ok(invalid * 2 > list.length, "refused only when more than half are invalid");
          assert.ok(error.message.includes(`: ${invalid} of its ${list.length} records`));
          assert.ok(!error.message.includes(MARK) && !error.message.includes("\n"));
          return;
        }
        assert.ok(invalid * 2 <= list.length, "a mostly invalid list is never selected from");
        const { selected, rejected } = selection;
        const pids = [
          ...selected.map((p) => p.pid),
          ...rejected.map((r) => r.pid).filter((p) => p !== null),
        ];
        assert.equal(new Set(pids).size, pids.length, "a pid appears once");
        for (const r of rejected) {
          assert.equal(r.outcome, "failed");
          assert.equal(r.stage, "select");
          assert.ok(["invalid_record", "duplicate_record", "not_found"].includes(r.reason ?? ""));
          assert.ok(!(r.detail ?? "").includes(MARK));
        }
        for (const p of selected) assert.ok(Number.isInteger(p.pid) && p.pid > 0);
        if (wanted) for (const pid of pids) assert.ok(wanted.includes(pid as number));
      },
    ),
    { numRuns: 500 },
  );
});

/** Strings a user might type for a number, and some nobody should. */
const numberish = fc.oneof(
  fc.nat({ max: 2048 }).map(String),
  fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String),
  fc.constantFrom(
    "Infinity",
    "-1",
    "1e3",
    "0x10",
    " 5",
    "5 ",
    "05",
    "4.0",
    "",
    "NaN",
    "1024",
    "1025",
  ),
  fc.string(),
);

test("--concurrency and CONCURRENCY accept exactly the same values, to the same number", (t) => {
  const cwd = tempDir(t, "prop");
  const flag = commanderParser(OPTIONS.concurrency);
  assert.ok(flag);
  const env = { PATIENT_SERVER: "http://b", ML_SERVER: "http://m", BACKEND_TOKEN: "t" };
  fc.assert(
    fc.property(numberish, (value) => {
      let fromFlag: unknown;
      try {
        fromFlag = flag(value, undefined);
      } catch (error) {
        assert.ok(error instanceof InvalidArgumentError);
        fromFlag = "refused";
      }
      let fromEnv: unknown;
      try {
        fromEnv = resolveConfig({
          flags: {},
          env: { ...env, CONCURRENCY: value },
          cwd,
        }).concurrency;
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        fromEnv = "refused";
      }
      // An empty variable is unset, so the default applies; the flag has no such thing.
      if (value !== "") assert.equal(fromEnv, fromFlag, `"${value}"`);
      if (typeof fromFlag === "number") assert.ok(fromFlag >= 1 && fromFlag <= 1024);
    }),
    { numRuns: 1000 },
  );
});

const urlish = fc.oneof(
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.string({ unit: "binary" }).map((s) => `http://h${s}`),
  fc.string({ unit: "binary" }).map((s) => `http://127.0.0.1:9/${s}`),
  fc.constantFrom(
    "http://[::1",
    "http://[::1]:9",
    "http://h/?",
    "http://h/#",
    "http://h:99999",
    "http://h:0",
    "http:///x",
    "http://h/%zz",
    "http://%zz",
    "https://h/a b",
    " http://h ",
    "http://h\n",
  ),
);

test("a URL or token that resolveConfig accepts builds the got client and the header", (t) => {
  const cwd = tempDir(t, "prop");
  const settings = { requestTimeoutMs: 1, retries: 0, retryDelayMs: 1, maxRetryAfterMs: 1 };
  fc.assert(
    fc.property(urlish, urlish, fc.string({ unit: "binary" }), (patient, ml, token) => {
      const env = { PATIENT_SERVER: patient, ML_SERVER: ml, BACKEND_TOKEN: `${MARK}${token}` };
      let config: ReturnType<typeof resolveConfig>;
      try {
        config = resolveConfig({ flags: {}, env, cwd });
      } catch (error) {
        assert.ok(error instanceof ConfigError, `threw ${String(error)}`);
        assert.ok(!error.message.includes(MARK), "a token is never echoed");
        const named = error.message.split("\n").map((line) => line.split(" ")[0]);
        assert.equal(new Set(named).size, named.length, "one line a variable");
        return;
      }
      createClient({ ...settings, baseUrl: config.patientServer }, { service: "backend" });
      createClient({ ...settings, baseUrl: config.mlServer }, { service: "ml" });
      validateHeaderValue("authorization", `Bearer ${config.credentials.token}`);
    }),
    { numRuns: 1000 },
  );
});
