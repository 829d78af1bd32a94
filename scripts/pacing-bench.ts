// `node scripts/pacing-bench.ts [patients] [repeats] [settings] [k]`: issue 10's acceptance for
// --concurrency auto. The real bin sweeps a capacity-limited stand-in backend (k workers, default 8,
// of SERVICE_MS each: queued above k in flight, 429 above 2k) once per fixed concurrency and once
// with `auto` (settings: a comma-separated subset, e.g. `16,auto`), going round them `repeats`
// times so a busy spell on the machine hits them alike. It prints each run's throughput and share
// of 429s, the medians, then auto's throughput over the best fixed one's.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startBackend } from "../test/stand-ins/backend.ts";
import { startMl } from "../test/stand-ins/ml.ts";
import { DEMO_USER, makePatients } from "../test/stand-ins/seed.ts";

const PATIENTS = Number(process.argv[2] ?? 3000);
const REPEATS = Number(process.argv[3] ?? 1);
const CAPACITY = Number(process.argv[5] ?? 8);
const SERVICE_MS = 50;
const ML_MS = 10;
const FIXED = [4, 8, 12, 16, 24, 32, 48, 64];

interface Run {
  label: string;
  patientsPerSecond: number;
  requests: number;
  tooMany: number;
  adaptive: { min: number; max: number; final: number } | null;
}

const bin = fileURLToPath(new URL("../bin/ml-scheduler.js", import.meta.url));

async function sweep(concurrency: string): Promise<Run> {
  const backend = await startBackend({
    users: { [DEMO_USER.username]: DEMO_USER.password },
    patients: makePatients(PATIENTS),
  });
  const ml = await startMl();
  backend.capacity = CAPACITY;
  backend.latencyMs = SERVICE_MS;
  ml.latencyMs = ML_MS;
  try {
    const env = {
      PATH: process.env.PATH ?? "",
      PATIENT_SERVER: backend.url,
      ML_SERVER: ml.url,
      BACKEND_USERNAME: DEMO_USER.username,
      BACKEND_PASSWORD: DEMO_USER.password,
    };
    const child = spawn(
      process.execPath,
      ["--", bin, "--json", "--quiet", "--concurrency", concurrency],
      {
        env,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    await new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", resolve);
    });
    const report = JSON.parse(stdout);
    const done = report.counts.selected - report.counts.failed - report.counts.not_started;
    return {
      label: concurrency,
      patientsPerSecond: done / (report.durationMs / 1000),
      requests: backend.requests.length + ml.requests.length,
      tooMany: backend.overloaded,
      adaptive: report.adaptive,
    };
  } finally {
    await Promise.all([backend.close(), ml.close()]);
  }
}

const line = (r: Run) => {
  const share = ((100 * r.tooMany) / r.requests).toFixed(2);
  const range = r.adaptive
    ? `  used ${r.adaptive.min}..${r.adaptive.max}, final ${r.adaptive.final}`
    : "";
  return `${r.label.padStart(8)}  ${r.patientsPerSecond.toFixed(1).padStart(7)} patients/s  ${String(r.requests).padStart(6)} requests  ${share.padStart(5)}% 429${range}`;
};

process.stdout.write(
  `${PATIENTS} patients; backend: ${CAPACITY} workers of ${SERVICE_MS} ms, queued above ${CAPACITY} in flight, 429 above ${2 * CAPACITY}; ML ${ML_MS} ms; median of ${REPEATS}\n`,
);
const labels = process.argv[4]?.split(",") ?? [...FIXED.map(String), "auto"];
const runs = new Map<string, Run[]>(labels.map((l) => [l, []]));
for (let i = 0; i < REPEATS; i++) {
  for (const label of labels) {
    const run = await sweep(label);
    runs.get(label)?.push(run);
    process.stderr.write(`${line(run)}\n`);
  }
}
/** The run with the median throughput. */
const median = (label: string): Run => {
  const sorted = (runs.get(label) ?? []).toSorted(
    (a, b) => a.patientsPerSecond - b.patientsPerSecond,
  );
  return sorted[Math.floor(sorted.length / 2)] as Run;
};
const fixed = labels.filter((l) => l !== "auto").map(median);
const auto = median("auto");
process.stdout.write(`medians:\n${[...fixed, auto].map(line).join("\n")}\n`);
const best = fixed.reduce((a, b) => (b.patientsPerSecond > a.patientsPerSecond ? b : a));
const ratio = auto.patientsPerSecond / best.patientsPerSecond;
const share = auto.tooMany / auto.requests;
process.stdout.write(
  `auto: ${ratio.toFixed(2)}x the best fixed concurrency (${best.label}); ${(100 * share).toFixed(2)}% of its requests answered 429 (acceptance: >= 0.85x, <= 1%): ${ratio >= 0.85 && share <= 0.01 ? "met" : "NOT met"}\n`,
);
