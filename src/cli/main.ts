/**
 * The command line: the only module that touches the process (argv, env, signals, stdout, exit
 * code). The lifecycle: parse, resolve settings, take the lock and wire signals, run the command,
 * print its result, exit. Heavy modules load only once a command runs, so --help starts fast.
 */
import { CommanderError } from "commander";
import { DEFAULTS } from "../defaults.ts";
import { EXIT, type ExitCode, type ExitName, pickExitCode, SchedulerError } from "../errors.ts";
import type { Output } from "../reporters/human.ts";
import { importHttpWithoutUndici } from "./http-exports.ts";
import { type ProcessIo, processIo } from "./io.ts";
import type {
  CommandResult,
  CommandSpec,
  Notifier,
  NotifierFactory,
  RunFacts,
} from "./lifecycle.ts";
import type { Lock } from "./lock.ts";
import { OPTIONS } from "./options.ts";
import { buildProgram, type CommandName, givesRuledFlag, type Invocation } from "./program.ts";

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
  process.on("uncaughtException", (error) => onBug(error));
  process.on("unhandledRejection", (error) => onBug(error));
  let code: number = EXIT.internal;
  try {
    code = await run(argv, io).catch((error: unknown) => io.internal(error));
    if (strayBug && code !== EXIT.internal) code = await io.internal(strayBug.error);
  } finally {
    await io.exit(code);
  }
}

/** A bug that escaped while no sweep was running to stop. */
let strayBug: { error: unknown } | undefined;
const recordBug = (error: unknown) => {
  strayBug ??= { error };
};
/** Where a bug that escaped goes; a running sweep replaces it to stop and report first. */
let onBug: (error: unknown) => void = recordBug;

/** The commands, loaded only when they run. */
const COMMANDS: Record<CommandName, () => Promise<CommandSpec>> = {
  sweep: async () => ({ locks: true, run: (await import("./commands/sweep.ts")).sweepCommand }),
  check: async () => ({ locks: false, run: (await import("./commands/check.ts")).checkCommand }),
};

/**
 * The notifiers, each loaded and built only when its option (by its key, see optionKey) is set.
 * A new one is a module under reporters/ or cli/ and one line here.
 */
const NOTIFIERS: ReadonlyArray<[option: string, load: () => Promise<NotifierFactory>]> = [
  ["metricsFile", async () => (await import("./notifiers/metrics-file.ts")).metricsFileNotifier],
  ["pushgateway", async () => (await import("./notifiers/pushgateway.ts")).pushgatewayNotifier],
  ["pingUrl", async () => (await import("./notifiers/ping.ts")).pingNotifier],
];

