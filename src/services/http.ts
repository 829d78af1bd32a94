/**
 * The HTTP layer shared by both service clients: one got instance per service with its base URL,
 * timeout, retry policy and body-size limit, and one error type for every way a request can fail.
 */

import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { request as httpsRequest } from "node:https";
import got, {
  AbortError,
  type Got,
  type Hooks,
  MaxRedirectsError,
  type Method,
  type Options,
  type OptionsOfTextResponseBody,
  type PlainResponse,
  RequestError,
  type Response,
  type RetryFunction,
  type RetryOptions,
  TimeoutError,
} from "got";
import type { z } from "zod";
import { createRateCap } from "./rate.ts";
import type { RequestReason } from "./reasons.ts";
import { describeIssues } from "./schemas.ts";

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

/** Why one request failed, as a report's stable reason code and a one-line detail. */
export class RequestFailure extends Error {
  override name = "RequestFailure";
  readonly reason: RequestReason;
  /** HTTP status when the service answered. */
  readonly status: number | undefined;
  /** Attempts the request made, the first included (1 when it failed after parsing). */
  attempts = 1;
  constructor(reason: RequestReason, detail: string, status?: number, options?: ErrorOptions) {
    super(detail, options);
    this.reason = reason;
    this.status = status;
  }
  /**
   * Whether the service itself looked down or overloaded (as opposed to answering something
   * wrong): no answer, or 408, 429 or 5xx after the retries.
   */
  get unavailable(): boolean {
    return (
      this.reason === "timeout" ||
      this.reason === "unreachable" ||
      this.status === 408 ||
      this.status === 429 ||
      (this.status !== undefined && this.status >= 500)
    );
  }
}

/** What a request answered: any status, the body as text. */
export interface Answer {
  status: number;
  body: string;
  route: string;
  /** Attempts made, the first included. */
  attempts: number;
}

export interface SendOptions {
  method?: Method;
  searchParams?: Record<string, string | number>;
  json?: unknown;
  headers?: Record<string, string>;
  /** This request's own retry policy, over the service's (see `retryOnlyUnstarted`). */
  retry?: Partial<RetryOptions> | undefined;
}

const RETRY_STATUS = [408, 429, ...Array.from({ length: 100 }, (_, i) => 500 + i)];

/**
 * got's default network errors (its documented `retry.errorCodes`), and a body that ended before
 * its Content-Length: the same break as a chunked body's reset (which got retries as ECONNRESET),
 * from a server that announced the length.
 */
const RETRY_ERRORS = [
  "ETIMEDOUT",
  "ECONNRESET",
  "EADDRINUSE",
  "ECONNREFUSED",
  "EPIPE",
  "ENOTFOUND",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ERR_HTTP_CONTENT_LENGTH_MISMATCH",
];

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

/** One got instance for one service, with its own rate cap. */
export function createClient(settings: ServiceSettings, hooks: ClientHooks): ServiceClient {
  const watching = attemptHooks(settings, hooks);
  return {
    ...hooks,
    got: createGot(settings, watching),
    watched: watching !== undefined,
  };
}

function createGot(settings: ServiceSettings, hooks: Partial<Hooks> | undefined): Got {
  return got.extend({
    // No hooks unless one is needed: each attempt then skips them and their bookkeeping.
    ...(hooks === undefined ? {} : { hooks }),
    prefixUrl: settings.baseUrl,
    request: leanRequest,
    // No Accept-Encoding: the answers are small (the list, streamed, asks for compression itself),
    // and decompressing costs both sides more than the bytes saved on a hospital network.
    decompress: false,
    timeout: { request: settings.requestTimeoutMs },
    throwHttpErrors: false,
    responseType: "text",
    maxRedirects: 3,
    followRedirect: sameOriginRedirect(new URL(settings.baseUrl).origin),
    retry: {
      limit: settings.retries,
      // predict is pure and updateStatus sets a value: both are safe to repeat (contract.md).
      methods: ["GET", "PUT", "POST"],
      statusCodes: RETRY_STATUS,
      errorCodes: RETRY_ERRORS,
      maxRetryAfter: settings.maxRetryAfterMs,
      calculateDelay: backoff(settings),
    },
  });
}

/**
 * Node's request with got's native options less those got leaves undefined: got names about 40
 * (TLS settings and the like, undefined for our requests), and Node copies and reads every one of
 * them in ClientRequest and again in the agent, on each request. Same request, less work.
 */
function leanRequest(
  url: URL,
  options: RequestOptions,
  callback?: (response: IncomingMessage) => void,
): ClientRequest {
  const lean: Record<string, unknown> = {};
  for (const key in options) {
    const value = options[key as keyof RequestOptions];
    if (value !== undefined) lean[key] = value;
  }
  return (url.protocol === "https:" ? httpsRequest : httpRequest)(url, lean, callback);
}

/**
 * got's hooks around each attempt: `beforeRequest` runs before every attempt (the first, each
 * retry, each redirect), so the rate cap counts them all; the others report how each attempt
 * ended. got's own request timeout starts after `beforeRequest`, so waiting for a slot is never
 * a timeout; the request's signal still aborts the wait.
 */
