/**
 * The ML server: a health check that also works behind the production nginx, and predictions.
 */
import { createClient } from "./client.ts";
import { expectOk, parseBody, RequestFailure } from "./failure.ts";
import { type ClientHooks, type ServiceSettings, send } from "./http.ts";
import { Health, Prediction, ProbeRejection, type Vital } from "./schemas.ts";

export interface MlOptions extends ServiceSettings, Omit<ClientHooks, "service"> {}

/** How the ML server proved it answers. */
export type HealthResult = "health" | "predict_probe";

export interface MlClient {
  /**
   * `GET /health` answering `true`; otherwise the route nginx does forward: an empty
   * `POST /predict` must be refused with 422 and a `detail` (the 5-record rule).
   */
  check(): Promise<HealthResult>;
  /** The predicted status id (1 Alert or 9 Normal) for five records, newest first. */
  predict(vitals: Vital[]): Promise<number>;
}

export function createMl(options: MlOptions): MlClient {
  const { signal, onRequest, onAttempt } = options;
  const client = createClient(options, { service: "ml", signal, onRequest, onAttempt });

  return {
    async check() {
      const health = await send(client, "health");
      if (health.status === 200 && Health.safeParse(safeJson(health.body)).success) return "health";
      const probe = await send(client, "predict", { method: "POST", json: [] });
      if (probe.status !== 422) {
        throw new RequestFailure(
          `http_${probe.status}`,
          `${health.route} did not answer true and ${probe.route} answered HTTP ${probe.status}, not 422`,
          probe.status,
        );
      }
      parseBody(probe, ProbeRejection);
      return "predict_probe";
    },

    async predict(vitals) {
      const answer = await send(client, "predict", { method: "POST", json: predictBody(vitals) });
      return parseBody(expectOk(answer), Prediction).status.id;
    },
  };
}

/** A vital record as `/predict` is sent it: the five measured fields, in this order. */
export type PredictRecord = Pick<
  Vital,
  "heart_rate" | "sao2" | "respiration" | "systolic" | "diastolic"
>;

/**
 * Exactly what `predict` sends for these records (JSON.stringify of it is the body): only the five
 * measured fields travel, as pid and timestamp are the backend's business. The prediction memory
 * fingerprints the same value, so a change in what is sent is a change in the question.
 */
export function predictBody(vitals: Vital[]): PredictRecord[] {
  return vitals.map(({ heart_rate, sao2, respiration, systolic, diastolic }) => ({
    heart_rate,
    sao2,
    respiration,
    systolic,
    diastolic,
  }));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
