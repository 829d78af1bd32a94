/**
 * The benchmark's pacing section (issues 10 and 19): `--concurrency auto` against services shaped
 * four ways (a worker pool that queues, latency that climbs with requests in flight, a service that
 * sheds at once and never slows, the ML server as the limit), each compared with the best fixed
 * concurrency measured beside it, round by round.
 */
import type { Capacity } from "../../test/stand-ins/server.ts";
import { host } from "./services.ts";
import { launch } from "./spawn.ts";
import { median, ratios } from "./table.ts";

export interface PacingShape {
  name: string;
  /** The service with the capacity limit, and how it bears load. */
  limited: "backend" | "ml";
  capacity: Capacity;
  backendMs: number;
  mlMs: number;
  patients: number;
  /** The fixed concurrencies auto is compared with. */
  fixed: number[];
}

/** Latency of the limited service within this multiple of its floor counts as at the floor. */
const LATENCY_BAR = 1.5;
/** The most of a run's requests that may be shed (429 or 503) for it to count, in percent. */
const SHED_BAR = 1;

/** The shapes of issue 19 (the first is issue 10's), at sizes that keep a round near 3 minutes. */
export const FULL_SHAPES: PacingShape[] = [
  {
    name: "worker pool",
    limited: "backend",
    capacity: { shape: "pool", workers: 8 },
    backendMs: 50,
    mlMs: 10,
    patients: 1000,
    fixed: [8, 10, 12, 16],
  },
  {
    name: "latency climbs",
    limited: "backend",
    capacity: { shape: "slows", threshold: 6, extraMs: 15, limit: 12 },
    backendMs: 10,
    mlMs: 10,
    patients: 1200,
    fixed: [7, 8, 9, 10],
  },
  {
    name: "sheds, never slows",
    limited: "backend",
    capacity: { shape: "sheds", threshold: 7, status: 503 },
    backendMs: 12,
    mlMs: 10,
    patients: 1200,
    fixed: [6, 7, 8, 9],
  },
  {
    name: "ML server the limit",
    limited: "ml",
    capacity: { shape: "slows", threshold: 4, extraMs: 12, limit: 10 },
    backendMs: 3,
    mlMs: 12,
    patients: 1200,
    fixed: [4, 5, 6, 8],
  },
];

/** The same shapes at tiny sizes (quick mode: the figures mean nothing). */
export const QUICK_SHAPES: PacingShape[] = FULL_SHAPES.map((shape) => ({
  ...shape,
  backendMs: Math.min(shape.backendMs, 5),
  mlMs: Math.min(shape.mlMs, 5),
  patients: 40,
  fixed: shape.fixed.slice(0, 2),
}));

/** How a shape bears load, in words. */
export function describe(shape: PacingShape): string {
  const service = shape.limited === "ml" ? "ML server" : "backend";
  const base = shape.limited === "ml" ? shape.mlMs : shape.backendMs;
  const other =
    shape.limited === "ml" ? `backend ${shape.backendMs} ms` : `ML server ${shape.mlMs} ms`;
  const c = shape.capacity;
  const how =
    c.shape === "pool"
      ? `${c.workers} workers of ${base} ms, queueing above ${c.workers} in flight, 429 above ${2 * c.workers}`
      : c.shape === "slows"
        ? `${base} ms, each request above ${c.threshold} in flight adds ${c.extraMs} ms, 429 above ${c.limit}`
        : `${base} ms, sheds with ${c.status} (Retry-After 1) above ${c.threshold} in flight, never slows`;
  return `${shape.name}: ${service} ${how}; ${other}; ${shape.patients} patients; fixed ${shape.fixed.join(", ")}`;
}

interface PacingRun {
  /** Patients written or found unchanged per second, from the first request to the exit. */
  throughput: number;
  /** Requests the limited service shed over those both services received, in percent. */
  shed: number;
  /** The limited service's median time over the requests it served (ms). */
  medianMs: number;
  /** The run's exit code, and patients that did not end well. */
  code: number | null;
  failed: number;
}

export interface PacingContext {
  bin: string;
  cwd: string;
  env: () => Record<string, string>;
  say: (message: string) => void;
}

/** One sweep against a shaped service; a patient may fail here (shed too often). */
async function pacingRun(
  shape: PacingShape,
  concurrency: string,
  ctx: PacingContext,
): Promise<PacingRun> {
  const { patients, backendMs, mlMs } = shape;
  const hosted = await host({
    patients,
    backendMs,
    mlMs,
    limited: { service: shape.limited, capacity: shape.capacity },
  });
  try {
    const run = await launch({
      command: [process.execPath, "--", ctx.bin, "--json", "--concurrency", concurrency],
      env: { ...ctx.env(), ...hosted.env },
      cwd: ctx.cwd,
      timeoutMs: 60_000 + patients * 100,
    });
    const firstRequestAt = hosted.firstRequestAt();
    let done: number | undefined;
    try {
      const { counts } = JSON.parse(run.stdout);
      done = counts.selected - counts.failed - counts.interrupted - counts.not_started;
    } catch {}
    if (done === undefined || firstRequestAt === undefined || (run.code !== 0 && run.code !== 1)) {
      throw new Error(`pacing at ${concurrency}: exit ${run.code ?? run.signal}, no report`);
    }
    const { backend, ml } = hosted.counts();
    const served = hosted.servedMs();
    return {
      throughput: done / ((run.exitedAt - firstRequestAt) / 1000),
      shed: (hosted.overloaded() / (backend + ml)) * 100,
      medianMs: served.length > 0 ? median(served) : 0,
      code: run.code,
      failed: patients - done,
    };
  } finally {
    await hosted.close();
  }
}

