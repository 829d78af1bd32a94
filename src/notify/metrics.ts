/**
 * A run as Prometheus text exposition (version 0.0.4): gauges describing the last run, for
 * node_exporter's textfile collector and the Pushgateway. Pure functions: the CLI's notifiers do
 * the IO. No pid or other per-patient label: a series per patient would grow without bound.
 */
import type { SweepEvent } from "../core/events.ts";
import { OUTCOMES, type Report } from "../core/report.ts";
import type { Service } from "../services/http.ts";
import type { BuildInfo } from "./notifier.ts";

/** What the metrics are built from; the CLI's RunEnd has this shape. */
export interface RunMetricsInput {
  startedAt: Date;
  finishedAt: Date;
  exitCode: number;
  /** What ran: the `ml_scheduler_build_info` labels. */
  build: BuildInfo;
  /** Undefined for a run that ended before its sweep started (exit 3, 7): every count is 0. */
  report?: Pick<Report, "counts" | "concurrency" | "adaptive"> | undefined;
}

/** Requests by service, then by status class (`2xx`...; `none` when no answer came). */
export type RequestTally = Record<string, Record<string, number>>;

const SERVICES = ["backend", "ml"] as const satisfies readonly Service[];
/** Always present, zeros included, so a rate or a ratio never meets a missing series. */
const CLASSES = ["2xx", "3xx", "4xx", "5xx", "none"] as const;

/** A tally with every service and class at 0. */
export function emptyTally(): RequestTally {
  return Object.fromEntries(
    SERVICES.map((s) => [s, Object.fromEntries(CLASSES.map((c) => [c, 0]))]),
  );
}

/** Counts one event into the tally: a `request_done` by its service and final status class. */
export function countRequest(tally: RequestTally, event: SweepEvent): void {
  if (event.type !== "request_done") return;
  const byClass = tally[event.service] ?? {};
  tally[event.service] = byClass;
  const statusClass = event.status === null ? "none" : `${Math.trunc(event.status / 100)}xx`;
  byClass[statusClass] = (byClass[statusClass] ?? 0) + 1;
}

/** A completed sweep (exit 0 or 1): failed patients have their own gauge. */
export function succeeded(exitCode: number): boolean {
  return exitCode === 0 || exitCode === 1;
}

/** The `shard` label of a sharded run (its index), for the textfile and the grouping key. */
export function shardLabel(shard: { index: number } | undefined): Record<string, string> {
  return shard === undefined ? {} : { shard: String(shard.index) };
}

/** Epoch seconds of a date, as the exposition's timestamps go. */
export function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

export const LAST_SUCCESS = "ml_scheduler_last_success_timestamp_seconds";

interface Sample {
  labels?: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  samples: Sample[];
}

/**
 * The run's metrics as exposition text. `lastSuccess` (epoch seconds) is left out when
 * undefined: a push for a failed run must not overwrite the last success the Pushgateway holds.
 * `labels` go on every sample (the textfile's `shard`, so that shards' files do not collide).
 */
export function formatMetrics(
  run: RunMetricsInput,
  tally: RequestTally,
  lastSuccess: number | undefined,
  labels: Record<string, string> = {},
): string {
  const { report } = run;
  const counts = report?.counts;
  const families: Family[] = [
    {
      name: "ml_scheduler_build_info",
      help: "The ml-scheduler version and the Node.js version of the last run, as labels; always 1.",
      samples: [{ labels: { version: run.build.version, node: run.build.node }, value: 1 }],
    },
    {
      name: "ml_scheduler_last_run_timestamp_seconds",
      help: "When the last run ended, in Unix seconds.",
      samples: [{ value: epochSeconds(run.finishedAt) }],
    },
    {
      name: LAST_SUCCESS,
      help: "When the last completed sweep (exit 0 or 1) ended, in Unix seconds; 0 until one has.",
      samples: lastSuccess === undefined ? [] : [{ value: lastSuccess }],
    },
    {
      name: "ml_scheduler_run_duration_seconds",
      help: "How long the last run took, in seconds.",
      samples: [{ value: (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000 }],
    },
    {
      name: "ml_scheduler_exit_code",
      help: "The last run's exit code (0 ok, 1 patients failed; see the README's table).",
      samples: [{ value: run.exitCode }],
    },
    {
      name: "ml_scheduler_patients",
      help: "Patients of the last run by outcome.",
      samples: OUTCOMES.map((outcome) => ({ labels: { outcome }, value: counts?.[outcome] ?? 0 })),
    },
    {
      name: "ml_scheduler_concurrency",
      help: "Patients in flight at once at the end of the last sweep: --concurrency, or where auto ended.",
      samples: report ? [{ value: report.adaptive?.final ?? report.concurrency }] : [],
    },
    {
      name: "ml_scheduler_requests",
      help: "Requests of the last run by service and HTTP status class of the final answer (none: no answer), each counted once after its retries.",
      samples: Object.entries(tally).flatMap(([service, byClass]) =>
        Object.entries(byClass).map(([statusClass, value]) => ({
          labels: { service, class: statusClass },
          value,
        })),
      ),
    },
  ];
  return families
    .filter((f) => f.samples.length > 0)
    .map((f) => formatFamily({ ...f, samples: f.samples.map(withLabels(labels)) }))
    .join("");
}

/** A sample with the common labels first. */
function withLabels(common: Record<string, string>): (sample: Sample) => Sample {
  return ({ labels, value }) => ({ labels: { ...common, ...labels }, value });
}

function formatFamily({ name, help, samples }: Family): string {
  const lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} gauge`];
  for (const { labels, value } of samples) {
    const pairs = Object.entries(labels ?? {}).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    lines.push(`${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}`);
  }
  return `${lines.join("\n")}\n`;
}

/** A label value as the exposition format quotes it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes backslash and newline only. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}

/**
 * The last success recorded in a previous metrics file, or undefined when there is none to
 * trust (the line missing, or a value that is not a plain non-negative number).
 */
export function lastSuccessIn(text: string): number | undefined {
  const match = new RegExp(`^${LAST_SUCCESS}(?:\\{[^}\\n]*\\})?[ \\t]+(\\S+)`, "m").exec(text);
  const raw = match?.[1];
  if (raw === undefined || !/^\d+(\.\d+)?(e[+-]?\d+)?$/i.test(raw)) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}
