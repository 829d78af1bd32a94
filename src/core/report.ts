/**
 * The sweep's report: one entry per patient and counts that add up. Patients appear by pid and
 * status ids only; output/report.ts prints it. The zod schema is the one source of its type
 * and of report.schema.json (`npm run report-schema` regenerates that file); strict objects, as
 * the file allows no other property.
 */
import { z } from "zod";
import { EXIT_CODES } from "../errors.ts";
import { REQUEST_REASONS } from "../services/reasons.ts";

export const Outcome = z.enum([
  "updated",
  "would_update",
  "unchanged",
  "skipped",
  "failed",
  "interrupted",
  "not_started",
]);
export type Outcome = z.infer<typeof Outcome>;
export const OUTCOMES = Outcome.options;

/** Where a patient's handling stood when it ended. */
export const Stage = z.enum(["select", "vitals", "predict", "update"]);
export type Stage = z.infer<typeof Stage>;

/**
 * Every reason a patient can end with: a request's (services/failure.ts), the patient list's
 * per-record verdicts, a too-short vital history, `--max-vitals-age`'s verdicts and a failed
 * re-login.
 */
export const REASONS = [
  ...REQUEST_REASONS,
  "insufficient_vitals",
  "stale_vitals",
  "no_vitals_timestamp",
  "invalid_vitals",
  "not_found",
  "invalid_record",
  "duplicate_record",
  "auth",
  "relogin_failed",
] as const;

/** `http_<status>`: the JSON Schema's pattern and the parser's check. */
const HTTP_REASON = /^http_[1-9][0-9]{2}$/;

/** A stable snake_case code; `http_<status>` for an answer that is not 2xx. */
export const Reason = z.union([
  z.enum(REASONS),
  // A template literal, so TypeScript holds every producer to `http_${number}` too; its own
  // pattern would admit `http_-1`, hence the refinement and the pattern given to the schema.
  z
    .templateLiteral(["http_", z.number().int()])
    .refine((v) => HTTP_REASON.test(v))
    .meta({ pattern: HTTP_REASON.source }),
]);
export type Reason = z.infer<typeof Reason>;

/** The exit code's name (src/errors.ts), as a SchedulerError's `code`. */
export const ErrorCode = z.enum(EXIT_CODES.map((e) => e.name));

/** What ended the run before or outside the patients; null when nothing did. */
export const ReportError = z
  .strictObject({
    code: ErrorCode.meta({ description: "The exit code's name: usage, config, deadline, ..." }),
    message: z.string().meta({ description: "One line (or a few) saying what to do next." }),
  })
  .nullable();

const Count = z.number().int().nonnegative();
const StatusId = z.number().int().positive();

/** What happened to one patient. `from` and `to` are status ids. */
export const PatientResult = z.strictObject({
  pid: z.number().int().positive().nullable().meta({
    description: "The patient's id; null for a record of the patient list without a usable pid.",
  }),
  outcome: Outcome,
  from: StatusId.nullable().meta({ description: "Status id before the sweep (1, 9 or 10)." }),
  to: StatusId.nullable().meta({ description: "Status id the ML server predicted." }),
  stage: Stage.nullable(),
  reason: Reason.nullable().meta({
    description: "Why the patient did not end updated or unchanged.",
  }),
  detail: z.string().nullable().meta({
    description: "One line: route, HTTP status, failing field paths; never a received value.",
  }),
});
export type PatientResult = z.infer<typeof PatientResult>;

/** `selected`, then one count per outcome; `selected` is their sum. */
export const Counts = z.strictObject({
  selected: Count,
  ...(Object.fromEntries(OUTCOMES.map((o) => [o, Count])) as Record<Outcome, typeof Count>),
});
export type Counts = z.infer<typeof Counts>;

/** The concurrency `--concurrency auto` used: its lowest, its highest, and where it ended. */
export const ConcurrencyRange = z.strictObject({
  min: z.number().int().positive(),
  max: z.number().int().positive(),
  final: z.number().int().positive(),
});
export type ConcurrencyRange = z.infer<typeof ConcurrencyRange>;

