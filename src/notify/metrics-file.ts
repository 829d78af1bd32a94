/**
 * `--metrics-file`: after every sweep whose settings could be read, the run's metrics for
 * node_exporter's textfile collector, replacing the file atomically. A run that did not succeed
 * carries its own last success (its label set's: a shard's, not another shard's) forward from the
 * file it replaces, so an alert on its age works. `{shard}` in the path gives each shard a file.
 */

import { NOT_REGULAR_HINT, NotRegularFile, writeFileAtomic } from "../host/atomic-write.ts";
import { readBounded } from "../host/read-file.ts";
import {
  countRequest,
  emptyTally,
  epochSeconds,
  formatMetrics,
  lastSuccessIn,
  SHARD_PLACEHOLDER,
  shardLabel,
  succeeded,
  withShard,
} from "./metrics.ts";
import type { NotifierFactory } from "./notifier.ts";

/** Readable by everyone (node_exporter), writable by the run alone: no secret is in it. */
export const METRICS_FILE_MODE = 0o644;

/** Our own file is a few KiB; anything larger is not ours to parse. */
const MAX_PREVIOUS_BYTES = 64 * 1024;

/** The metrics-file notifier, when `--metrics-file` (or METRICS_FILE) is set. */
export const metricsFileNotifier: NotifierFactory = ({ options, fail }) => {
  const given = options.metricsFile;
  if (typeof given !== "string") return undefined;
  const path = withShard(given, options.shard);
  if (path === undefined) {
    fail(
      `--metrics-file has ${SHARD_PLACEHOLDER} but this run has no shard: no metrics file is written; give --shard or --shards, or leave ${SHARD_PLACEHOLDER} out.`,
    );
    return undefined;
  }
  const tally = emptyTally();
  const labels = shardLabel(options.shard);
  return {
    event: (event) => countRequest(tally, event),
    async finish(end) {
      // `check` shares the environment (METRICS_FILE) but is no sweep: the file describes sweeps.
      if (end.command !== "sweep") return;
      const lastSuccess = succeeded(end.exitCode)
        ? epochSeconds(end.finishedAt)
        : previousLastSuccess(path, labels);
      try {
        // 0644 whatever the umask: node_exporter runs as another user (UMask=0027 in the unit).
        await writeFileAtomic(path, formatMetrics(end, tally, lastSuccess, labels), {
          mode: METRICS_FILE_MODE,
        });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
        fail(
          error instanceof NotRegularFile
            ? `The metrics file ${path} was not written: ${NOT_REGULAR_HINT}. The exit code is unchanged.`
            : `The metrics file ${path} could not be written (${code}): check that its directory exists and is writable. The exit code is unchanged.`,
        );
      }
    },
  };
};

/**
 * The last success the existing file records; 0 when there is none (no file yet, or one that is
 * not a small regular file), which an alert on its age treats as "never".
 */
function previousLastSuccess(path: string, labels: Record<string, string>): number {
  // Not through a symlink: the file is replaced only when it is a regular file itself.
  const text = readBounded(path, MAX_PREVIOUS_BYTES, { noFollow: true });
  return typeof text === "string" ? (lastSuccessIn(text, labels) ?? 0) : 0;
}
