/**
 * The command line: the only module that touches the process (argv, env, signals, stdout, exit
 * code). Heavy modules load only once a sweep runs, so `--help` and `--version` start fast.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { buildReport } from "../core/report.ts";
import { DEFAULTS } from "../defaults.ts";
import {
  EXIT,
  EXIT_CODES,
  type ExitCode,
  type ExitName,
  pickExitCode,
  SchedulerError,
} from "../errors.ts";
import type { Output } from "../reporters/human.ts";
import { formatHuman, formatJson } from "../reporters/report.ts";
import type { ConfigFlags } from "./config.ts";
import type { Lock } from "./lock.ts";
import { CLI_OPTIONS } from "./options.ts";

/** Commander's parsed options: the config flags plus those only the CLI acts on. */
interface CliFlags extends ConfigFlags {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  lock?: string;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

function buildProgram(): Command {
  const program = new Command("ml-scheduler")
    .description(
      "One prediction sweep: for each patient, fetch its five newest vitals, ask the ML server for a status and write it back.",
    )
    .version(version(), "--version")
    .helpOption("-h, --help")
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      outputError: (message, write) =>
        write(`ml-scheduler: ${message.replace(/^error: /, "").trim()} (see --help)\n`),
    });
  for (const spec of CLI_OPTIONS) {
    const option = new Option(spec.flags, spec.description);
    if (spec.parse) option.argParser(spec.parse);
    // Defaults are applied by config (after the environment), so commander only shows them.
    const notes = [
      spec.defaultDescription && `default: ${spec.defaultDescription}`,
      spec.env && `env ${spec.env}`,
    ];
    const shown = notes.filter(Boolean).join("; ");
    if (shown) option.description += ` (${shown})`;
    program.addOption(option);
  }
  const table = EXIT_CODES.map((e) => `  ${String(e.code).padStart(3)}  ${e.meaning}`).join("\n");
  program.addHelpText(
    "after",
    `\nEnvironment: PATIENT_SERVER, ML_SERVER (required); BACKEND_USERNAME, BACKEND_PASSWORD, BACKEND_TOKEN (each also as <NAME>_FILE); CONCURRENCY.\n\nExit codes:\n${table}\n`,
  );
  return program;
}

/**
 * The CLI entry: runs one command, then ends the process once stdout and stderr have drained
 * (a socket a service left open must not keep a finished run alive). The only process.exit.
 */
export async function main(argv: string[] = process.argv): Promise<void> {
  const io = processIo();
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

/** Parses, resolves the config, takes the lock, runs the sweep and prints its report. */
async function run(argv: string[], io: ProcessIo): Promise<ExitCode> {
  const program = buildProgram();
  try {
    program.parse(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    const shown = error.code === "commander.helpDisplayed" || error.code === "commander.version";
    if (shown) return EXIT.ok;
    if (argv.includes("--json")) await io.early(EXIT.usage, "usage", error.message);
    return EXIT.usage;
  }
  const flags = program.opts<CliFlags>();
  const json = flags.json === true;

  const [{ createOutput }, { resolveConfig }, { runSweep }, { acquireLock }] = await Promise.all([
    import("../reporters/human.ts"),
    import("./config.ts"),
    import("../core/sweep.ts"),
    import("./lock.ts"),
  ]);
  const out = createOutput({
    verbose: flags.verbose === true,
    quiet: flags.quiet === true,
    stream: process.stderr,
  });
  io.verbose = flags.verbose === true;
  io.out = out;
  if (json) io.jsonFlags = flags;

  const stop = new AbortController();

  let config: ReturnType<typeof resolveConfig>;
  let lock: Lock | undefined;
  try {
    config = resolveConfig({ flags, env: process.env, cwd: () => process.cwd() });
    if (flags.lock !== undefined) {
      // Another run took the lock over: no new patient starts, in-flight ones finish, exit 7.
      lock = acquireLock(flags.lock, { onLost: (error) => stop.abort(error) });
    }
  } catch (error) {
    if (!(error instanceof SchedulerError)) throw error;
    for (const line of error.message.split("\n")) out.error(line);
    if (json) await io.early(error.exitCode, error.code, error.message, flags);
    return error.exitCode;
  }

  const abort = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      out.warn(`${name} again: aborting in-flight requests now.`);
      abort.abort(stop.signal.reason);
      return;
    }
    stop.abort(
      new SchedulerError(
        SIGNAL_CODES[name] ?? "sigterm",
        `${name}: no new patient starts; in-flight patients get ${config.graceSeconds}s to finish.`,
      ),
    );
  };
  const signals = Object.keys(SIGNAL_CODES) as NodeJS.Signals[];
  for (const name of signals) process.on(name, onSignal);
  const bugged = new Promise<never>((_, reject) => {
    onBug = (error) => {
      abort.abort(error);
      reject(error);
    };
  });
  bugged.catch(() => {});

  try {
    const sweep = runSweep(config, {
      signal: abort.signal,
      stop: stop.signal,
      onEvent: (event) => out.event(event),
    });
    const report = await Promise.race([sweep, bugged]);
    out.finish();
    // Whatever ended the run and was not said when it happened is said now.
    if (report.error && !out.announced.has(report.error.code))
      out.ended(report.error.code, report.error.message);
    const written = await io.write(json ? formatJson(report) : formatHuman(report));
    if (written) return report.exitCode;
    out.error("The report could not be written to stdout (closed or full); the sweep itself ran.");
    return pickExitCode([report.exitCode, EXIT.io]);
  } finally {
    onBug = recordBug;
    lock?.release();
    for (const name of signals) process.off(name, onSignal);
  }
}

