/**
 * The command line: with the modules beside it in cli/, the only code that touches the process
 * (argv, env, signals, stdout, exit code). `run` reads top to bottom as the lifecycle: parse,
 * settings, output, notifiers, lock, signals, command, report, notify; `main` then exits once
 * stdout and stderr have drained.
 */
import { CommanderError } from "commander";
import { readEnvFile, workingDirectory } from "../config/env-file.ts";
import type { Options } from "../config/options.ts";
import {
  type ConfigInput,
  type RunSettings,
  resolveOptionsOnly,
  resolveRun,
} from "../config/settings.ts";
import { DEFAULTS } from "../defaults.ts";
import { EXIT, type ExitCode, SchedulerError } from "../errors.ts";
import { acquireLock, type Lock } from "../host/lock.ts";
import type { Notifier, RunFacts } from "../notify/notifier.ts";
import { createJsonLog } from "../output/json-log.ts";
import type { Output } from "../output/logger.ts";
import { createNotifiers, logFormat, openOutput } from "./channels.ts";
import { checkCommand } from "./commands/check.ts";
import { sweepCommand } from "./commands/sweep.ts";
import {
  type Ending,
  earlyResult,
  endEarly,
  notify,
  printResult,
  sayFinished,
  type Unprepared,
} from "./finish.ts";
import { type ProcessIo, processIo } from "./io.ts";
import type { CommandSpec } from "./lifecycle.ts";
import {
  buildProgram,
  type CliFlags,
  type CommandName,
  flagValue,
  type Invocation,
  packageVersion,
  usageLine,
  usageMessage,
} from "./program.ts";
import { BugTrap, Stops } from "./signals.ts";

/**
 * The CLI entry: runs one command, then ends the process once stdout and stderr have drained
 * (a socket a service left open must not keep a finished run alive). The only process.exit.
 */
export async function main(argv: string[] = process.argv): Promise<void> {
  const io = processIo();
  // Node's process warnings go through the run's logger, at warn, name and message only; when
  // Node would print none (--no-warnings, NODE_NO_WARNINGS=1), neither do we.
  if (process.listenerCount("warning") > 0) {
    process.removeAllListeners("warning");
    process.on("warning", (warning) => io.warn(`${warning.name}: ${warning.message}`));
  }
  // A bug anywhere in the process (a timer, a stream's error event) ends the run with exit 70.
  const bugs = new BugTrap();
  process.on("uncaughtException", (error) => bugs.catch(error));
  process.on("unhandledRejection", (error) => bugs.catch(error));
  const ending: Ending = { startedAt: Date.now(), command: undefined, counts: null, run: true };
  let code: number = EXIT.internal;
  try {
    code = await run(argv, io, bugs, ending).catch((error: unknown) => io.internal(error));
    if (bugs.stray && code !== EXIT.internal) code = await io.internal(bugs.stray.error);
    sayFinished(io, argv, ending, code);
  } finally {
    await io.exit(code);
  }
}

/** The commands. */
const COMMANDS: Record<CommandName, CommandSpec> = {
  sweep: { locks: true, run: sweepCommand },
  check: { locks: false, run: checkCommand },
};

/** What the run has once its settings, logger, notifiers and lock are in place. */
interface Prepared {
  settings: RunSettings;
  out: Output;
  notifiers: Notifier[];
  lock: Lock | undefined;
}

/** The lifecycle, top to bottom. */
async function run(
  argv: string[],
  io: ProcessIo,
  bugs: BugTrap,
  ending: Ending,
): Promise<ExitCode> {
  const invocation = await parse(argv, io);
  if (typeof invocation === "number") {
    // Help or the version was printed: no run took place.
    ending.run = invocation !== EXIT.ok;
    return invocation;
  }
  const { flags } = invocation;
  const command = COMMANDS[invocation.command];
  ending.command = invocation.command;
  const facts: RunFacts = {
    runId: io.runId,
    command: invocation.command,
    startedAt: new Date(),
    endBy: undefined,
    build: { version: packageVersion(), node: process.version },
  };
  io.verbose = flags.verbose === true;
  if (flags.json === true) io.jsonFlags = flags;
  // Wired before the settings, the lock and the notifiers, and kept until the process exits: a
  // signal at any point is heard, and one after the report cannot change its exit code.
  const stops = new Stops(io);
  const prepared = prepare(flags, io, facts, command, stops);
  if ("error" in prepared) return endEarly(prepared, flags, io, facts, stops, ending);
  const { out, notifiers } = prepared;
  const { stop, abort } = stops;
  const bugged = bugs.trap(abort);
  try {
    await Promise.all(notifiers.map((n) => n.start?.(facts).catch(() => {})));
    const context = {
      runId: facts.runId,
      schedulerVersion: facts.build.version,
      settings: prepared.settings,
      signal: abort.signal,
    };
    const result = await Promise.race([
      command.run({
        ...context,
        stop: stop.signal,
        onEvent: (event) => {
          out.event(event);
          for (const n of notifiers) n.event?.(event);
        },
        warn: out.warn,
      }),
      bugged,
    ]);
    stops.reported = result.exitCode;
    const exitCode = await printResult(result, flags, out, io);
    return await notify(notifiers, facts, exitCode, result, stops, ending);
  } catch (error) {
    // A bug (exit 70): said once, and the metrics and the ping still hear how the run ended.
    const code = await io.internal(error);
    const bug = earlyResult(new SchedulerError("internal", "Internal error."));
    return await notify(notifiers, facts, code, bug, stops, ending);
  } finally {
    bugs.release();
    prepared.lock?.release();
  }
}

