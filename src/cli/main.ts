/**
 * The command line: the only module that touches the process (argv, env, signals, stdout, exit
 * code). `run` reads top to bottom as the lifecycle: parse, settings, output, notifiers, lock,
 * signals, command, report, notify; `main` then exits once stdout and stderr have drained.
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
import type { Counts } from "../core/report.ts";
import { DEFAULTS } from "../defaults.ts";
import {
  EXIT,
  EXIT_CODES,
  type ExitCode,
  type ExitName,
  pickExitCode,
  SchedulerError,
} from "../errors.ts";
import { NOT_REGULAR_HINT, NotRegularFile, writeFileAtomic } from "../host/atomic-write.ts";
import { acquireLock, type Lock } from "../host/lock.ts";
import { metricsFileNotifier } from "../notify/metrics-file.ts";
import type { Notifier, NotifierFactory, RunFacts } from "../notify/notifier.ts";
import { pingNotifier } from "../notify/ping.ts";
import { pushgatewayNotifier } from "../notify/pushgateway.ts";
import { createOutput, type Output, type RunSummary } from "../output/human.ts";
import { createJsonLog } from "../output/json-log.ts";
import { checkCommand } from "./commands/check.ts";
import { sweepCommand } from "./commands/sweep.ts";
import { type ProcessIo, processIo } from "./io.ts";
import type { CommandResult, CommandSpec } from "./lifecycle.ts";
import {
  buildProgram,
  type CliFlags,
  type CommandName,
  type Invocation,
  packageVersion,
  usageLine,
  usageMessage,
} from "./program.ts";

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

/** What the run's last line tells besides its exit code, gathered as the lifecycle goes. */
interface Ending {
  /** Epoch milliseconds at the process's start of work. */
  startedAt: number;
  command: CommandName | undefined;
  counts: Counts | null;
  /** False for --help and --version: no run, no `run finished` line. */
  run: boolean;
}

/**
 * The run's last log line, `run finished`, with its exit code, the code's name, the counts and
 * the duration: a log collector alone can alert on it. Said for every run, a refused command
 * line included; under --quiet for any exit but 0, at error.
 */
function sayFinished(io: ProcessIo, argv: string[], ending: Ending, exitCode: number): void {
  if (!ending.run) return;
  const summary: RunSummary = {
    command: ending.command,
    exitCode,
    exitName: EXIT_CODES.find((e) => e.code === exitCode)?.name ?? "unknown",
    durationMs: Date.now() - ending.startedAt,
    counts: ending.counts,
  };
  try {
    // A refused command line said its error before any logger: a human one says the end too.
    const quiet = argv.includes("--quiet");
    const out =
      io.out ??
      createOutput({ verbose: false, quiet, stream: process.stderr, journal: io.journal });
    out.finished(summary);
  } catch {
    // stderr is best effort: the exit code still says how the run ended.
  }
}

/** Where a bug that escaped goes: to the running command to stop it, else kept for the end. */
class BugTrap {
  stray: { error: unknown } | undefined;
  #onBug: ((error: unknown) => void) | undefined;
  catch(error: unknown): void {
    if (this.#onBug) this.#onBug(error);
    else this.stray ??= { error };
  }
  /** A promise that rejects with the next bug, until `release`. */
  trap(abort: AbortController): Promise<never> {
    const bugged = new Promise<never>((_, reject) => {
      this.#onBug = (error) => {
        abort.abort(error);
        reject(error);
      };
    });
    bugged.catch(() => {});
    return bugged;
  }
  release(): void {
    this.#onBug = undefined;
  }
}

/** The commands. */
const COMMANDS: Record<CommandName, CommandSpec> = {
  sweep: { locks: true, run: sweepCommand },
  check: { locks: false, run: checkCommand },
};

/** The notifiers, each built only when its option is set. A new one is a module under notify/. */
const NOTIFIERS: ReadonlyArray<[option: keyof Options, factory: NotifierFactory]> = [
  ["metricsFile", metricsFileNotifier],
  ["pushgateway", pushgatewayNotifier],
  ["pingUrl", pingNotifier],
];

