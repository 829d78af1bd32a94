/**
 * Where a run speaks besides stdout: its one logger on stderr (human or JSON lines, as the
 * settings, the flag or the environment ask) and the notifiers whose options are set.
 */
import type { Options } from "../config/options.ts";
import { metricsFileNotifier } from "../notify/metrics-file.ts";
import type { Notifier, NotifierFactory } from "../notify/notifier.ts";
import { pingNotifier } from "../notify/ping.ts";
import { pushgatewayNotifier } from "../notify/pushgateway.ts";
import { createOutput } from "../output/human.ts";
import { createJsonLog } from "../output/json-log.ts";
import type { Output } from "../output/logger.ts";
import type { ProcessIo } from "./io.ts";
import type { CliFlags } from "./program.ts";

/** The notifiers, each built only when its option is set. A new one is a module under notify/. */
const NOTIFIERS: ReadonlyArray<[option: keyof Options, factory: NotifierFactory]> = [
  ["metricsFile", metricsFileNotifier],
  ["pushgateway", pushgatewayNotifier],
  ["pingUrl", pingNotifier],
];

/**
 * The run's one logger, once its format is known: the settings' (flag, environment, env file),
 * else, when they cannot be read, the flag's or a valid LOG_FORMAT in the environment.
 */
export function openOutput(io: ProcessIo, flags: CliFlags, options: Options | undefined): Output {
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

/** Builds the notifiers whose options are set; their failures are said at error level. */
export function createNotifiers(
  options: Options,
  fail: (message: string) => void,
  signal: AbortSignal,
): Notifier[] {
  const wanted = NOTIFIERS.filter(([option]) => options[option] !== undefined);
  return wanted.flatMap(([, factory]) => factory({ options, fail, signal }) ?? []);
}

type LogFormat = "human" | "json";

/** The first valid log format of these (a flag's, then the environment's), else human. */
export function logFormat(...candidates: unknown[]): LogFormat {
  const valid = (v: unknown): v is LogFormat => v === "human" || v === "json";
  return candidates.find(valid) ?? "human";
}
