/**
 * The HTTP layer shared by both service clients: how a service is reached, what its client reports
 * of each request and attempt, and one request sent through the service's got instance (client.ts),
 * within the body-size limit and recorded once. Retries, redirects and failures have their own
 * modules: retry.ts, redirect.ts, failure.ts.
 */

import {
  type Got,
  type Method,
  type OptionsOfTextResponseBody,
  RequestError,
  type Response,
  type RetryOptions,
} from "got";
import { type Answer, bodyTooLarge, RequestFailure, toFailure } from "./failure.ts";
import { redirectRefused } from "./redirect.ts";

/** Bodies larger than this are a contract break; the patient list has its own (--max-list-mib). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** How a service is reached; every field has a CLI flag or a fixed default in config. */
export interface ServiceSettings {
  /** Base URL, e.g. `http://backend:8000`. */
  baseUrl: string;
  /** Timeout of each attempt, from its start. */
  requestTimeoutMs: number;
  /** Retries after the first attempt for network errors, timeouts, 408, 429 and 5xx. */
  retries: number;
  /** First backoff delay; it doubles for each retry, with jitter. */
  retryDelayMs: number;
  /** A longer Retry-After fails the request at once rather than blocking the sweep. */
  maxRetryAfterMs: number;
  /** At most this many requests per second (every attempt counted); undefined: no cap. */
  maxRps?: number | undefined;
}

export interface SendOptions {
  method?: Method;
  searchParams?: Record<string, string | number>;
  json?: unknown;
  headers?: Record<string, string>;
  /** This request's own retry policy, over the service's (see `retryOnlyUnstarted`). */
  retry?: Partial<RetryOptions> | undefined;
}

/** The two services a sweep talks to. */
export type Service = "backend" | "ml";

/** One request as it ended, after its retries: what a `request_done` event carries. */
export interface RequestRecord {
  service: Service;
  /** Method and path, never the query (which may hold a pid). */
  route: string;
  /** The final answer's HTTP status; null when none came. */
  status: number | null;
  /** Attempts made, the first included. */
  attempts: number;
  durationMs: number;
  /** The failure's reason code (`timeout`, `redirect_refused`...), null when it answered. */
  reason: string | null;
}

/**
 * One attempt of a request (the first, or a retry) as it ended: what an adaptive concurrency
 * limiter learns from. A 429 shows here before it is retried; aborted attempts do not show.
 */
export interface AttemptRecord {
  service: Service;
  /** Method and path, as in RequestRecord. */
  route: string;
  /** The attempt's HTTP status; null when none came. */
  status: number | null;
  /** From the attempt's start (its wait for the rate cap included) to its answer or failure. */
  durationMs: number;
  /** `timeout` or `unreachable` when no answer came; null when it answered. */
  reason: "timeout" | "unreachable" | null;
}

/** What a client of one service shares with every request it sends. */
export interface ClientHooks {
  service: Service;
  /** Aborting it aborts every request of this client. */
  signal?: AbortSignal | undefined;
  /** Called once per request, when it ended. */
  onRequest?: ((record: RequestRecord) => void) | undefined;
  /** Called once per attempt, when it ended. */
  onAttempt?: ((attempt: AttemptRecord) => void) | undefined;
}

/** A service's got instance and the hooks its requests share. */
export interface ServiceClient extends ClientHooks {
  got: Got;
  /** Whether got's hooks watch each attempt (a rate cap or `onAttempt`): they read the route. */
  watched: boolean;
}

/**
 * Sends one request (aborted with the client's signal) and answers whatever status came back;
 * throws RequestFailure otherwise. Either way it is recorded once.
 */
export async function send(
  client: ServiceClient,
  path: string,
  options: SendOptions = {},
): Promise<Answer> {
  const route = `${options.method ?? "GET"} /${path}`;
  const record = recorder(client, route);
  try {
    const answer = await exchange(client, path, route, options);
    record(answer.status, answer.attempts, null);
    return answer;
  } catch (error) {
    if (error instanceof RequestFailure) record(error.status ?? null, error.attempts, error.reason);
    throw error;
  }
}

/**
 * How a request is recorded once it ended, timed from this call: the client's `onRequest`
 * with its final status, attempts and failure reason.
 */
export function recorder(
  client: ServiceClient,
  route: string,
): (status: number | null, attempts: number, reason: string | null) => void {
  const started = performance.now();
  return (status, attempts, reason) =>
    client.onRequest?.({
      service: client.service,
      route,
      status,
      attempts,
      durationMs: Math.round(performance.now() - started),
      reason,
    });
}

async function exchange(
  client: ServiceClient,
  path: string,
  route: string,
  options: SendOptions,
): Promise<Answer> {
  const { signal } = client;
  // got has no body-size limit: watch the download and abort it past the limit, with this
  // request's own controller; the client's signal aborts every request.
  const own = new AbortController();
  let tooLarge = false;
  // got validates and merges every option it is given, each request: only those that are set.
  const init: OptionsOfTextResponseBody = {
    signal: signal === undefined ? own.signal : AbortSignal.any([signal, own.signal]),
  };
  if (options.method !== undefined) init.method = options.method;
  if (options.json !== undefined) init.json = options.json;
  if (options.headers !== undefined) init.headers = options.headers;
  if (options.retry !== undefined) init.retry = options.retry;
  if (client.watched) init.context = { route };
  const query = options.searchParams && queryString(options.searchParams);
  const request = client.got(query ? `${path}?${query}` : path, init);
  request.on("downloadProgress", ({ transferred, total }) => {
    if (transferred > MAX_BODY_BYTES || (total ?? 0) > MAX_BODY_BYTES) {
      tooLarge = true;
      own.abort();
    }
  });
  let response: Response<string>;
  try {
    response = await request;
  } catch (error) {
    const attempts = (error instanceof RequestError ? (error.request?.retryCount ?? 0) : 0) + 1;
    const failure = tooLarge
      ? bodyTooLarge(route, MAX_BODY_BYTES)
      : toFailure(error, route, signal);
    failure.attempts = attempts;
    throw failure;
  }
  const attempts = response.retryCount + 1;
  const location = response.headers.location;
  // A 3xx that comes back as an answer is one the redirect rule refused to follow.
  if (location !== undefined && response.statusCode >= 300 && response.statusCode < 400) {
    const failure = redirectRefused(route, response.statusCode, location, response.url);
    failure.attempts = attempts;
    throw failure;
  }
  return { status: response.statusCode, body: response.body, route, attempts };
}

/** `searchParams` as a query string: got would build a URLSearchParams and merge it each time. */
function queryString(params: Record<string, string | number>): string {
  return Object.entries(params)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join("&");
}
