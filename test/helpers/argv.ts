/**
 * A command line and an environment judged in-process by the bin's own code: its commander program
 * with the values' rules (a refusal is a usage error, which the bin exits 2 on, in the line it
 * prints), and resolveConfig (a refusal is one ConfigError, exit 3, one line a problem). A rule's
 * values are tested with these; the bin itself is spawned once per behaviour (tests in cli.test.ts
 * prove that a usage error is exit 2 with that one line and a ConfigError exit 3).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { CommanderError } from "commander";
import { buildProgram, type Invocation, usageLine, usageMessage } from "../../src/cli/program.ts";
import { readEnvFile } from "../../src/config/env-file.ts";
import type { ConfigFlags } from "../../src/config/settings.ts";
import { ConfigError, resolveConfig } from "../../src/index.ts";

/** The services and a token: a configuration with nothing missing, to add the case under test to. */
export const USABLE_ENV = {
  PATIENT_SERVER: "http://127.0.0.1:9",
  ML_SERVER: "http://127.0.0.1:9",
  BACKEND_TOKEN: "t",
};

/** The program, with what it writes to stdout and stderr kept instead of written. */
function program(onCommand: (invocation: Invocation) => void) {
  const written = { out: "", err: "" };
  const p = buildProgram(onCommand);
  for (const c of [p, ...p.commands])
    c.configureOutput({
      writeOut: (s) => {
        written.out += s;
      },
      writeErr: (s) => {
        written.err += s;
      },
    });
  return { program: p, written };
}

/** Parses a command line as the bin does; a usage error fails the calling test. */
export function parseArgs(args: readonly string[]): Invocation {
  let invocation: Invocation | undefined;
  const { program: p, written } = program((asked) => {
    invocation = asked;
  });
  try {
    p.parse([...args], { from: "user" });
  } catch (error) {
    assert.fail(`${args.join(" ")}: ${String(error)} ${written.err}`);
  }
  assert.ok(invocation, `no command for ${args.join(" ")}`);
  return invocation;
}

/** The one line the bin prints on stderr for this command line's usage error. */
export function usageError(args: readonly string[]): string {
  const { program: p } = program(() => {});
  const what = args.join(" ");
  let line = "";
  assert.throws(
    () => p.parse([...args], { from: "user" }),
    (error: unknown) => {
      assert.ok(error instanceof CommanderError, `${what}: threw ${String(error)}`);
      assert.ok(!["commander.helpDisplayed", "commander.version"].includes(error.code), what);
      // As main.ts says it: argv as the process has it, the program's own two first.
      line = usageLine(usageMessage(error, ["node", "ml-scheduler", ...args]));
      return true;
    },
    `${what}: not a usage error`,
  );
  const lines = line.trimEnd().split("\n");
  assert.equal(lines.length, 1, `${what}: one line, got ${line}`);
  assert.match(lines[0] as string, /^ml-scheduler: .*\(see --help\)$/, what);
  return lines[0] as string;
}

/** What --help prints. */
export function helpText(): string {
  const { program: p, written } = program(() => {});
  assert.throws(() => p.parse(["--help"], { from: "user" }), CommanderError);
  return written.out;
}

/** A working directory without a .env, for settings that must come from `env` alone. */
export const NO_ENV_FILE = fileURLToPath(new URL("../fixtures/", import.meta.url));

/** The lines of the ConfigError (exit 3) these settings are refused with. */
export function configProblems(
  env: Record<string, string | undefined>,
  flags: ConfigFlags = {},
  cwd = NO_ENV_FILE,
): string[] {
  try {
    // As the bin does: the env file read first (its own ConfigError), then the settings.
    resolveConfig({ flags, env, envFile: readEnvFile(flags.envFile, cwd), cwd });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.exitCode, 3);
    return error.message.split("\n");
  }
  assert.fail(`accepted ${JSON.stringify(env)} ${JSON.stringify(flags)}`);
}