/** Parses, resolves the settings, takes the lock, runs the command and prints its result. */
async function run(argv: string[], io: ProcessIo): Promise<ExitCode> {
  // The run's id, made once something may carry it: --help and --version load no node:crypto.
  const newRunId = async () => (io.runId ??= (await import("node:crypto")).randomUUID());
  // Until the settings are known, JSON logs when the command line (as written) or LOG_FORMAT in
  // the environment asks for it: a usage error or a bug is then a JSON line too.
  if (logFormat(flagValue(argv, "--log-format"), process.env.LOG_FORMAT) === "json") {
    const { createJsonLog } = await import("../reporters/json-log.ts");
    const [verbose, quiet] = [argv.includes("--verbose"), argv.includes("--quiet")];
    io.out = createJsonLog({ verbose, quiet, stream: process.stderr, runId: await newRunId() });
  }
  let invocation: Invocation | undefined;
  // The values' rules (zod) load only when a flag on the line has one: --help loads no zod.
  const rules = givesRuledFlag(argv) ? await import("./rules.ts") : undefined;
  const program = buildProgram((asked) => {
    invocation = asked;
  }, rules?.commanderParser);
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
    await newRunId();
    const { hideValues, escapeLine } = await import("../reporters/safe-text.ts");
    // One line ("Did you mean ...?" comes on a second), the refused URL shown as its origin only.
    const line = error.message
      .replace(/^error: /, "")
      .trim()
      .replace(/\s*\n\s*/g, " ");
    const message = hideValues(line, urlsGiven(argv));
    if (io.out) io.out.error(message, { code: "usage" });
    else process.stderr.write(`ml-scheduler: ${escapeLine(message)} (see --help)\n`);
    if (argv.includes("--json")) await io.early(EXIT.usage, "usage", message);
    return EXIT.usage;
  }
  if (invocation === undefined) return EXIT.ok; // commander printed help for a bare subcommand
  const runId = await newRunId();
  const { flags } = invocation;
  const json = flags.json === true;

  // Before got loads: node:http's ES module would otherwise load undici, unused (http-exports.ts).
  await importHttpWithoutUndici();
  const [
    { createOutput },
    { createJsonLog },
    { resolveRun, resolveOptionsOnly },
    { acquireLock },
    command,
  ] = await Promise.all([
    import("../reporters/human.ts"),
    import("../reporters/json-log.ts"),
    import("./config.ts"),
    import("./lock.ts"),
    COMMANDS[invocation.command](),
  ]);
  const facts: RunFacts = {
    runId,
    command: invocation.command,
    startedAt: new Date(),
    endBy: undefined,
  };
  io.verbose = flags.verbose === true;
  if (json) io.jsonFlags = flags;
  /**
   * The run's one logger, once its format is known: the settings' (flag, environment, env file),
   * else, when they cannot be read, the flag's or a valid LOG_FORMAT in the environment.
   */
  const openOutput = (options: Record<string, unknown> | undefined): Output => {
    const format = logFormat(options?.logFormat ?? flags.logFormat, process.env.LOG_FORMAT);
    const shape = { verbose: io.verbose, quiet: flags.quiet === true, stream: process.stderr };
    const shard = options?.shard as { index: number; count: number } | undefined;
    io.out = format === "json" ? createJsonLog({ ...shape, runId, shard }) : createOutput(shape);
    return io.out;
  };

  const stop = new AbortController();
  const abort = new AbortController();
  /** Aborted by a second signal: the notifiers' requests stop too. */
  const hush = new AbortController();
  /** The exit code once the report is written: it stands, whatever signal comes after. */
  let reported: ExitCode | undefined;
  let grace: number = DEFAULTS.graceSeconds;
  const warn = (message: string, name: NodeJS.Signals) => {
    if (io.out) io.out.warn(message, { code: SIGNAL_CODES[name] ?? null });
    else io.warn(message);
  };
  /**
   * The first signal stops what has something to finish gracefully (in-flight patients get the
   * grace; before the first patient, nothing waits); the second aborts everything, the
   * notifiers' requests included. After the report, its exit code stands.
   */
  const onSignal = (name: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      const code = SIGNAL_CODES[name] ?? "sigterm";
      const message =
        reported === undefined
          ? `${name}: no new patient starts; in-flight patients get ${grace}s to finish.`
          : `${name}: the report is written and its exit code ${reported} stands; the notifiers finish their requests (${name} again aborts them).`;
      stop.abort(new SchedulerError(code, message));
      if (reported !== undefined) warn(message, name);
      return;
    }
    if (hush.signal.aborted) return;
    warn(
      reported === undefined
        ? `${name} again: aborting in-flight requests and the notifiers now.`
        : `${name} again: aborting the notifiers now; the exit code ${reported} stands.`,
      name,
    );
    abort.abort(stop.signal.reason);
    hush.abort(stop.signal.reason);
  };
  // Wired before the settings, the lock and the notifiers, and kept until the process exits: a
  // signal at any point is heard, and one after the report cannot change its exit code.
  for (const name of Object.keys(SIGNAL_CODES) as NodeJS.Signals[]) process.on(name, onSignal);

  const input = { flags, env: process.env, cwd: () => process.cwd() };
  let notifiers: Notifier[] = [];
  /** Tells every notifier how the run ended; they never change the exit code. */
  const notify = async (exitCode: ExitCode, result?: CommandResult) => {
    reported = exitCode;
    const end = {
      ...facts,
      finishedAt: new Date(),
      exitCode,
      error: result?.error ?? null,
      report: result?.report,
    };
    await Promise.all(notifiers.map((n) => n.finish(end).catch(() => {})));
    return exitCode;
  };

  let settings: ReturnType<typeof resolveRun>;
  let lock: Lock | undefined;
  let out: Output | undefined;
  try {
    settings = resolveRun(input);
    out = openOutput(settings.options);
    notifiers = await createNotifiers(settings.options, out.warn, hush.signal);
    const { deadlineSeconds, graceSeconds } = settings.config;
    grace = graceSeconds;
    if (deadlineSeconds !== undefined) {
      const seconds = deadlineSeconds + graceSeconds + DEFAULTS.exitMarginSeconds;
      facts.endBy = facts.startedAt.getTime() + seconds * 1000;
    }
    if (flags.lock !== undefined && command.locks) {
      // Another run took the lock over: no new patient starts, in-flight ones finish, exit 7.
      lock = acquireLock(flags.lock, { onLost: (error) => stop.abort(error) });
    }
  } catch (error) {
    if (!(error instanceof SchedulerError)) throw error;
    const options = out ? undefined : resolveOptionsOnly(input);
    const said = out ?? openOutput(options);
    // A config error (exit 3) is an error; another run holding the lock (exit 7) is a warning.
    for (const line of error.message.split("\n")) said.ended(error.code, line);
    const early = await io.earlyJson(error.exitCode, error.code, error.message, flags);
    if (json) await io.write(early);
    // An unwritable report file would be 74, which 3 and 7 outrank: its error line is enough.
    await fileReport(flags.reportFile, () => [early], said);
    const notifyOptions =
      options ?? (notifiers.length === 0 ? resolveOptionsOnly(input) : undefined);
    if (notifiers.length === 0 && notifyOptions) {
      notifiers = await createNotifiers(notifyOptions, said.warn, hush.signal);
    }
    return notify(error.exitCode, earlyResult(error));
  }

  const bugged = new Promise<never>((_, reject) => {
    onBug = (error) => {
      abort.abort(error);
      reject(error);
    };
  });
  bugged.catch(() => {});

  try {
    await Promise.all(notifiers.map((n) => n.start?.(facts).catch(() => {})));
    const result = await Promise.race([
      command.run({
        runId: facts.runId,
        settings,
        signal: abort.signal,
        stop: stop.signal,
        onEvent: (event) => {
          out.event(event);
          for (const n of notifiers) n.event?.(event);
        },
        warn: out.warn,
      }),
      bugged,
    ]);
    out.finish();
    reported = result.exitCode;
    // Whatever ended the run and was not said when it happened is said now.
    if (result.error && !out.announced.has(result.error.code))
      out.ended(result.error.code, result.error.message);
    const written = await io.write(json ? result.json() : result.human());
    if (!written)
      out.error(
        "The report could not be written to stdout (closed or full); the sweep itself ran.",
        {
          code: "io",
        },
      );
    const filed = await fileReport(flags.reportFile, result.json, out);
    const failed = written && filed ? [] : [EXIT.io];
    return await notify(pickExitCode([result.exitCode, ...failed]), result);
  } catch (error) {
    // A bug (exit 70): said once, and the metrics and the ping still hear how the run ended.
    const code = await io.internal(error);
    return await notify(code, earlyResult(new SchedulerError("internal", "Internal error.")));
  } finally {
    onBug = recordBug;
    lock?.release();
  }
}