function attemptHooks(settings: ServiceSettings, hooks: ClientHooks): Partial<Hooks> | undefined {
  const cap = settings.maxRps === undefined ? undefined : createRateCap(settings.maxRps);
  const { onAttempt } = hooks;
  if (cap === undefined && onAttempt === undefined) return undefined;
  /** Each attempt's start, by its options (got makes new ones for each attempt). */
  const started = new WeakMap<object, number>();
  const ended = (
    options: Pick<Options, "context" | "signal">,
    status: number | null,
    error?: RequestError,
  ) => {
    const start = started.get(options);
    if (onAttempt === undefined || start === undefined || options.signal?.aborted) return;
    const { route } = options.context as { route?: string };
    onAttempt({
      service: hooks.service,
      route: route ?? "",
      status,
      durationMs: performance.now() - start,
      reason:
        error === undefined ? null : error instanceof TimeoutError ? "timeout" : "unreachable",
    });
  };
  // Answered attempts show in afterResponse; these are the ones that got no answer.
  const unanswered = (error: RequestError) => {
    if (error.response === undefined && !(error instanceof AbortError)) {
      ended(error.options, null, error);
    }
  };
  return {
    beforeRequest: [
      async (options) => {
        const start = performance.now();
        await cap?.take(options.signal);
        started.set(options, start);
      },
    ],
    afterResponse: [
      (response) => {
        ended(response.request.options, response.statusCode);
        return response;
      },
    ],
    beforeRetry: [unanswered],
    beforeError: [
      (error) => {
        unanswered(error);
        return error;
      },
    ],
  };
}

/** Retry-After when the service sent one (got has checked it against the cap), else backoff. */
function backoff(settings: ServiceSettings): RetryFunction {
  return ({ attemptCount, retryAfter, computedValue }) =>
    retryAfter !== undefined
      ? computedValue
      : settings.retryDelayMs * 2 ** (attemptCount - 1) * (0.5 + Math.random() / 2);
}

/** Network errors that prove the request never reached the server. */
const NEVER_SENT = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"];

/**
 * The retry policy of a request that must never run twice at once (the login: each one costs the
 * backend a bcrypt and blocks it). It is retried only when the server cannot have started it: the
 * connection was refused, the host did not resolve, or a 429/503 asked to come back after a
 * Retry-After within the cap. A timeout, a reset mid-request or a 500 may leave the first attempt
 * running, so those fail at once. got enforces the codes before it asks `calculateDelay`.
 */
export function retryOnlyUnstarted(settings: ServiceSettings): Partial<RetryOptions> {
  const delay = backoff(settings);
  return {
    statusCodes: [429, 503],
    errorCodes: NEVER_SENT,
    calculateDelay: (retry) =>
      retry.error.response !== undefined && retry.retryAfter === undefined ? 0 : delay(retry),
  };
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

/**
 * got's redirect rule: follow only to the service's own origin (scheme, host and port) and only
 * when the method stays: 307/308 on any method, any 3xx on a GET. got would forward a 307's body
 * (the password) to any host and turn a 303 or a POST's 301/302 into a GET. Refused redirects
 * resolve as the 3xx answer itself, which `send` turns into `redirect_refused`, never retried.
 */
export function sameOriginRedirect(origin: string) {
  return (response: PlainResponse): boolean => {
    const location = response.headers.location;
    if (location === undefined || redirectTarget(location, response.url)?.origin !== origin) {
      return false;
    }
    const { statusCode } = response;
    return statusCode === 307 || statusCode === 308 || response.request.options.method === "GET";
  };
}

/** Where a Location points, resolved the way got resolves it (the header's bytes read as UTF-8). */
function redirectTarget(location: string, from: string): URL | null {
  return URL.parse(Buffer.from(location, "binary").toString(), from);
}

/** A 3xx that came back as an answer: one the redirect rule refused to follow. */
export function redirectRefused(
  route: string,
  status: number,
  location: string,
  from: string,
): RequestFailure {
  const origin = redirectTarget(location, from)?.origin ?? "an unparsable location";
  return new RequestFailure(
    "redirect_refused",
    `${route}: HTTP ${status} redirect to ${origin} refused (only the same origin and method are followed); fix the service's base URL`,
    status,
  );
}

/** A body past `maxBytes`, which the request was aborted for. */
export function bodyTooLarge(route: string, maxBytes: number): RequestFailure {
  return new RequestFailure("body_too_large", `${route}: body over ${maxBytes} bytes`);
}

/**
 * A request that got rejected. With `throwHttpErrors: false` every HTTP answer resolves (after its
 * retries), so what rejects is a timeout, an abort, a redirect loop or a network failure. Once the
 * caller's `signal` aborted, whatever it aborted with (a TimeoutError included) cut the request off.
 */
export function toFailure(
  error: unknown,
  route: string,
  signal: AbortSignal | undefined,
): RequestFailure {
  // got wraps every failure of the request itself; anything else is a bug and must surface.
  if (!(error instanceof RequestError)) throw error;
  const fail = (reason: RequestReason, detail: string) =>
    new RequestFailure(reason, `${route}: ${detail}`, undefined, { cause: error });
  if (signal?.aborted) return fail("aborted", "aborted");
  if (error instanceof TimeoutError) return fail("timeout", "timed out");
  if (error instanceof AbortError) return fail("aborted", "aborted");
  if (error instanceof MaxRedirectsError) return fail("invalid_response", "too many redirects");
  // Refused, reset, unresolvable, or a body that broke off: the service is not answering.
  return fail("unreachable", error.code ?? "network error");
}

/** Fails with `http_<status>` unless the answer is 2xx. */
export function expectOk<A extends { status: number; route: string }>(answer: A): A {
  if (answer.status < 200 || answer.status > 299) {
    throw new RequestFailure(
      `http_${answer.status}`,
      `${answer.route}: HTTP ${answer.status}`,
      answer.status,
    );
  }
  return answer;
}

/** Parses a body as JSON against its schema; never puts a received value in the error. */
export function parseBody<S extends z.ZodType>(answer: Answer, schema: S): z.infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    throw new RequestFailure(
      "invalid_response",
      `${answer.route}: HTTP ${answer.status} body is not JSON`,
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new RequestFailure(
      "invalid_response",
      `${answer.route}: ${describeIssues(parsed.error)}`,
      answer.status,
    );
  }
  return parsed.data;
}
