/**
 * The command line's shape, from OPTIONS: `ml-scheduler [sweep]` (the default) and
 * `ml-scheduler check`. Every option is the program's, so it works anywhere on the line and
 * --help lists them all; a sweep option given to `check` is a usage error.
 */
import { readFileSync } from "node:fs";
import { Command, type CommanderError, InvalidArgumentError, Option } from "commander";
import { OPTION_LIST, type OptionSpec } from "../config/options.ts";
import { applyRule, RULES } from "../config/rules.ts";
import type { ConfigFlags } from "../config/settings.ts";
import { EXIT_CODES } from "../errors.ts";
import type { CommandName } from "../notify/notifier.ts";
import { escapeLine, hideValues } from "../output/safe-text.ts";

/** Commander's parsed options: the config flags plus those only the CLI acts on. */
export interface CliFlags extends ConfigFlags {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  lock?: string;
}

export type { CommandName };

/** What the command line asked for, once commander has parsed it. */
export interface Invocation {
  command: CommandName;
  flags: CliFlags;
}

/** The package's version (package.json), read once when the CLI loads. */
const VERSION = String(
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version,
);

/** The package's version: --version, the report, the metrics. */
export function packageVersion(): string {
  return VERSION;
}

/**
 * A flag's parser for commander: its own (`--patient`), else its rule's; undefined for a switch.
 * A refused value is commander's usage error (exit 2), naming what the value must be.
 */
export function commanderParser(
  spec: OptionSpec,
): ((value: string, previous: unknown) => unknown) | undefined {
  const { parse, rule } = spec;
  if (parse)
    return (value, previous) => {
      try {
        return parse(value, previous);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    };
  if (rule)
    return (value) => {
      const parsed = applyRule(rule, value);
      if (!parsed.ok) throw new InvalidArgumentError(`It ${parsed.message}.`);
      return parsed.value;
    };
  return undefined;
}

function toOption(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.description);
  const parse = commanderParser(spec);
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
 * throw CommanderError (exitOverride), which the caller maps to exit codes.
 */
export function buildProgram(onCommand: (invocation: Invocation) => void): Command {
  const program = new Command("ml-scheduler")
    .description(
      "One prediction sweep: for each patient, fetch its five newest vitals, ask the ML server for a status and write it back.",
    )
    .version(packageVersion(), "--version")
    .helpOption("-h, --help")
    .allowExcessArguments(false)
    // Errors throw a CommanderError; main.ts says them (commander's own line echoes the value).
    .exitOverride();
  for (const [, spec] of OPTION_LIST) program.addOption(toOption(spec));
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
    `\nEnvironment: PATIENT_SERVER, ML_SERVER (required); BACKEND_USERNAME, BACKEND_PASSWORD, BACKEND_TOKEN (each also as <NAME>_FILE); ${OPTION_LIST.flatMap(([, o]) => o.env ?? []).join(", ")}.\n\nExit codes:\n${table}\n`,
  );
  return program;
}

/** The sweep options among these flags, as a list for a message; undefined when none. */
function sweepOptionsIn(flags: CliFlags): string | undefined {
  const given = OPTION_LIST.filter(([key, o]) => o.scope === "sweep" && flags[key] !== undefined);
  return given.length === 0 ? undefined : given.map(([, o]) => o.flags.split(" ")[0]).join(", ");
}

/**
 * A usage error as one line: "Did you mean ...?" joined on, a refused URL shown as its origin
 * only (commander's own line echoes the value: a URL's password, a ping URL's secret path).
 */
export function usageMessage(error: CommanderError, argv: readonly string[]): string {
  const line = error.message
    .replace(/^error: /, "")
    .trim()
    .replace(/\s*\n\s*/g, " ");
  return hideValues(line, urlsGiven(argv));
}

/** The usage error's line on stderr when the logs are human (without its newline). */
export function usageLine(message: string): string {
  return `ml-scheduler: ${escapeLine(message)} (see --help)`;
}

/**
 * The values on the command line that may be URLs: those of a flag that takes one, and any that
 * looks like one (`--pushgatway=http://...` misspelled is echoed as an unknown option).
 */
function urlsGiven(argv: readonly string[]): string[] {
  const urlRules: unknown[] = [RULES.httpUrl, RULES.pingUrl];
  const urlFlags = new Set(
    OPTION_LIST.filter(([, o]) => urlRules.includes(o.rule)).map(([, o]) => o.flags.split(" ")[0]),
  );
  const values: string[] = [];
  argv.slice(2).forEach((arg, i, args) => {
    const eq = arg.indexOf("=");
    const [flag, value] = eq === -1 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if (eq === -1 && arg.includes("://")) values.push(arg);
    if (value !== undefined && (urlFlags.has(flag) || value.includes("://"))) values.push(value);
    const next = args[i + 1];
    if (value === undefined && urlFlags.has(flag) && next !== undefined) values.push(next);
  });
  return values;
}

/** The value of a flag as written on the command line (its last occurrence), before parsing. */
export function flagValue(argv: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  argv.forEach((arg, i) => {
    if (arg === flag) value = argv[i + 1];
    else if (arg.startsWith(`${flag}=`)) value = arg.slice(flag.length + 1);
  });
  return value;
}
