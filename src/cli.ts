/**
 * The command line: the only module that touches the process (argv, env, signals, stdout, exit
 * code). Heavy modules load only once a sweep runs, so `--help` and `--version` start fast.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { CLI_OPTIONS } from "./cli-options.ts";
import type { ConfigFlags } from "./config.ts";
import { DEFAULTS } from "./defaults.ts";
import { EXIT, EXIT_CODES, type ExitCode, SchedulerError } from "./errors.ts";
import type { Lock } from "./lock.ts";
import { buildReport, formatHuman, formatJson } from "./report.ts";

/** Commander's parsed options: the config flags plus those only the CLI acts on. */
interface CliFlags extends ConfigFlags {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  grace?: number;
  lock?: string;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
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
    `\nEnvironment: PATIENT_SERVER, ML_SERVER, BACKEND_USERNAME, BACKEND_PASSWORD, BACKEND_TOKEN (each also as *_FILE).\n\nExit codes:\n${table}\n`,
  );
  return program;
}

/** Runs the CLI; sets process.exitCode and returns, never calls process.exit. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    program.parse(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    const shown = error.code === "commander.helpDisplayed" || error.code === "commander.version";
    process.exitCode = shown ? 0 : EXIT.usage;
    if (!shown && argv.includes("--json")) printEarly(EXIT.usage, "usage", error.message);
    return;
  }
  const flags = program.opts<CliFlags>();
  const json = flags.json === true;

  const [{ createOutput }, { resolveConfig }, { runSweep }, { acquireLock }] = await Promise.all([
    import("./output.ts"),
    import("./config.ts"),
    import("./sweep.ts"),
    import("./lock.ts"),
  ]);
  const out = createOutput({
    verbose: flags.verbose === true,
    quiet: flags.quiet === true,
    stream: process.stderr,
  });

  /** Error codes already logged, so the end of the run does not repeat them. */
  const announced = new Set<string>();
  const say = (code: string) => (code === "auth" || code === "upstream" ? out.error : out.warn);
  const stop = new AbortController();

  let config: ReturnType<typeof resolveConfig>;
  let lock: Lock | undefined;
  try {
    config = resolveConfig({ flags, env: process.env, cwd: process.cwd() });
    if (flags.lock !== undefined) {
      // Another run took the lock over: no new patient starts, in-flight ones finish, exit 7.
      const onLost = (error: SchedulerError) => {
        announced.add(error.code);
        out.warn(error.message);
        stop.abort(error);
      };
      lock = acquireLock(flags.lock, { onLost });
    }
  } catch (error) {
    if (!(error instanceof SchedulerError)) throw error;
    for (const line of error.message.split("\n")) out.error(line);
    process.exitCode = error.exitCode;
    if (json) printEarly(error.exitCode, error.code, error.message, flags);
    return;
  }

  const abort = new AbortController();
  const graceSeconds = flags.grace ?? DEFAULTS.graceSeconds;
  let graceTimer: NodeJS.Timeout | undefined;
  const onSignal = (name: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      out.warn(`${name} again: aborting in-flight requests now.`);
      abort.abort(stop.signal.reason);
      return;
    }
    const reason = new SchedulerError(
      name === "SIGINT" ? "sigint" : "sigterm",
      `Stopped by ${name}.`,
    );
    announced.add(reason.code);
    stop.abort(reason);
    out.warn(`${name}: no new patient starts; in-flight patients get ${graceSeconds}s to finish.`);
    graceTimer = setTimeout(() => abort.abort(stop.signal.reason), graceSeconds * 1000);
    graceTimer.unref();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    const report = await runSweep(config, {
      signal: abort.signal,
      stop: stop.signal,
      onStart: (total) => out.start(total),
      onPatientDone: (result) => out.patientDone(result),
      onInfo: (message) => out.info(message),
      onStop: (reason) => {
        announced.add(reason.code);
        say(reason.code)(reason.message);
      },
    });
    out.finish();
    // Whatever ended the run and was not said when it happened is said now.
    if (report.error && !announced.has(report.error.code))
      say(report.error.code)(report.error.message);
    process.stdout.write(json ? formatJson(report) : formatHuman(report));
    process.exitCode = report.exitCode;
  } finally {
    lock?.release();
    clearTimeout(graceTimer);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

/** The JSON report of a run that ended before any sweep started (exit 2 or 3). */
function printEarly(exitCode: ExitCode, code: string, message: string, flags: CliFlags = {}): void {
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
  process.stdout.write(formatJson(report));
}
