/**
 * The command line's shape, from OPTIONS: `ml-scheduler [sweep]` (the default) and
 * `ml-scheduler check`. Every option is the program's, so it works anywhere on the line and
 * --help lists them all; a sweep option given to `check` is a usage error. Loads nothing heavy
 * (the values' rules and zod come in only when a flag that has one is given), so --help starts fast.
 */
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { EXIT_CODES } from "../errors.ts";
import type { ConfigFlags } from "./config.ts";
import { OPTIONS, type OptionSpec, optionKey } from "./options.ts";

/** Commander's parsed options: the config flags plus those only the CLI acts on. */
export interface CliFlags extends ConfigFlags {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  lock?: string;
}

export type CommandName = "sweep" | "check";

/** What the command line asked for, once commander has parsed it. */
export interface Invocation {
  command: CommandName;
  flags: CliFlags;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

/** A flag's parser for commander (rules.ts's commanderParser, once loaded). */
export type ParserOf = (
  spec: OptionSpec,
) => ((value: string, previous: unknown) => unknown) | undefined;

/**
 * Whether the command line gives a flag that has a rule (as `--flag value` or `--flag=value`,
 * the two forms commander reads): only then must the rules be loaded before it is parsed.
 */
export function givesRuledFlag(argv: readonly string[]): boolean {
  const ruled = new Set(OPTIONS.filter((o) => o.rule).map((o) => o.flags.split(" ")[0]));
  return argv.slice(2).some((arg) => ruled.has(arg.split("=")[0]));
}

/** Stands in for the rules when none were loaded: givesRuledFlag said no flag needs one. */
const rulesNotLoaded: ParserOf = (spec) =>
  spec.rule === undefined
    ? spec.parse
    : () => {
        throw new Error(`${spec.flags} was parsed without its rule`);
      };

function toOption(spec: OptionSpec, parserOf: ParserOf): Option {
  const option = new Option(spec.flags, spec.description);
  const parse = parserOf(spec);
  if (parse) option.argParser(parse);
  if (spec.conflicts) option.conflicts(spec.conflicts);
  // Defaults are applied by config (after the environment), so commander only shows them.
  const notes = [
    spec.default !== undefined && `default: ${String(spec.default)}`,
    spec.env && `env ${spec.env}`,
  ];
  const shown = notes.filter(Boolean).join("; ");
  if (shown) option.description += ` (${shown})`;
  return option;
}

/**
 * The commander program; `onCommand` receives what was asked for. Errors and --help/--version
 * throw CommanderError (exitOverride), which the caller maps to exit codes. `parserOf` is needed
 * when the command line gives a flag with a rule (see givesRuledFlag).
 */
export function buildProgram(
  onCommand: (invocation: Invocation) => void,
  parserOf: ParserOf = rulesNotLoaded,
): Command {
  const program = new Command("ml-scheduler")
    .description(
      "One prediction sweep: for each patient, fetch its five newest vitals, ask the ML server for a status and write it back.",
    )
    .version(version(), "--version")
    .helpOption("-h, --help")
    .allowExcessArguments(false)
    // Errors throw a CommanderError; main.ts says them (commander's own line echoes the value).
    .exitOverride();
  for (const spec of OPTIONS) program.addOption(toOption(spec, parserOf));
  const table = EXIT_CODES.map((e) => `  ${String(e.code).padStart(3)}  ${e.meaning}`).join("\n");
  const commands: Array<[CommandName, string]> = [
    ["sweep", "run one prediction sweep (the default command)"],
    [
      "check",
      "check the configuration, both services, the login and the patient list; predict and write nothing (connection and output options only)",
    ],
  ];
  for (const [name, description] of commands) {
    program
      .command(name, { isDefault: name === "sweep" })
      .description(description)
      .allowExcessArguments(false)
      .helpOption("-h, --help")
      .action((_options, self: Command) => {
        const flags = self.optsWithGlobals<CliFlags>();
        const refused = name === "sweep" ? undefined : sweepOptionsIn(flags);
        if (refused)
          self.error(`${name} takes no sweep options: remove ${refused}.`, { exitCode: 2 });
        onCommand({ command: name, flags });
      });
  }
  program.addHelpText(
    "after",
    `\nEnvironment: PATIENT_SERVER, ML_SERVER (required); BACKEND_USERNAME, BACKEND_PASSWORD, BACKEND_TOKEN (each also as <NAME>_FILE); ${OPTIONS.flatMap((o) => o.env ?? []).join(", ")}.\n\nExit codes:\n${table}\n`,
  );
  return program;
}

/** The sweep options among these flags, as a list for a message; undefined when none. */
function sweepOptionsIn(flags: CliFlags): string | undefined {
  const given = OPTIONS.filter((o) => o.scope === "sweep" && flags[optionKey(o)] !== undefined);
  return given.length === 0 ? undefined : given.map((o) => o.flags.split(" ")[0]).join(", ");
}
