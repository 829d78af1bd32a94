// Stand-in for the FastAPI patient backend, quirks included (see /work/shared/contract.md).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ServerResponse } from "node:http";
import {
  dispatch,
  missing,
  notInt,
  parseBody,
  type Route,
  send,
  sendInternalError,
  sendJson,
  toInt,
} from "./fastapi.ts";
import { demoPatients } from "./seed.ts";
import type { RecordedRequest, StandIn } from "./server.ts";
import { prng, StandInServer } from "./server.ts";

export interface Vital {
  heart_rate: number;
  sao2: number;
  respiration: number;
  systolic: number;
  diastolic: number;
}
export interface SeedPatient {
  pid: number;
  firstname: string;
  lastname: string;
  age: number | null;
  gender: string | null;
  status: number;
  admit_time?: string;
  /** newest first */
  vitals: Vital[];
  /** optional ISO time per vital, same order; served only with `vitalTimestamps` */
  timestamps?: string[];
}
export interface BackendOptions {
  /** username -> password; default { demo: "demo-password" } */
  users?: Record<string, string>;
  /** default: the demo seed */
  patients?: SeedPatient[];
  tokenTtlSeconds?: number;
  /** vital records carry pid and timestamp, like another backend version */
  vitalTimestamps?: boolean;
  /** order inside a status id is arbitrary: shuffle it with this seed */
  shuffleSeed?: number;
  /** default: a free port the system picks */
  port?: number;
}
export interface Backend extends StandIn {
  readonly patients: Map<number, SeedPatient>;
  readonly writes: Array<{ pid: number; status: number }>;
  readonly logins: number;
  issueToken(username: string, ttlSeconds?: number): string;
  expireTokens(): void;
  /**
   * A new vital record, the newest, as a monitor would add it between runs (with `timestamp`, the
   * record's time when served with `vitalTimestamps`).
   */
  addVital(pid: number, vital: Vital, timestamp?: string): void;
  /** Someone else (a nurse in the web app) sets a status: not one of `writes`. */
  setStatus(pid: number, status: number): void;
}

export const STATUS_TEXT: Record<number, string> = { 1: "Alert", 9: "Normal", 10: "Unobserved" };

/** Python's datetime.isoformat() for a naive datetime: no zone, fraction only when non-zero. */
function isoformat(ms: number, micros = 0): string {
  const base = new Date(ms).toISOString().slice(0, 19);
  return micros === 0 ? base : `${base}.${String(micros).padStart(6, "0")}`;
}

/** A made-up admission in November 2026, derived from the pid; built by hand because it is hot. */
function defaultAdmitTime(pid: number): string {
  const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
  const time = `${two(1 + (pid % 26))}T${two((pid * 7) % 24)}:${two((pid * 13) % 60)}:${two((pid * 31) % 60)}`;
  const micros = pid % 4 === 0 ? 0 : (pid * 7919) % 999_999; // a quarter have no fraction
  return `2026-11-${time}${micros === 0 ? "" : `.${String(micros).padStart(6, "0")}`}`;
}

/** The patient as the API shows it; JSON.stringify of a whole array of these is the fast path. */
function patientView(p: SeedPatient) {
  return {
    pid: p.pid,
    admit_time: p.admit_time ?? defaultAdmitTime(p.pid),
    firstname: p.firstname,
    lastname: p.lastname,
    age: p.age ?? null,
    gender: p.gender ?? null,
    status: { id: p.status, text: STATUS_TEXT[p.status] ?? null },
  };
}

/** A query int as FastAPI reads it: the last value wins; a 422 error item when missing or not an int. */
function queryInt(req: RecordedRequest, name: string, fallback?: number): number | object {
  const raw = req.query.getAll(name).at(-1);
  if (raw === undefined) return fallback ?? missing(["query", name]);
  return toInt(raw) ?? notInt(["query", name]);
}

const b64 = (s: string) => Buffer.from(s).toString("base64url");