export interface ShapeResult {
  shape: PacingShape;
  /** The best fixed concurrency, and whether it kept the bars (else: the fastest of them). */
  best: number;
  bestKept: boolean;
  bestRuns: PacingRun[];
  auto: PacingRun[];
  /** auto / best fixed, round by round. */
  ratio: number[];
  /** Every fixed setting's medians: throughput, latency, shed. */
  settings: Array<{ concurrency: number; throughput: number; medianMs: number; shed: number }>;
}

const mid = (runs: PacingRun[], key: "throughput" | "shed" | "medianMs") =>
  median(runs.map((r) => r[key]));

/** Every shape, every fixed setting and auto once per round (a busy spell hits them alike). */
export async function measureShapes(
  shapes: PacingShape[],
  runs: number,
  ctx: PacingContext,
): Promise<ShapeResult[]> {
  const byFixed = shapes.map((s) => new Map<number, PacingRun[]>(s.fixed.map((c) => [c, []])));
  const auto: PacingRun[][] = shapes.map(() => []);
  for (let round = 1; round <= runs; round++) {
    for (const [i, shape] of shapes.entries()) {
      for (const concurrency of shape.fixed) {
        ctx.say(`pacing, ${shape.name}, concurrency ${concurrency}, run ${round}/${runs}`);
        byFixed[i]?.get(concurrency)?.push(await pacingRun(shape, String(concurrency), ctx));
      }
      ctx.say(`pacing, ${shape.name}, concurrency auto, run ${round}/${runs}`);
      auto[i]?.push(await pacingRun(shape, "auto", ctx));
    }
  }
  return shapes.map((shape, i) => {
    const floor = shape.limited === "ml" ? shape.mlMs : shape.backendMs;
    const settings = [...(byFixed[i] ?? [])];
    // The best fixed is judged by medians: the fastest of each round would be the luckiest run.
    const kept = settings.filter(
      ([, r]) => mid(r, "medianMs") <= LATENCY_BAR * floor && mid(r, "shed") <= SHED_BAR,
    );
    const pool = kept.length > 0 ? kept : settings;
    const [best, bestRuns] = pool.reduce((a, b) =>
      mid(b[1], "throughput") > mid(a[1], "throughput") ? b : a,
    );
    const autoRuns = auto[i] ?? [];
    return {
      shape,
      best,
      bestKept: kept.length > 0,
      bestRuns,
      auto: autoRuns,
      ratio: ratios(
        autoRuns.map((r) => r.throughput),
        bestRuns.map((r) => r.throughput),
      ),
      settings: settings.map(([concurrency, r]) => ({
        concurrency,
        throughput: mid(r, "throughput"),
        medianMs: mid(r, "medianMs"),
        shed: mid(r, "shed"),
      })),
    };
  });
}

const spread = (values: number[], digits: number, unit = "") => {
  const f = (v: number) => v.toFixed(digits);
  return `${f(median(values))}${unit} (${f(Math.min(...values))}-${f(Math.max(...values))})`;
};

/** One line per shape: best fixed, auto, the ratio, auto's shed share, the limiting latency. */
export function formatShapes(results: ShapeResult[]): string {
  const header = [
    "shape",
    "best fixed: patients/s",
    "auto: patients/s",
    "auto / best",
    "auto's shed",
    "limited service's median ms (floor): best / auto",
  ];
  const lines = results.map((r) => {
    const floor = r.shape.limited === "ml" ? r.shape.mlMs : r.shape.backendMs;
    const failed = r.auto.filter((a) => a.code !== 0).length;
    return [
      r.shape.name,
      `${r.best}${r.bestKept ? "" : "*"}: ${spread(
        r.bestRuns.map((b) => b.throughput),
        1,
      )}`,
      `${spread(
        r.auto.map((a) => a.throughput),
        1,
      )}${failed > 0 ? ` (${failed} runs exited non-zero)` : ""}`,
      spread(r.ratio, 2, "x"),
      spread(
        r.auto.map((a) => a.shed),
        2,
        "%",
      ),
      `(${floor}) ${mid(r.bestRuns, "medianMs").toFixed(1)} / ${mid(r.auto, "medianMs").toFixed(1)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const pad = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [pad(header), pad(widths.map((w) => "-".repeat(w))), ...lines.map(pad)].join("\n");
}

/** What was measured, and each fixed setting's medians (patients/s, median ms, shed %). */
export function pacingNote(results: ShapeResult[]): string {
  const shapes = results.map((r) => {
    const settings = r.settings
      .map(
        (s) =>
          `${s.concurrency}: ${s.throughput.toFixed(1)}/s, ${s.medianMs.toFixed(1)} ms, ${s.shed.toFixed(2)}%`,
      )
      .join("; ");
    return `${describe(r.shape)} (${settings})`;
  });
  return `pacing (issues 10 and 19): each round runs every shape's fixed concurrencies and auto in turn. Best fixed = the fixed concurrency with the highest median throughput among those whose limited service's median latency stays within ${LATENCY_BAR}x its floor (its latency with nothing else in flight) and whose shed share is at most ${SHED_BAR}% (* = none did: the fastest); throughput = patients written or unchanged / (first request to exit); auto / best fixed is taken round by round; shed = the limited service's 429s and 503s over every request both services received; figures are medians of the rounds (range). Shapes: ${shapes.join(" | ")}.`;
}