/** Where the statuses of the run came from: the ML server, or predictions remembered by earlier runs. */
export const Predictions = z.strictObject({
  made: Count.meta({ description: "Predictions the ML server answered in this run." }),
  reused: Count.meta({
    description:
      "Statuses taken from a prediction an earlier run remembered for exactly the same vital records (--state-dir, --reuse-for), instead of asking the ML server again.",
  }),
});
export type Predictions = z.infer<typeof Predictions>;

/** The report as `--json` prints it (version 2: `predictions` and the vitals-age reasons). */
export const Report = z
  .strictObject({
    version: z.literal(2),
    runId: z.string().min(1).nullable().meta({
      description:
        "The run's id, as in its log lines and pings: a random UUID from the CLI; null when a programmatic caller gave none.",
    }),
    schedulerVersion: z.string().min(1).nullable().meta({
      description:
        "The version of ml-scheduler that ran (its package.json's); null when a programmatic caller gave none.",
    }),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    durationMs: z.number().int().nonnegative(),
    dryRun: z.boolean(),
    concurrency: z.number().int().positive().meta({
      description: "Patients handled at the same time: the configured number, or auto's max.",
    }),
    adaptive: ConcurrencyRange.nullable().meta({
      description:
        "With --concurrency auto, the concurrency it used: lowest, highest and last; null with a fixed number.",
    }),
    offset: z.number().int().nonnegative().meta({
      description:
        "Index in pid order at which the selected patients started (a rotating offset kept with --state-dir, else random); 0 when not rotated.",
    }),
    shard: z
      .strictObject({
        index: z.number().int().nonnegative(),
        count: z.number().int().positive(),
      })
      .nullable()
      .meta({
        description:
          "The part of the patient list this run handled (pid mod count == index; records without a pid in shard 0); null when not sharded.",
      }),
    exitCode: z.literal(EXIT_CODES.map((e) => e.code)),
    error: ReportError,
    counts: Counts,
    predictions: Predictions,
    patients: z.array(PatientResult).meta({ description: "Sorted by pid; null pids last." }),
  })
  .meta({
    title: "ml-scheduler report",
    description:
      "The one JSON document `ml-scheduler --json` prints on stdout, after a sweep or when the run ended before it (then `patients` is empty and `error` says why).",
  });
export type Report = z.infer<typeof Report>;

export interface ReportInput {
  /** The run's id (a random UUID from the CLI), null when the caller gave none. */
  runId?: string | null | undefined;
  /** The version of what ran (the CLI's package version), null when the caller gave none. */
  schedulerVersion?: string | null | undefined;
  startedAt: Date;
  finishedAt: Date;
  dryRun: boolean;
  concurrency: number;
  adaptive?: ConcurrencyRange | null | undefined;
  /** Where the selected list started; 0 when it was not rotated or never fetched. */
  offset?: number | undefined;
  /** This run's shard; undefined or null when not sharded. */
  shard?: Report["shard"] | undefined;
  exitCode: Report["exitCode"];
  error: Report["error"];
  patients: PatientResult[];
  /** Where the statuses came from; undefined: no prediction was made or reused. */
  predictions?: Predictions | undefined;
}

export function buildReport(input: ReportInput): Report {
  const counts = { selected: input.patients.length } as Counts;
  for (const o of OUTCOMES) counts[o] = 0;
  for (const p of input.patients) counts[p.outcome]++;
  return {
    version: 2,
    runId: input.runId ?? null,
    schedulerVersion: input.schedulerVersion ?? null,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationMs: input.finishedAt.getTime() - input.startedAt.getTime(),
    dryRun: input.dryRun,
    concurrency: input.concurrency,
    adaptive: input.adaptive ?? null,
    offset: input.offset ?? 0,
    shard: input.shard ? { index: input.shard.index, count: input.shard.count } : null,
    exitCode: input.exitCode,
    error: input.error,
    counts,
    predictions: input.predictions ?? { made: 0, reused: 0 },
    patients: input.patients.toSorted(byPid),
  };
}

function byPid(a: PatientResult, b: PatientResult): number {
  return (a.pid ?? Number.MAX_SAFE_INTEGER) - (b.pid ?? Number.MAX_SAFE_INTEGER);
}