/** What the run has once its settings, logger, notifiers and lock are in place. */
interface Prepared {
  settings: RunSettings;
  out: Output;
  notifiers: Notifier[];
  lock: Lock | undefined;
}

/** A run that ended before its command: why, and the notifiers that could be built. */
interface Unprepared {
  error: SchedulerError;
  notifiers: Notifier[];
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

/**
 * A run that ended before its command started (exit 3 or 7): said, printed with --json, filed
 * with --report-file, and told to the notifiers that can be built from what could be read.
 */
async function endEarly(
  { error, notifiers }: Unprepared,
  flags: CliFlags,
  io: ProcessIo,
  facts: RunFacts,
  stops: Stops,
  ending: Ending,
): Promise<ExitCode> {
  const said = io.out as Output;
  // A config error (exit 3) is an error; another run holding the lock (exit 7) is a warning.
  for (const line of error.message.split("\n")) said.ended(error.code, line);
  const early = await io.earlyJson(error.exitCode, error.code, error.message, flags);
  if (flags.json === true) await io.write(early);
  // An unwritable report file would be 74, which 3 and 7 outrank: its error line is enough.
  await fileReport(flags.reportFile, () => [early], said);
  return notify(notifiers, facts, error.exitCode, earlyResult(error), stops, ending);
}

/**
 * How a run stops on a signal. The first stops what has something to finish gracefully (in-flight
 * patients get the grace; before the first patient, nothing waits); the second aborts everything,
 * the notifiers' requests included. After the report, its exit code stands.
 */
class Stops {
  /** Aborted when no new work may start (a signal, the lock taken over). */
  readonly stop = new AbortController();
  /** Aborted when in-flight requests must stop now (a second signal, a bug). */
  readonly abort = new AbortController();
  /** Aborted by a second signal: the notifiers' requests stop too. */
  readonly hush = new AbortController();
  /** The exit code once the report is written: it stands, whatever signal comes after. */
  reported: ExitCode | undefined;
  grace: number = DEFAULTS.graceSeconds;
  readonly #io: ProcessIo;

  constructor(io: ProcessIo) {
    this.#io = io;
    for (const name of Object.keys(SIGNAL_CODES) as NodeJS.Signals[])
      process.on(name, (signal: NodeJS.Signals) => this.#heard(signal));
  }

  #heard(name: NodeJS.Signals): void {
    const code = SIGNAL_CODES[name] ?? "sigterm";
    const { reported } = this;
    if (!this.stop.signal.aborted) {
      const message =
        reported === undefined
          ? `${name}: no new patient starts; in-flight patients get ${this.grace}s to finish.`
          : `${name}: the report is written and its exit code ${reported} stands; the notifiers finish their requests (${name} again aborts them).`;
      this.stop.abort(new SchedulerError(code, message));
      if (reported !== undefined) this.#warn(message, code);
      return;
    }
    if (this.hush.signal.aborted) return;
    this.#warn(
      reported === undefined
        ? `${name} again: aborting in-flight requests and the notifiers now.`
        : `${name} again: aborting the notifiers now; the exit code ${reported} stands.`,
      code,
    );
    this.abort.abort(this.stop.signal.reason);
    this.hush.abort(this.stop.signal.reason);
  }

  #warn(message: string, code: ExitName): void {
    if (this.#io.out) this.#io.out.warn(message, { code });
    else this.#io.warn(message);
  }
}

