/**
 * resolveConfig on its own: sources and their order, secret files, legacy names, defaults.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, DEFAULTS, resolveConfig } from "../src/index.ts";
import { tempDir } from "./helpers/temp.ts";

const urls = { PATIENT_SERVER: "http://backend:8000", ML_SERVER: "https://ml.example/base" };

test("defaults, and flags over environment", (t) => {
  const c = resolveConfig({
    flags: {},
    env: { ...urls, BACKEND_TOKEN: "t" },
    cwd: tempDir(t, "config"),
  });
  assert.equal(c.concurrency, DEFAULTS.concurrency);
  assert.equal(c.requestTimeoutMs, 10_000);
  assert.equal(c.retries, 2);
  assert.equal(c.breaker, 10);
  assert.equal(c.dryRun, false);
  assert.equal(c.patients, undefined);
  assert.equal(c.mlServer, urls.ML_SERVER);
  const f = resolveConfig({
    flags: { concurrency: 9, patient: [3] },
    env: { ...urls, BACKEND_TOKEN: "t", CONCURRENCY: "2" },
    cwd: tempDir(t, "config"),
  });
  assert.equal(f.concurrency, 9);
  assert.deepEqual(f.patients, [3]);
});

test("a secret file loses exactly one trailing newline", (t) => {
  const d = tempDir(t, "config");
  writeFileSync(join(d, "pw"), "s3cret\n\n");
  const c = resolveConfig({
    flags: {},
    env: { ...urls, BACKEND_USERNAME: "u", BACKEND_PASSWORD_FILE: join(d, "pw") },
    cwd: d,
  });
  assert.equal(c.credentials.password, "s3cret\n");
});

test("a legacy name is ignored when the namespaced one or its _FILE is set anywhere", (t) => {
  const d = tempDir(t, "config");
  writeFileSync(join(d, "user"), "from-file\n");
  writeFileSync(join(d, ".env"), `BACKEND_USERNAME_FILE=${join(d, "user")}\nPASSWORD=legacy-pw\n`);
  const c = resolveConfig({ flags: {}, env: { ...urls, USERNAME: "root" }, cwd: d });
  assert.equal(c.credentials.username, "from-file");
  assert.equal(c.credentials.password, "legacy-pw");
  assert.equal(c.credentials.usernameSource, "BACKEND_USERNAME_FILE");
});

test("empty values are unset, TOKEN=null is no token, and every problem is its own line", (t) => {
  assert.throws(
    () =>
      resolveConfig({
        flags: {},
        env: { PATIENT_SERVER: "", ML_SERVER: "nope", TOKEN: "null" },
        cwd: tempDir(t, "config"),
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.exitCode, 3);
      const lines = error.message.split("\n");
      assert.equal(lines.length, 3, error.message);
      assert.match(lines[0] as string, /^PATIENT_SERVER is required/);
      assert.match(lines[1] as string, /^ML_SERVER must be an http/);
      assert.match(lines[2] as string, /required unless BACKEND_TOKEN is set/);
      return true;
    },
  );
});
