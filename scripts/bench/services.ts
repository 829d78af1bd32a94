/**
 * The stand-in backend and ML server for one measured run, hosted in the benchmark's own process
 * (the sweep is a child, so their CPU is never counted as the tool's). They count every request
 * as it arrives and note when the first one, and the first patient request, came in.
 */
import { type Backend, startBackend } from "../../test/stand-ins/backend.ts";
import { type Ml, startMl } from "../../test/stand-ins/ml.ts";
import { DEMO_USER, makePatients } from "../../test/stand-ins/seed.ts";
import type { Capacity, RecordedRequest, StandIn } from "../../test/stand-ins/server.ts";

export interface HostedOptions {
  patients: number;
  /** Latency the backend adds to each request (ms). */
  backendMs: number;
  /** Latency the ML server adds to each request (ms). */
  mlMs: number;
  /**
   * The one service with a capacity limit, and its shape (see `Capacity`; a number is a pool of
   * that many workers): the proofs of `--concurrency auto` (issues 10 and 19). Unset: no limit.
   */
  limited?: { service: "backend" | "ml"; capacity: number | Capacity } | undefined;
}

export interface Hosted {
  /** PATIENT_SERVER, ML_SERVER and the credentials, for the child's environment. */
  env: Record<string, string>;
  backendUrl: string;
  /** Requests each service received so far. */
  counts(): { backend: number; ml: number };
  /** Requests the limited service shed (429 or 503) because it was over its capacity. */
  overloaded(): number;
  /** How long the limited service took over each request it served (ms, arrival to answer). */
  servedMs(): number[];
  /** performance.now() when the first request of the run arrived (the login). */
  firstRequestAt(): number | undefined;
  /** performance.now() when the first patient request (fetchVitals) arrived. */
  firstVitalsAt(): number | undefined;
  /** Forgets the first request and the first patient request: the next run's are noted anew. */
  restart(): void;
  close(): Promise<void>;
}

/** How often the stand-ins' request logs are emptied: 100,000 patients would keep ~300 MB. */
const DRAIN_MS = 250;

/** Starts both stand-ins with `patients` made-up patients (statuses fresh: a first sweep). */
export async function host(options: HostedOptions): Promise<Hosted> {
  const backend = await startBackend({
    users: { [DEMO_USER.username]: DEMO_USER.password },
    patients: makePatients(options.patients),
  });
  const ml = await startMl();
  backend.latencyMs = options.backendMs;
  ml.latencyMs = options.mlMs;
  const served: number[] = [];
  const limited = options.limited?.service === "ml" ? ml : backend;
  if (options.limited) {
    limited.capacity = options.limited.capacity;
    limited.onServed = (_request, ms) => served.push(ms);
  }
  const counted = { backend: 0, ml: 0 };
  let firstRequest: number | undefined;
  let firstVitals: number | undefined;
  // A hold that never holds: the stand-ins ask every hold's matcher as each request arrives,
  // which is the one synchronous look at arrival they offer.
  observe(backend, (r) => {
    const now = performance.now();
    counted.backend++;
    firstRequest ??= now;
    if (r.path === "/api/patient/fetchVitals") firstVitals ??= now;
  });
  observe(ml, () => {
    counted.ml++;
    firstRequest ??= performance.now();
  });
  const drain = setInterval(() => forget(backend, ml), DRAIN_MS);
  drain.unref();
  return {
    env: {
      PATIENT_SERVER: backend.url,
      ML_SERVER: ml.url,
      BACKEND_USERNAME: DEMO_USER.username,
      BACKEND_PASSWORD: DEMO_USER.password,
    },
    backendUrl: backend.url,
    counts: () => ({ ...counted }),
    overloaded: () => limited.overloaded,
    servedMs: () => [...served],
    firstRequestAt: () => firstRequest,
    firstVitalsAt: () => firstVitals,
    restart: () => {
      firstRequest = undefined;
      firstVitals = undefined;
    },
    close: async () => {
      clearInterval(drain);
      forget(backend, ml);
      await Promise.all([backend.close(), ml.close()]);
    },
  };
}

function observe(service: StandIn, see: (request: RecordedRequest) => void): void {
  service.hold((request) => {
    see(request);
    return false;
  });
}

/** Empties what the stand-ins remember of past requests; the benchmark needs none of it. */
function forget(backend: Backend, ml: Ml): void {
  backend.requests.length = 0;
  backend.writes.length = 0;
  ml.requests.length = 0;
  ml.predictions.length = 0;
}