/** The signals a run stops gracefully on, and the error code each ends it with. */
const SIGNAL_CODES: Partial<Record<NodeJS.Signals, ExitName>> = {
  SIGTERM: "sigterm",
  SIGINT: "sigint",
  SIGHUP: "sighup",
};

interface ProcessIo {
  /** Set once flags are read: a bug's stack is logged only with --verbose. */
  verbose: boolean;
  /** Set once flags are read: the logger, else bugs go to stderr raw. */
  out: Output | undefined;
  /** Set with --json: a bug still prints the one JSON document. */
  jsonFlags: CliFlags | undefined;
  /** Writes to stdout; false when it could not be written. */
  write(text: string): Promise<boolean>;
  /** The JSON report of a run that ended before any sweep started. */
  early(exitCode: ExitCode, code: string, message: string, flags?: CliFlags): Promise<void>;
  /** A bug: one line (the stack with --verbose), the JSON document with --json; exit 70. */
  internal(error: unknown): Promise<ExitCode>;
  /** Waits for stdout and stderr to drain (bounded), then ends the process. */
  exit(code: number): Promise<never>;
}

/** How long the end of a run waits for a stuck stdout or stderr reader. */
const DRAIN_MS = 5_000;

/** stdout and stderr as a run uses them: stdout failures are remembered, stderr is best effort. */
function processIo(): ProcessIo {
  // Without listeners, an EPIPE (a reader gone: `| head`) would be an uncaught exception.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const put = (stream: NodeJS.WriteStream, text: string) =>
    new Promise<boolean>((resolve) => {
      try {
        stream.write(text, (error) => resolve(!error));
      } catch {
        resolve(false);
      }
    });
  const io: ProcessIo = {
    verbose: false,
    out: undefined,
    jsonFlags: undefined,
    write: (text) => put(process.stdout, text),
    async early(exitCode, code, message, flags = {}) {
      const now = new Date();
      const report = buildReport({
        startedAt: now,
        finishedAt: now,
        dryRun: flags.dryRun === true,
        concurrency: flags.concurrency ?? DEFAULTS.concurrency,
        exitCode,
        error: { code, message },
        patients: [],
      });
      await io.write(formatJson(report));
    },
    async internal(error) {
      try {
        const message = `Internal error (a bug, please report it): ${describeBug(error)}`;
        const stack = error instanceof Error && io.verbose ? `\n${error.stack}` : "";
        if (io.out) io.out.error(message + stack);
        else await put(process.stderr, `ml-scheduler: ${message}${stack}\n`);
        if (io.jsonFlags) await io.early(EXIT.internal, "internal", message, io.jsonFlags);
      } catch {
        // Reporting a bug hit the bug again: the exit code still says what happened.
      }
      return EXIT.internal;
    },
    async exit(code) {
      const drained = Promise.all([put(process.stdout, ""), put(process.stderr, "")]);
      await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
      process.exit(code);
    },
  };
  return io;
}

/** A bug's one line: its name and message, cut short (a message is not ours to trust). */
function describeBug(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const line = text.split("\n")[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}
