/**
 * The patient backend's authentication: login and token checks. Holds the token: one login at a
 * time, one re-login shared by every request that saw it expire.
 */
import type { z } from "zod";
import { AuthError, UpstreamError } from "../errors.ts";
import { type Answer, expectOk, json, parseBody, RequestFailure } from "./failure.ts";
import { type SendOptions, type ServiceClient, type ServiceSettings, send } from "./http.ts";
import { retryOnlyUnstarted } from "./retry.ts";
import { LoginResponse, UnknownUser, ValidateResponse } from "./schemas.ts";

/** Who the scheduler logs in as. `usernameSource` names where the username came from. */
export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  usernameSource?: string | undefined;
}

/** What the login needs of the backend's options (BackendOptions extends it). */
export interface AuthOptions extends ServiceSettings {
  /** `token`, when set, is tried first (a configured or a cached one) and replaced by a login. */
  credentials: Credentials;
  /**
   * Called with the token of every login, re-logins mid-sweep included, once it is in use (the CLI
   * caches it for the next run). A throw here is a bug.
   */
  onToken?: ((token: string) => void) | undefined;
}

/** The held token and the requests that carry it. */
export interface BackendAuth {
  /** See BackendClient.authenticate. */
  authenticate(): Promise<void>;
  /** A bearer request through `send`; a 401 is answered by one shared re-login. */
  authed(path: string, init?: SendOptions): Promise<Answer>;
  /** The same for a request the caller sends itself (the patient list, streamed). */
  authedWith<A extends { status: number; route: string }>(
    request: (headers: Record<string, string>) => Promise<A>,
  ): Promise<A>;
}

/** The backend's token for `client`'s requests, starting from `options.credentials`. */
export function createBackendAuth(client: ServiceClient, options: AuthOptions): BackendAuth {
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

  async function authenticate(): Promise<void> {
    // A held token (configured, or kept by an earlier run) is best effort: unless the backend
    // confirms it, one login replaces it.
    if (token !== undefined && (await validates(token))) return;
    // The run's first login: nothing else is in flight, and its failure ends the run.
    await login();
  }

  return { authenticate, authed, authedWith };
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

function forbidden(answer: { route: string }): AuthError {
  return new AuthError(
    `${answer.route}: HTTP 403, the credentials did not reach the backend. Check that a proxy is not stripping the Authorization header.`,
  );
}