/** The command line, parsed: what it asks for, or the exit code it already ended with. */
async function parse(argv: string[], io: ProcessIo): Promise<Invocation | ExitCode> {
  // Until the settings are known, JSON logs when the command line (as written) or LOG_FORMAT in
  // the environment asks for it: a usage error or a bug is then a JSON line too.
  if (logFormat(flagValue(argv, "--log-format"), process.env.LOG_FORMAT) === "json") {
    const [verbose, quiet] = [argv.includes("--verbose"), argv.includes("--quiet")];
    const { runId, journal } = io;
    io.out = createJsonLog({ verbose, quiet, stream: process.stderr, runId, journal });
  }
  let invocation: Invocation | undefined;
  const program = buildProgram((asked) => {
    invocation = asked;
  });
  // Usage errors are said below, in the run's log format: commander's own line would not be
  // JSON, and it echoes a refused value (a URL's password, a ping URL's secret path).
  for (const c of [program, ...program.commands]) c.configureOutput({ outputError: () => {} });
  try {
    program.parse(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    const shown = error.code === "commander.helpDisplayed" || error.code === "commander.version";
    if (shown) return EXIT.ok;
    // `ml-scheduler help`: commander printed the help, and says nothing more worth a line.
    if (error.code === "commander.help") return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const message = usageMessage(error, argv);
    if (io.out) io.out.error(message, { code: "usage" });
    else void io.stderr("error", usageLine(message));
    if (argv.includes("--json")) await io.early(EXIT.usage, "usage", message);
    return EXIT.usage;
  }
  // Without an invocation, commander printed help for a bare subcommand.
  return invocation ?? EXIT.ok;
}

/** Settings, the logger, the notifiers and the lock; or the SchedulerError that ended the run. */
function prepare(
  flags: CliFlags,
  io: ProcessIo,
  facts: RunFacts,
  command: CommandSpec,
  stops: Stops,
): Prepared | Unprepared {
  let out: Output | undefined;
  let notifiers: Notifier[] | undefined;
  try {
    const settings = resolveRun(configInput(flags));
    out = openOutput(io, flags, settings.options);
    notifiers = createNotifiers(settings.options, out.error, stops.hush.signal);
    const { deadlineSeconds, graceSeconds } = settings.config;
    stops.grace = graceSeconds;
    if (deadlineSeconds !== undefined) {
      const seconds = deadlineSeconds + graceSeconds + DEFAULTS.exitMarginSeconds;
      facts.endBy = facts.startedAt.getTime() + seconds * 1000;
    }
    // Another run took the lock over: no new patient starts, in-flight ones finish, exit 7.
    const lock =
      flags.lock !== undefined && command.locks
        ? acquireLock(flags.lock, { onLost: (error) => stops.stop.abort(error) })
        : undefined;
    return { settings, out, notifiers, lock };
  } catch (error) {
    if (!(error instanceof SchedulerError)) throw error;
    if (out && notifiers) return { error, notifiers };
    // The settings could not be read: the options alone may be, for the logger and notifiers.
    const options = optionsOnly(flags);
    const said = openOutput(io, flags, options);
    const built = options ? createNotifiers(options, said.error, stops.hush.signal) : [];
    return { error, notifiers: built };
  }
}

/** Every option's value when those alone can be read (see resolveOptionsOnly). */
function optionsOnly(flags: CliFlags): Options | undefined {
  try {
    return resolveOptionsOnly(configInput(flags));
  } catch {
    // The env file or the working directory cannot be read.
    return undefined;
  }
}

/** The inputs of the settings: the flags, the environment and the env file. */
function configInput(flags: CliFlags): ConfigInput {
  const cwd = workingDirectory(() => process.cwd());
  return { flags, env: process.env, envFile: readEnvFile(flags.envFile, cwd), cwd };
}
