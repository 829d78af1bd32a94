/**
 * The patient backend: login and token checks, the patient list, vitals and status writes.
 * Holds the token: one login at a time, one re-login shared by every request that saw it expire.
 */
import type { z } from "zod";
import { DEFAULTS, LIMITS } from "../defaults.ts";
import { AuthError, UpstreamError } from "../errors.ts";
import { streamText, type TextSink } from "./body-stream.ts";
import { createClient } from "./client.ts";
import { type Answer, expectOk, parseBody, RequestFailure } from "./failure.ts";
import { type ClientHooks, type SendOptions, type ServiceSettings, send } from "./http.ts";
import { createArrayReader, type Unread } from "./json-array.ts";
import { retryOnlyUnstarted } from "./retry.ts";
import {
  LoginResponse,
  type Patient,
  PatientList,
  timestampMs,
  UnknownUser,
  UpdatedPatient,
  ValidateResponse,
  type Vital,
  VitalList,
} from "./schemas.ts";

/** Who the scheduler logs in as. `usernameSource` names where the username came from. */
export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  usernameSource?: string | undefined;
}

export interface BackendOptions extends ServiceSettings, Omit<ClientHooks, "service"> {
  /** `token`, when set, is tried first (a configured or a cached one) and replaced by a login. */
  credentials: Credentials;
  /** A longer patient list is a contract break (`body_too_large`); undefined: the default. */
  maxListBytes?: number | undefined;
  /**
   * Called with the token of every login, re-logins mid-sweep included, once it is in use (the CLI
   * caches it for the next run). A throw here is a bug.
   */
  onToken?: ((token: string) => void) | undefined;
}

/** Where the patient list's records go as they are parsed. */
export interface ListSink {
  add(record: unknown): void;
  /** A record too large or too deep to parse (LIMITS.recordChars, LIMITS.recordDepth). */
  skip(record: Unread): void;
  /** The list is read again from its start (a retry after its body broke off): forget it all. */
  restart(): void;
}

export interface BackendClient {
  /** Makes sure a valid token is held: checks a configured one, logs in when missing or rejected. */
  authenticate(): Promise<void>;
  /**
   * Hands each record of the patient list to `list.add`, in order, as its text arrives, and keeps
   * none: the caller keeps what it needs; the raw records (names included) and the text never
   * pile up. A retry of a list that broke off midway calls `list.restart()` first.
   */
  fetchAllPatients(list: ListSink): Promise<void>;
  fetchVitals(pid: number, limit: number): Promise<Vital[]>;
  updateStatus(pid: number, status: number): Promise<Patient>;
}

