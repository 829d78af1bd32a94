/**
 * `--metrics-file`: after every sweep whose settings could be read, the run's metrics for
 * node_exporter's textfile collector, replacing the file atomically. A run that did not succeed
 * carries the last success forward from the file it replaces, so an alert on its age works.
 */

import { NOT_REGULAR_HINT, NotRegularFile, writeFileAtomic } from "../host/atomic-write.ts";
import { readBounded } from "../host/read-file.ts";
import {
  countRequest,
  emptyTally,
  epochSeconds,
  formatMetrics,
  lastSuccessIn,
  shardLabel,
  succeeded,
} from "./metrics.ts";
import type { NotifierFactory } from "./notifier.ts";

/** Our own file is a few KiB; anything larger is not ours to parse. */
const MAX_PREVIOUS_BYTES = 64 * 1024;

/** The metrics-file notifier, when `--metrics-file` (or METRICS_FILE) is set. */
export const metricsFileNotifier: NotifierFactory = ({ options, fail }) => {
  const path = options.metricsFile;
  if (typeof path !== "string") return undefined;
  const tally = emptyTally();
  const labels = shardLabel(options.shard);
  return {
    event: (event) => countRequest(tally, event),
    async finish(end) {
      // `check` shares the environment (METRICS_FILE) but is no sweep: the file describes sweeps.
      if (end.command !== "sweep") return;
      const lastSuccess = succeeded(end.exitCode)
        ? epochSeconds(end.finishedAt)
        : previousLastSuccess(path);
      try {
        await writeFileAtomic(path, formatMetrics(end, tally, lastSuccess, labels));
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
function previousLastSuccess(path: string): number {
  // Not through a symlink: the file is replaced only when it is a regular file itself.
  const text = readBounded(path, MAX_PREVIOUS_BYTES, { noFollow: true });
  return typeof text === "string" ? (lastSuccessIn(text) ?? 0) : 0;
}
