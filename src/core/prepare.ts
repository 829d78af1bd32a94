/**
 * Everything a sweep does before its first patient: the login, the ML server's check and the
 * patient list, each a failure of the run (exit 4 or 5) rather than of a patient.
 */
import { UpstreamError } from "../errors.ts";
import type { BackendClient } from "../services/backend.ts";
import { RequestFailure } from "../services/failure.ts";
import type { MlClient } from "../services/ml.ts";
import type { SweepEvent } from "./events.ts";
import { createListCheck, type Selection, type Shard } from "./select.ts";
import type { Stops } from "./stops.ts";

/** What of the sweep's config selection needs (see SweepConfig). */
export interface SelectionConfig {
  patients?: number[] | undefined;
  shard?: Shard | undefined;
}

/**
 * Everything before the first patient: a failure here ends the run with exit 4 or 5, and a stop
 * here (a signal, the deadline) ends it before the patient list is fetched. The list is reduced
 * to pids and statuses as it is parsed: its raw records (names included) never outlive it.
 */
export async function prepare(
  backend: BackendClient,
  ml: MlClient,
  config: SelectionConfig,
  emit: (event: SweepEvent) => void,
  stops: Stops,
): Promise<Selection> {
  /** A failed request: the stop that aborted it if any, else exit 5; anything else surfaces. */
  const upstream = (what: string) => (error: unknown) => {
    if (stops.halted && error instanceof RequestFailure && error.reason === "aborted") {
      throw stops.halted;
    }
    if (error instanceof RequestFailure) {
      throw new UpstreamError(`${what} failed: ${error.message}`, { cause: error });
    }
    throw error;
  };
  const unlessStopped = () => {
    if (stops.halted) throw stops.halted;
  };
  unlessStopped();
  await backend.authenticate().catch(upstream("Login"));
  unlessStopped();
  const health = await ml.check().catch(upstream("ML server check"));
  if (health === "predict_probe") emit({ type: "ml_probe_used" });
  unlessStopped();
  const list = createListCheck();
  await backend.fetchAllPatients(list).catch(upstream("Fetching the patient list"));
  unlessStopped();
  return list.select(config.patients, config.shard);
}