export function createBackend(options: BackendOptions): BackendClient {
  const { signal, onRequest, onAttempt } = options;
  const client = createClient(options, { service: "backend", signal, onRequest, onAttempt });
  const { credentials } = options;
  const loginRetry = retryOnlyUnstarted(options);
  let token = credentials.token;
  /**
   * Bumped by every login. A 401 is answered by the first login after the request was sent, never
   * by another: two JWTs issued in the same second are the same string, so tokens cannot tell.
   */
  let generation = 0;
  let loginInFlight: Promise<void> | undefined;
  /** Why logging in no longer works; every later caller gets it without a request. */
  let failed: unknown;

  const call = (path: string, init: SendOptions = {}) => send(client, path, init);

  async function login(): Promise<void> {
    const { username, password } = credentials;
    if (username === undefined || password === undefined) {
      throw new AuthError(
        "The backend rejected BACKEND_TOKEN and no credentials are set: set BACKEND_USERNAME and BACKEND_PASSWORD, or a fresh token.",
      );
    }
    const answer = await call("api/login/", {
      method: "POST",
      json: { username, password },
      retry: loginRetry,
    });
    if (answer.status === 401 || (answer.status === 404 && says(answer, UnknownUser))) {
      const what = answer.status === 401 ? "refused the password" : "does not know the username";
      const from = credentials.usernameSource
        ? ` (username from ${credentials.usernameSource})`
        : "";
      throw new AuthError(`Login failed: the backend ${what}${from}. Check the credentials.`);
    }
    if (answer.status === 404) {
      throw new RequestFailure(
        "http_404",
        `${answer.route}: HTTP 404 that is not the backend's unknown-user answer. Check PATIENT_SERVER: it does not point at the backend (a wrong base URL, or swapped with ML_SERVER?)`,
        404,
      );
    }
    if (answer.status === 403) {
      throw new AuthError(
        `Login failed: ${answer.route}: HTTP 403. The login carries no token, so this is not the backend judging credentials: a proxy, firewall or WAF in front of it, or another service at PATIENT_SERVER, refused the request.`,
      );
    }
    token = parseBody(expectOk(answer), LoginResponse).token;
    generation++;
    options.onToken?.(token);
  }

  /**
   * At most one login in flight; callers whose request went out under generation `seen` share the
   * next one. A failed re-login is final: the sweep halts, so a login is never tried again.
   */
  function relogin(seen: number): Promise<void> {
    if (failed !== undefined) return Promise.reject(failed);
    if (generation !== seen) return Promise.resolve();
    loginInFlight ??= login()
      .catch((error: unknown) => {
        failed = reloginFailure(error);
        throw failed;
      })
      .finally(() => {
        loginInFlight = undefined;
      });
    return loginInFlight;
  }

  /** A bearer request; a 401 means expiry: one shared re-login, then the request once more. */
  function authed(path: string, init: SendOptions = {}): Promise<Answer> {
    return authedWith((headers) => call(path, { ...init, headers }));
  }

  async function authedWith<A extends { status: number; route: string }>(
    request: (headers: Record<string, string>) => Promise<A>,
  ): Promise<A> {
    const seen = generation;
    let answer = await request(bearer(token));
    if (answer.status === 401) {
      await relogin(seen);
      answer = await request(bearer(token));
      if (answer.status === 401) {
        failed ??= new AuthError(
          `${answer.route}: the backend rejected a token it had just issued (HTTP 401). Check the backend's clock and signing key.`,
        );
        throw failed;
      }
    }
    if (answer.status === 403) throw forbidden(answer);
    return answer;
  }

  /**
   * Whether the backend says the held token is valid: true on its 200 and user id, false on a
   * 401. Anything else (a 500, a 404, a page that is not the backend, no answer) cannot say yes:
   * with a username and password to log in with, that is false too, else it is the failure.
   */
  async function validates(held: string): Promise<boolean> {
    const canLogin = credentials.username !== undefined && credentials.password !== undefined;
    let answer: Answer;
    try {
      answer = await call("api/validate/", { headers: bearer(held) });
    } catch (error) {
      if (canLogin && error instanceof RequestFailure && error.reason !== "aborted") return false;
      throw error;
    }
    if (answer.status === 403) throw forbidden(answer);
    if (answer.status === 401) return false;
    try {
      parseBody(expectOk(answer), ValidateResponse);
      return true;
    } catch (error) {
      if (canLogin) return false;
      throw error;
    }
  }

  return {
    async authenticate() {
      // A held token (configured, or kept by an earlier run) is best effort: unless the backend
      // confirms it, one login replaces it.
      if (token !== undefined && (await validates(token))) return;
      // The run's first login: nothing else is in flight, and its failure ends the run.
      await login();
    },

    async fetchAllPatients(list) {
      const maxBytes = options.maxListBytes ?? DEFAULTS.maxListMib * MIB;
      let opened = 0;
      const open = (status: number) => {
        if (opened++ > 0) list.restart();
        return listReader(list, status);
      };
      const answer = await authedWith((headers) =>
        streamText(client, "api/patient/fetchAllPatients", { headers, maxBytes, open }),
      ).catch((error: unknown) => {
        throw error instanceof RequestFailure && error.reason === "body_too_large"
          ? listTooLarge(error, maxBytes)
          : error;
      });
      expectOk(answer);
    },

    async fetchVitals(pid, limit) {
      const answer = await authed("api/patient/fetchVitals", { searchParams: { key: pid, limit } });
      const vitals = parseBody(expectOk(answer), VitalList);
      if (vitals.some((v) => v.pid !== undefined && v.pid !== pid)) {
        throw new RequestFailure(
          "invalid_response",
          `${answer.route}: a record belongs to another patient`,
        );
      }
      return newestFirst(vitals);
    },

    async updateStatus(pid, status) {
      const answer = expectOk(
        await authed("api/patient/updateStatus", { method: "PUT", searchParams: { pid, status } }),
      );
      const updated = UpdatedPatient.safeParse(json(answer.body)).data;
      if (updated?.pid !== pid || updated.status.id !== status) {
        throw new RequestFailure(
          "unconfirmed_write",
          `${answer.route}: HTTP ${answer.status} does not confirm status ${status} for this patient; it may nevertheless have been stored`,
          answer.status,
        );
      }
      return updated;
    },
  };
}

