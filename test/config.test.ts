/**
 * resolveConfig on its own: sources and their order, secret files, legacy names, defaults.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { readEnvFile, workingDirectory } from "../src/config/env-file.ts";
import { OPTIONS } from "../src/config/options.ts";
import { RULES } from "../src/config/rules.ts";
import { LIMITS } from "../src/defaults.ts";
import { UsageError } from "../src/errors.ts";
import { ConfigError, DEFAULTS, resolveConfig } from "../src/index.ts";
import { tempDir } from "./helpers/temp.ts";

const urls = { PATIENT_SERVER: "http://backend:8000", ML_SERVER: "https://ml.example/base" };

/** The one ConfigError resolveConfig throws, as its lines. */
function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message.split("\n");
  }
  assert.fail("expected a ConfigError");
}

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
  const envFile = readEnvFile(undefined, d);
  const c = resolveConfig({ flags: {}, env: { ...urls, USERNAME: "root" }, envFile, cwd: d });
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

test("a secret file may hold 64 KiB, no more; a relative path is taken from cwd", (t) => {
  const d = tempDir(t, "config");
  writeFileSync(join(d, "fits"), "p".repeat(64 * 1024));
  writeFileSync(join(d, "over"), "p".repeat(64 * 1024 + 1));
  const env = { ...urls, BACKEND_USERNAME: "u" };
  const c = resolveConfig({ flags: {}, env: { ...env, BACKEND_PASSWORD_FILE: "fits" }, cwd: d });
  assert.equal(c.credentials.password?.length, 64 * 1024);
  assert.deepEqual(
    problems(() =>
      resolveConfig({ flags: {}, env: { ...env, BACKEND_PASSWORD_FILE: "over" }, cwd: d }),
    ),
    [
      "BACKEND_PASSWORD_FILE: the file it names is larger than 64 KiB; a secret file holds one value.",
    ],
  );
});

test("the env file is a regular file of at most 1 MiB, parsed as dotenv with # starting a comment", (t) => {
  const d = tempDir(t, "config");
  const env = { ...urls, BACKEND_USERNAME: "u" };
  writeFileSync(join(d, "a.env"), 'BACKEND_PASSWORD="a#b" # quoted\nTOKEN=c#d\n');
  const envFile = readEnvFile("a.env", d);
  const c = resolveConfig({ flags: {}, env, envFile, cwd: d });
  assert.equal(c.credentials.password, "a#b");
  assert.equal(c.credentials.token, "c", "unquoted, the rest of the line is a comment");

  writeFileSync(join(d, "big.env"), `BACKEND_PASSWORD=${"p".repeat(1024 * 1024)}\n`);
  mkdirSync(join(d, "dir.env"));
  for (const [file, why] of [
    ["big.env", "larger than 1 MiB"],
    ["dir.env", "not a regular file"],
  ]) {
    const lines = problems(() => readEnvFile(file, d));
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, new RegExp(`^--env-file ${file}: ${why}`));
  }
});

test("a working directory that cannot be read is a ConfigError, not a crash", () => {
  const gone = () => {
    throw Object.assign(new Error("uv_cwd"), { code: "ENOENT" });
  };
  assert.deepEqual(
    problems(() => workingDirectory(gone)),
    ["The working directory no longer exists (ENOENT): run from an existing directory."],
  );
});

test("a secret set but unusable is one line, without a misleading 'required' line", (t) => {
  const d = tempDir(t, "config");
  const lines = problems(() =>
    resolveConfig({ flags: {}, env: { ...urls, BACKEND_TOKEN_FILE: "/dev/null/x" }, cwd: d }),
  );
  assert.deepEqual(lines, ["BACKEND_TOKEN_FILE: cannot read the file it names (ENOTDIR)."]);
});

test("bounds that add up: --deadline + --grace + the exit margin fit a timer; --max-rps and --retries have limits", (t) => {
  const cwd = tempDir(t, "config");
  const env = { ...urls, BACKEND_TOKEN: "t" };
  const margin = DEFAULTS.exitMarginSeconds;
  // The largest sum that fits is taken; one past it is refused, as a usage error from flags.
  const fits = resolveConfig({ flags: { deadline: LIMITS.timerSeconds - 10 - margin }, env, cwd });
  assert.equal(fits.graceSeconds, 10);
  assert.throws(
    () => resolveConfig({ flags: { deadline: LIMITS.timerSeconds - 10, grace: 10 }, env, cwd }),
    (error: unknown) =>
      error instanceof UsageError &&
      error.exitCode === 2 &&
      /^--deadline 2147473s \+ --grace 10s \+ 1\.5s to exit is more than 2147483s/.test(
        error.message,
      ) &&
      !error.message.includes("\n"),
  );
  // From the environment, it is a configuration error naming the variables.
  assert.deepEqual(
    problems(() =>
      resolveConfig({ flags: {}, env: { ...env, DEADLINE: "2147000", GRACE: "1000" }, cwd }),
    ),
    [
      "DEADLINE 2147000s + GRACE 1000s + 1.5s to exit is more than 2147483s (24.8 days, the longest timer): shorten one of them.",
    ],
  );
  assert.match(
    problems(() =>
      resolveConfig({ flags: { grace: 5 }, env: { ...env, DEADLINE: "2147480" }, cwd }),
    ).join(),
    /^DEADLINE 2147480s \+ --grace 5s/,
  );
  for (const value of ["0.0009", "0.0000000001", "0.000999"]) {
    assert.equal(RULES.requestsPerSecond.safeParse(value).success, false, value);
  }
  assert.equal(RULES.requestsPerSecond.parse("0.001"), 0.001);
  assert.equal(RULES.retries.parse("10"), 10);
  assert.equal(RULES.retries.parse("0"), 0);
  for (const value of ["11", "22", "-1", "1.5"]) {
    assert.equal(RULES.retries.safeParse(value).success, false, value);
  }
  const help = Object.values(OPTIONS)
    .map((o) => o.description)
    .join("\n");
  assert.match(help, /retries of a request .*at most 10/);
  assert.match(help, /from 0\.001 to 10000, fractions allowed/);
  assert.match(help, /with --grace at most 2147481\.5s/);
});
