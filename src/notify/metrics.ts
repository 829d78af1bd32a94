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
  report?: Pick<Report, "counts" | "concurrency" | "adaptive" | "predictions"> | undefined;
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

/** Where `--ping-url` and `--metrics-file` take the shard's index. */
export const SHARD_PLACEHOLDER = "{shard}";

/**
 * `text` with `{shard}` replaced by the shard's index; undefined when it has the placeholder but
 * the run has no shard (the caller says so and leaves that channel out).
 */
export function withShard(text: string, shard: { index: number } | undefined): string | undefined {
  if (!text.includes(SHARD_PLACEHOLDER)) return text;
  return shard === undefined ? undefined : text.replaceAll(SHARD_PLACEHOLDER, String(shard.index));
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
      name: "ml_scheduler_predictions",
      help: "Statuses of the last run by source: ml (asked of the ML server) or reused (a prediction remembered for the same vital records).",
      samples: [
        { labels: { source: "ml" }, value: report?.predictions.made ?? 0 },
        { labels: { source: "reused" }, value: report?.predictions.reused ?? 0 },
      ],
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
 * The last success a previous metrics file records for this label set (the run's own: a shard's
 * `{shard="i"}`, or none), or undefined when there is none to trust: no sample with exactly these
 * labels (another shard's time is not this shard's), or a value that is not a plain non-negative
 * number.
 */
export function lastSuccessIn(
  text: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = labelKey(labels);
  const line = new RegExp(`^${LAST_SUCCESS}(?:\\{([^}\\n]*)\\})?[ \\t]+(\\S+)`, "gm");
  for (const match of text.matchAll(line)) {
    const found = parseLabels(match[1] ?? "");
    if (found === undefined || labelKey(found) !== wanted) continue;
    const raw = match[2] ?? "";
    if (!/^\d+(\.\d+)?(e[+-]?\d+)?$/i.test(raw)) return undefined;
    const value = Number(raw);
    return Number.isFinite(value) ? value : undefined;
  }
  return undefined;
}

/** A label set in one comparable form: sorted pairs. */
function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).toSorted(([a], [b]) => (a < b ? -1 : 1)));
}

/** `a="x",b="y"` (as formatFamily writes it) as an object; undefined for text it did not write. */
function parseLabels(body: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(?:,|$)/y;
  for (let at = 0; at < body.length; at = pair.lastIndex) {
    pair.lastIndex = at;
    const m = pair.exec(body);
    if (!m) return undefined;
    labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
  }
  return labels;
}