const MIB = 1024 * 1024;

const LIST_ROUTE = "GET /api/patient/fetchAllPatients";

/**
 * The list's text, read as it arrives, its records handed to `list`. A malformed list fails as
 * soon as the fault arrives. A body that is not an array is kept only while it is short
 * (LIMITS.notArrayChars), so that parseBody says what it is, in the words it has for every body;
 * a longer one fails once that much has come, and the rest is not downloaded.
 */
function listReader(list: ListSink, status: number): TextSink {
  const reader = createArrayReader(
    (record) => list.add(record),
    (record) => list.skip(record),
  );
  /** The text from the first piece that showed it is not an array (what precedes is spaces). */
  let other: string[] | undefined;
  let otherChars = 0;
  const notJson = () =>
    new RequestFailure("invalid_response", `${LIST_ROUTE}: HTTP ${status} body is not JSON`);
  return {
    write(text) {
      if (other === undefined) {
        const scan = reader.write(text);
        if (scan === "malformed") throw notJson();
        if (scan !== "not_array") return;
        other = [];
      }
      other.push(text);
      otherChars += text.length;
      if (otherChars > LIMITS.notArrayChars) {
        other = [];
        throw new RequestFailure(
          "invalid_response",
          `${LIST_ROUTE}: HTTP ${status} body is not a JSON array (judged by its first ${LIMITS.notArrayChars} characters; the rest was not read)`,
        );
      }
    },
    end() {
      const scan = other === undefined ? reader.end() : "not_array";
      if (scan === "read") return;
      if (scan === "malformed") throw notJson();
      const body = other?.join("") ?? "";
      parseBody({ status, body, route: LIST_ROUTE, attempts: 1 }, PatientList);
      throw new Error("The patient list's scan says it is not an array; JSON.parse disagrees.");
    },
  };
}

/** A list over the cap, in words that name the setting which raises it. */
function listTooLarge(error: RequestFailure, maxBytes: number): RequestFailure {
  const size = maxBytes % MIB === 0 ? `${maxBytes / MIB} MiB` : `${maxBytes} bytes`;
  const failure = new RequestFailure(
    "body_too_large",
    `${LIST_ROUTE}: the list is over ${size}; if the backend has that many patients, raise --max-list-mib (MAX_LIST_MIB)`,
    error.status,
    { cause: error },
  );
  failure.attempts = error.attempts;
  return failure;
}

function bearer(token: string | undefined): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/**
 * What a failed re-login becomes for the patient that needed it and every later caller: a refusal
 * of the credentials stays exit 4; anything else is exit 5. An abort stays an abort (interrupted).
 */
function reloginFailure(error: unknown): unknown {
  if (!(error instanceof RequestFailure) || error.reason === "aborted") return error;
  return new UpstreamError(
    `Re-login after a 401 failed: ${error.message}. No further patient starts.`,
    { cause: error },
  );
}

/** Whether a body is JSON that matches `schema`. */
function says(answer: Answer, schema: z.ZodType): boolean {
  return schema.safeParse(json(answer.body)).success;
}

/** The body as JSON, or undefined when it is not JSON. */
function json(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function forbidden(answer: { route: string }): AuthError {
  return new AuthError(
    `${answer.route}: HTTP 403, the credentials did not reach the backend. Check that a proxy is not stripping the Authorization header.`,
  );
}

/** Records with timestamps are put newest first; without them the backend's order stands. */
function newestFirst(vitals: Vital[]): Vital[] {
  if (!vitals.every((v) => v.timestamp !== undefined)) return vitals;
  return vitals.toSorted((a, b) => timestampMs(b.timestamp ?? "") - timestampMs(a.timestamp ?? ""));
}