/**
 * `--report-file`: the JSON report written there too, atomically (a log driver splits a long
 * stdout line at 16 KiB). False, with one error line, when it could not be written (exit 74).
 */
async function fileReport(
  path: unknown,
  json: () => Iterable<string>,
  out: Output,
): Promise<boolean> {
  if (typeof path !== "string") return true;
  const { writeFileAtomic, NotRegularFile, NOT_REGULAR_HINT } = await import("./atomic-write.ts");
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

/** Builds the notifiers whose options are set. */
async function createNotifiers(
  options: Record<string, unknown>,
  warn: (message: string) => void,
  signal: AbortSignal,
): Promise<Notifier[]> {
  const wanted = NOTIFIERS.filter(([option]) => options[option] !== undefined);
  const factories = await Promise.all(wanted.map(([, load]) => load()));
  return factories.flatMap((factory) => factory({ options, warn, signal }) ?? []);
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

/**
 * The values on the command line that may be URLs: those of a flag that takes one, and any that
 * looks like one (`--pushgatway=http://...` misspelled is echoed as an unknown option).
 */
function urlsGiven(argv: readonly string[]): string[] {
  const urlFlags = new Set(
    OPTIONS.filter((o) => o.rule === "httpUrl" || o.rule === "pingUrl").map(
      (o) => o.flags.split(" ")[0],
    ),
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

/** The signals a run stops gracefully on, and the error code each ends it with. */
const SIGNAL_CODES: Partial<Record<NodeJS.Signals, ExitName>> = {
  SIGTERM: "sigterm",
  SIGINT: "sigint",
  SIGHUP: "sighup",
};