class BackendServer extends StandInServer implements Backend {
  readonly patients: Map<number, SeedPatient>;
  readonly writes: Array<{ pid: number; status: number }> = [];
  #logins = 0;
  #users: Map<string, { id: number; password: string }>;
  #secret = randomBytes(32);
  #ttl: number;
  #timestamps: boolean;
  #shuffleSeed: number | undefined;
  #issued = 0; // every token carries a serial (jti), so expireTokens() can cut them off
  #expiredUpTo = 0;
  #routes: Route[] = [
    { method: "POST", path: "/api/login/", handle: (q, s) => this.#login(q, s) },
    { method: "GET", path: "/api/validate/", handle: (q, s) => this.#validate(q, s) },
    { method: "GET", path: "/api/patient/fetchAllPatients", handle: (q, s) => this.#all(q, s) },
    { method: "GET", path: "/api/patient/fetchVitals", handle: (q, s) => this.#vitals(q, s) },
    { method: "PUT", path: "/api/patient/updateStatus", handle: (q, s) => this.#update(q, s) },
  ];

  constructor(opts: BackendOptions) {
    super();
    const users = Object.entries(opts.users ?? { demo: "demo-password" });
    this.#users = new Map(users.map(([name, password], i) => [name, { id: i + 1, password }]));
    this.patients = new Map((opts.patients ?? demoPatients()).map((p) => [p.pid, p]));
    this.#ttl = opts.tokenTtlSeconds ?? 86_400;
    this.#timestamps = opts.vitalTimestamps ?? false;
    this.#shuffleSeed = opts.shuffleSeed;
  }

  get logins(): number {
    return this.#logins;
  }

  issueToken(username: string, ttlSeconds = this.#ttl): string {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: username, iat: now, exp: now + ttlSeconds, jti: ++this.#issued };
    const unsigned = `${b64('{"alg":"HS256","typ":"JWT"}')}.${b64(JSON.stringify(claims))}`;
    return `${unsigned}.${this.#sign(unsigned)}`;
  }

  expireTokens(): void {
    this.#expiredUpTo = this.#issued;
  }

  addVital(pid: number, vital: Vital, timestamp?: string): void {
    const p = this.#patient(pid);
    p.vitals = [vital, ...p.vitals];
    if (timestamp !== undefined || p.timestamps) {
      p.timestamps = [timestamp ?? new Date().toISOString(), ...(p.timestamps ?? [])];
    }
  }

  setStatus(pid: number, status: number): void {
    this.#patient(pid).status = status;
  }

  #patient(pid: number): SeedPatient {
    const p = this.patients.get(pid);
    if (!p) throw new Error(`stand-in: no patient ${pid}`);
    return p;
  }

  protected override handle(req: RecordedRequest, res: ServerResponse): void | Promise<void> {
    return dispatch(this.#routes, req, res);
  }

  #sign(unsigned: string): string {
    return createHmac("sha256", this.#secret).update(unsigned).digest("base64url");
  }

  /** HTTPBearer, then PyJWT: signature first, expiry second. Answers and returns undefined on failure. */
  #auth(req: RecordedRequest, res: ServerResponse): { id: number } | undefined {
    const header = req.headers.authorization;
    const text = typeof header === "string" ? header : "";
    const space = text.indexOf(" "); // Python's str.partition(" ")
    const scheme = space < 0 ? text : text.slice(0, space);
    const token = space < 0 ? "" : text.slice(space + 1);
    if (scheme.toLowerCase() !== "bearer" || token === "") {
      sendJson(res, 403, { detail: "Not authenticated" });
      return undefined;
    }
    const [head, body, sig, ...rest] = token.split(".");
    const good = Buffer.from(this.#sign(`${head}.${body}`));
    const given = Buffer.from(sig ?? "");
    let claims: { sub?: unknown; exp?: unknown; jti?: unknown } = {};
    if (rest.length === 0 && given.length === good.length && timingSafeEqual(given, good)) {
      claims = JSON.parse(Buffer.from(body ?? "", "base64url").toString());
    }
    const user = typeof claims.sub === "string" ? this.#users.get(claims.sub) : undefined;
    if (!user || typeof claims.exp !== "number") {
      sendJson(res, 401, { detail: "Invalid token" });
      return undefined;
    }
    if (claims.exp * 1000 <= Date.now() || Number(claims.jti) <= this.#expiredUpTo) {
      sendJson(res, 401, { detail: "Signature has expired" });
      return undefined;
    }
    return user;
  }

  #login(req: RecordedRequest, res: ServerResponse) {
    this.#logins++;
    const parsed = parseBody(req.body);
    if ("errors" in parsed) return sendJson(res, 422, { detail: parsed.errors });
    const body = parsed.value;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      const detail = [{ loc: ["body"], msg: "value is not a valid dict", type: "type_error.dict" }];
      return sendJson(res, 422, { detail });
    }
    const errors: object[] = [];
    const [username, password] = ["username", "password"].map((f) => {
      const v: unknown = (body as Record<string, unknown>)[f];
      if (v === undefined) errors.push(missing(["body", f]));
      else if (typeof v === "object")
        errors.push({ loc: ["body", f], msg: "str type expected", type: "type_error.str" });
      else return String(v); // pydantic 1 turns numbers into strings
      return "";
    });
    if (errors.length > 0) return sendJson(res, 422, { detail: errors });
    const user = this.#users.get(username ?? "");
    if (!user) return sendJson(res, 404, { detail: "Failed to find username" });
    if (user.password !== password) return sendJson(res, 401, { detail: "Password is incorrect!" });
    sendJson(res, 200, { token: this.issueToken(username ?? ""), user: { id: user.id, username } });
  }

  #validate(req: RecordedRequest, res: ServerResponse) {
    const user = this.#auth(req, res);
    if (user) send(res, 200, String(user.id), "application/json");
  }

  #all(req: RecordedRequest, res: ServerResponse) {
    if (!this.#auth(req, res)) return;
    // ORDER BY status only: bucket by status id (linear, 100,000 patients are served often)
    const buckets = new Map<number, SeedPatient[]>();
    for (const p of this.patients.values()) {
      const bucket = buckets.get(p.status);
      if (bucket) bucket.push(p);
      else buckets.set(p.status, [p]);
    }
    const ids = [...buckets.keys()].sort((a, b) => a - b);
    const list = ids.flatMap((id) => this.#shuffle(buckets.get(id) ?? []));
    sendJson(res, 200, list.map(patientView));
  }

  /** Fisher-Yates with a fresh PRNG per request: arbitrary, yet the same for the same data. */
  #shuffle(bucket: SeedPatient[]): SeedPatient[] {
    if (this.#shuffleSeed === undefined) return bucket;
    const rand = prng(this.#shuffleSeed);
    for (let i = bucket.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [bucket[i], bucket[j]] = [bucket[j] as SeedPatient, bucket[i] as SeedPatient];
    }
    return bucket;
  }

  #vitals(req: RecordedRequest, res: ServerResponse) {
    if (!this.#auth(req, res)) return;
    const key = queryInt(req, "key");
    const limit = queryInt(req, "limit", 20);
    if (typeof key !== "number" || typeof limit !== "number") {
      return sendJson(res, 422, { detail: [key, limit].filter((e) => typeof e === "object") });
    }
    if (limit < 0) return sendInternalError(res); // PostgreSQL: LIMIT must not be negative
    const p = this.patients.get(key);
    const records = (p?.vitals ?? []).slice(0, limit).map((v, i) => {
      const five = {
        heart_rate: v.heart_rate,
        sao2: v.sao2,
        respiration: v.respiration,
        systolic: v.systolic,
        diastolic: v.diastolic,
      };
      if (!this.#timestamps) return five;
      const timestamp = p?.timestamps?.[i] ?? isoformat(Date.UTC(2026, 10, 26, 12) - i * 60_000);
      return { pid: key, ...five, timestamp };
    });
    sendJson(res, 200, records);
  }

  #update(req: RecordedRequest, res: ServerResponse) {
    if (!this.#auth(req, res)) return;
    const pid = queryInt(req, "pid");
    const status = queryInt(req, "status");
    if (typeof pid !== "number" || typeof status !== "number") {
      return sendJson(res, 422, { detail: [pid, status].filter((e) => typeof e === "object") });
    }
    const p = this.patients.get(pid);
    if (!p) return sendJson(res, 404, { detail: "Failed to find patient" });
    if (STATUS_TEXT[status] === undefined) {
      // the backend does not catch the IntegrityError: the raw SQLAlchemy/psycopg2 text comes back
      const text = `(psycopg2.errors.ForeignKeyViolation) insert or update on table "patient" violates foreign key constraint "patient_status_fkey"
DETAIL:  Key (status)=(${status}) is not present in table "status".

[SQL: UPDATE patient SET status=%(status)s WHERE patient.pid = %(patient_pid)s]
[parameters: {'status': ${status}, 'patient_pid': ${pid}}]
(Background on this error at: https://sqlalche.me/e/20/gkpj)`;
      return send(res, 500, text, "text/plain; charset=utf-8");
    }
    p.status = status;
    this.writes.push({ pid, status });
    sendJson(res, 200, patientView(p));
  }
}

export async function startBackend(opts: BackendOptions = {}): Promise<Backend> {
  const backend = new BackendServer(opts);
  await backend.listen(opts.port);
  return backend;
}
