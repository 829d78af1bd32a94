// Stand-in for the ML server: GET /health and POST /predict (see /work/shared/contract.md).
import type { ServerResponse } from "node:http";
import type { Vital } from "./backend.ts";
import {
  dispatch,
  HTML_PAGE,
  missing,
  notInt,
  parseBody,
  type Route,
  send,
  sendJson,
  toInt,
} from "./fastapi.ts";
import type { RecordedRequest, StandIn } from "./server.ts";
import { StandInServer } from "./server.ts";

export interface MlOptions {
  /** "html": /health (and every path but /predict) answers the web app's page with 200, like the production nginx */
  health?: "ok" | "html" | "404";
  /** default: a free port the system picks */
  port?: number;
}
export interface Ml extends StandIn {
  readonly predictions: Array<{ seq: number; vitals: Vital[]; status: 1 | 9 }>;
}

const FIELDS = ["heart_rate", "sao2", "respiration", "systolic", "diastolic"] as const;
const SAFE: Record<keyof Vital, [number, number]> = {
  heart_rate: [50, 200],
  respiration: [10, 28],
  sao2: [85, Number.POSITIVE_INFINITY],
  systolic: [80, 180],
  diastolic: [40, 100],
};

/** The stand-in's "model": the newest record plus a quarter of the trend from oldest to newest. */
export function forecast(vitals: Vital[]): Vital {
  const newest = vitals[0];
  const oldest = vitals.at(-1);
  if (!newest || !oldest) throw new Error("forecast needs at least one record");
  const f = (k: keyof Vital) => Math.round(newest[k] + (newest[k] - oldest[k]) / 4);
  return {
    heart_rate: f("heart_rate"),
    sao2: f("sao2"),
    respiration: f("respiration"),
    systolic: f("systolic"),
    diastolic: f("diastolic"),
  };
}

/** Alert (1) when any forecast vital leaves its safe range, else Normal (9). */
export function predictStatus(vitals: Vital[]): 1 | 9 {
  const next = forecast(vitals);
  const unsafe = FIELDS.some((k) => next[k] < SAFE[k][0] || next[k] > SAFE[k][1]);
  return unsafe ? 1 : 9;
}

/** pydantic 1 validating List[Vital]: every error of every record, in order; extra fields ignored. */
function validate(value: unknown): { vitals: Vital[] } | { errors: object[] } {
  if (!Array.isArray(value)) {
    return {
      errors: [{ loc: ["body"], msg: "value is not a valid list", type: "type_error.list" }],
    };
  }
  const errors: object[] = [];
  const vitals = value.map((item: unknown, i) => {
    const out = { heart_rate: 0, sao2: 0, respiration: 0, systolic: 0, diastolic: 0 };
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      errors.push({ loc: ["body", i], msg: "value is not a valid dict", type: "type_error.dict" });
      return out;
    }
    for (const k of FIELDS) {
      const raw: unknown = (item as Record<string, unknown>)[k];
      const n = toInt(raw);
      if (raw === undefined) errors.push(missing(["body", i, k]));
      else if (raw === null) {
        const type = "type_error.none.not_allowed";
        errors.push({ loc: ["body", i, k], msg: "none is not an allowed value", type });
      } else if (n === undefined) errors.push(notInt(["body", i, k]));
      else out[k] = n;
    }
    return out;
  });
  return errors.length > 0 ? { errors } : { vitals };
}

class MlServer extends StandInServer implements Ml {
  readonly predictions: Array<{ seq: number; vitals: Vital[]; status: 1 | 9 }> = [];
  #health: "ok" | "html" | "404";
  #routes: Route[];

  constructor(opts: MlOptions) {
    super();
    this.#health = opts.health ?? "ok";
    this.#routes = [{ method: "POST", path: "/predict", handle: (q, s) => this.#predict(q, s) }];
    if (this.#health === "ok") {
      this.#routes.push({
        method: "GET",
        path: "/health",
        handle: (_q, s) => sendJson(s, 200, true),
      });
    }
  }

  protected override handle(req: RecordedRequest, res: ServerResponse): void | Promise<void> {
    // behind the production nginx only /predict reaches the ML server; the SPA answers the rest
    if (this.#health === "html" && req.path !== "/predict")
      return send(res, 200, HTML_PAGE, "text/html");
    return dispatch(this.#routes, req, res);
  }

  #predict(req: RecordedRequest, res: ServerResponse) {
    const parsed = parseBody(req.body);
    const checked = "errors" in parsed ? parsed : validate(parsed.value);
    if ("errors" in checked) return sendJson(res, 422, { detail: checked.errors });
    // the length check is the handler's own, so it runs after pydantic's validation
    if (checked.vitals.length !== 5) {
      return sendJson(res, 422, { detail: "Number of records not equal to 5" });
    }
    const status = predictStatus(checked.vitals);
    this.predictions.push({ seq: req.seq, vitals: checked.vitals, status });
    const text = status === 1 ? "Alert" : "Normal";
    sendJson(res, 200, { vitals: forecast(checked.vitals), status: { id: status, text } });
  }
}

export async function startMl(opts: MlOptions = {}): Promise<Ml> {
  const ml = new MlServer(opts);
  await ml.listen(opts.port);
  return ml;
}
