/**
 * `check`: the steps before a sweep's first patient, and nothing after them: the login (or the
 * configured token), the ML server's health (with the nginx-proof probe) and a readable patient
 * list. No prediction, no write. A failed step ends the check with the exit code a sweep would.
 */
import { EXIT, type ExitCode, SchedulerError, UpstreamError } from "../errors.ts";
import { createBackend } from "../services/backend.ts";
import { RequestFailure, type RequestRecord } from "../services/http.ts";
import { createMl } from "../services/ml.ts";
import type { SweepEvent } from "./events.ts";
import { createListCheck } from "./select.ts";
import type { SweepConfig } from "./sweep.ts";

export type CheckStepName = "login" | "ml_server" | "patient_list";

export interface CheckStep {
  step: CheckStepName;
  ok: boolean;
  /** One line: how it passed (`health`, `predict_probe`, a count) or why it failed. */
  detail: string;
}

/** The check as `check --json` prints it. */
export interface CheckReport {
  version: 1;
  command: "check";
  /** The version of what ran (the CLI's package version), null when the caller gave none. */
  schedulerVersion: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  exitCode: ExitCode;
  error: { code: string; message: string } | null;
  /** The steps that ran, in order; a failed step is the last. */
  steps: CheckStep[];
}

export interface CheckOptions {
  /** Aborting it stops the check now; a SchedulerError reason becomes the check's error. */
  signal?: AbortSignal | undefined;
  onEvent?: ((event: SweepEvent) => void) | undefined;
  /** The caller's version, carried into the report (the CLI's package version). */
  schedulerVersion?: string | undefined;
}

/** Runs the checks in order; expected failures end up in the report, never thrown. */
export async function runCheck(
  config: SweepConfig,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const startedAt = new Date();
  const { signal } = options;
  const onRequest = (record: RequestRecord) =>
    options.onEvent?.({ type: "request_done", ...record });
  const backend = createBackend({ ...config, baseUrl: config.patientServer, signal, onRequest });
  const ml = createMl({ ...config, baseUrl: config.mlServer, signal, onRequest });
  const steps: CheckStep[] = [];
  let error: SchedulerError | undefined;

  const step = async (name: CheckStepName, what: string, work: () => Promise<string>) => {
    if (error) return;
    try {
      steps.push({ step: name, ok: true, detail: await work() });
    } catch (caught) {
      error = asSchedulerError(caught, what, signal);
      steps.push({ step: name, ok: false, detail: error.message });
    }
  };
  await step("login", "Login", async () => {
    await backend.authenticate();
    return config.credentials.token === undefined ? "logged in" : "token accepted or replaced";
  });
  await step("ml_server", "ML server check", async () => {
    const how = await ml.check();
    if (how === "predict_probe") options.onEvent?.({ type: "ml_probe_used" });
    return how;
  });
  await step("patient_list", "Fetching the patient list", async () => {
    const list = createListCheck();
    await backend.fetchAllPatients(list);
    const { selected, rejected } = list.select();
    return `${selected.length} patients, ${rejected.length} records that cannot be handled`;
  });

  const finishedAt = new Date();
  return {
    version: 1,
    command: "check",
    schedulerVersion: options.schedulerVersion ?? null,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    exitCode: error?.exitCode ?? EXIT.ok,
    error: error ? { code: error.code, message: error.message } : null,
    steps,
  };
}

/** A failed step as the exit code a sweep would give it; anything unexpected is a bug. */
function asSchedulerError(
  caught: unknown,
  what: string,
  signal: AbortSignal | undefined,
): SchedulerError {
  if (signal?.aborted && signal.reason instanceof SchedulerError) return signal.reason;
  if (caught instanceof SchedulerError) return caught;
  if (caught instanceof RequestFailure) {
    return new UpstreamError(`${what} failed: ${caught.message}`, { cause: caught });
  }
  throw caught;
}