/** The result said and printed (stdout, --report-file): the run's exit code, 74 if unwritten. */
async function printResult(
  result: CommandResult,
  flags: CliFlags,
  out: Output,
  io: ProcessIo,
): Promise<ExitCode> {
  out.finish();
  // Whatever ended the run and was not said when it happened is said now.
  if (result.error && !out.announced.has(result.error.code))
    out.ended(result.error.code, result.error.message);
  const written = await io.write(flags.json === true ? result.json() : result.human());
  if (!written) {
    const message =
      "The report could not be written to stdout (closed or full); the sweep itself ran.";
    out.error(message, { code: "io" });
  }
  const filed = await fileReport(flags.reportFile, result.json, out);
  return pickExitCode([result.exitCode, ...(written && filed ? [] : [EXIT.io])]);
}

/** Tells every notifier how the run ended; they never change the exit code. */
async function notify(
  notifiers: Notifier[],
  facts: RunFacts,
  exitCode: ExitCode,
  result: CommandResult,
  stops: Stops,
  ending: Ending,
): Promise<ExitCode> {
  stops.reported = exitCode;
  ending.counts = result.report?.counts ?? null;
  const end = {
    ...facts,
    finishedAt: new Date(),
    exitCode,
    error: result.error,
    report: result.report,
  };
  await Promise.all(notifiers.map((n) => n.finish(end).catch(() => {})));
  return exitCode;
}

/**
 * The run's one logger, once its format is known: the settings' (flag, environment, env file),
 * else, when they cannot be read, the flag's or a valid LOG_FORMAT in the environment.
 */
function openOutput(io: ProcessIo, flags: CliFlags, options: Options | undefined): Output {
  const format = logFormat(options?.logFormat ?? flags.logFormat, process.env.LOG_FORMAT);
  const { runId, journal } = io;
  const shape = {
    verbose: io.verbose,
    quiet: flags.quiet === true,
    stream: process.stderr,
    journal,
  };
  const shard = options?.shard;
  io.out = format === "json" ? createJsonLog({ ...shape, runId, shard }) : createOutput(shape);
  return io.out;
}

/**
 * `--report-file`: the JSON report written there too, atomically (a log driver splits a long
 * stdout line at 16 KiB). False, with one error line, when it could not be written (exit 74).
 */
async function fileReport(
  path: string | undefined,
  json: () => Iterable<string>,
  out: Output,
): Promise<boolean> {
  if (path === undefined) return true;
  try {
    await writeFileAtomic(path, json());
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
    out.error(
      error instanceof NotRegularFile
        ? `The report was not written to --report-file ${path}: ${NOT_REGULAR_HINT}.`
        : `The report could not be written to --report-file ${path} (${code}): check that its directory exists and is writable.`,
    );
    return false;
  }
}

/** Builds the notifiers whose options are set; their failures are said at error level. */
function createNotifiers(
  options: Options,
  fail: (message: string) => void,
  signal: AbortSignal,
): Notifier[] {
  const wanted = NOTIFIERS.filter(([option]) => options[option] !== undefined);
  return wanted.flatMap(([, factory]) => factory({ options, fail, signal }) ?? []);
}

/** A run that ended before its command started (exit 3 or 7), for the notifiers. */
function earlyResult(error: SchedulerError): CommandResult {
  const message = { code: error.code, message: error.message };
  return { exitCode: error.exitCode, error: message, json: () => [], human: () => "" };
}

type LogFormat = "human" | "json";

/** The first valid log format of these (a flag's, then the environment's), else human. */
function logFormat(...candidates: unknown[]): LogFormat {
  const valid = (v: unknown): v is LogFormat => v === "human" || v === "json";
  return candidates.find(valid) ?? "human";
}

/** The value of a flag as written on the command line (its last occurrence), before parsing. */
function flagValue(argv: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  argv.forEach((arg, i) => {
    if (arg === flag) value = argv[i + 1];
    else if (arg.startsWith(`${flag}=`)) value = arg.slice(flag.length + 1);
  });
  return value;
}

/** The signals a run stops gracefully on, and the error code each ends it with. */
const SIGNAL_CODES: Partial<Record<NodeJS.Signals, ExitName>> = {
  SIGTERM: "sigterm",
  SIGINT: "sigint",
  SIGHUP: "sighup",
};
