/**
 * Starts both stand-ins for one test and gives the environment that points the CLI at them.
 */
import type { TestContext } from "node:test";
import type { SweepConfig } from "../../src/index.ts";
import {
  type Backend,
  type BackendOptions,
  type SeedPatient,
  startBackend,
} from "../stand-ins/backend.ts";
import { type Ml, type MlOptions, startMl } from "../stand-ins/ml.ts";
import { DEMO_USER, demoPatients } from "../stand-ins/seed.ts";

export interface Services {
  backend: Backend;
  ml: Ml;
  /** PATIENT_SERVER, ML_SERVER and the demo user's credentials. */
  env: Record<string, string>;
}

export async function startServices(
  t: TestContext,
  options: { backend?: BackendOptions; ml?: MlOptions } = {},
): Promise<Services> {
  const backend = await startBackend({
    users: { [DEMO_USER.username]: DEMO_USER.password },
    ...options.backend,
  });
  const ml = await startMl(options.ml);
  t.after(() => Promise.all([backend.close(), ml.close()]));
  return {
    backend,
    ml,
    env: {
      PATIENT_SERVER: backend.url,
      ML_SERVER: ml.url,
      BACKEND_USERNAME: DEMO_USER.username,
      BACKEND_PASSWORD: DEMO_USER.password,
    },
  };
}

/** Every name, password and token that must never appear in any output. */
export function secretsOf(patients: Iterable<SeedPatient>, extra: string[] = []): string[] {
  const words = [DEMO_USER.password, ...extra];
  for (const p of patients) words.push(p.firstname, p.lastname);
  return words;
}

export { demoPatients };

/** A sweep configuration pointed at the stand-ins, fast to retry; tests override what they study. */
export function sweepConfig(
  env: Record<string, string>,
  overrides: Partial<SweepConfig> = {},
): SweepConfig {
  return {
    patientServer: env.PATIENT_SERVER as string,
    mlServer: env.ML_SERVER as string,
    credentials: { username: DEMO_USER.username, password: DEMO_USER.password },
    concurrency: 4,
    dryRun: false,
    requestTimeoutMs: 5_000,
    retries: 0,
    retryDelayMs: 1,
    maxRetryAfterMs: 2_000,
    breaker: 10,
    graceSeconds: 10,
    ...overrides,
  };
}
