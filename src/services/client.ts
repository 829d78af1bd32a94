/**
 * One got instance per service, built once with its base URL, timeout, retry policy and redirect
 * rule, and got's hooks around each attempt (the rate cap, `onAttempt`).
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
  type Options,
  type RequestError,
  TimeoutError,
} from "got";
import type { ClientHooks, ServiceClient, ServiceSettings } from "./http.ts";
import { createRateCap } from "./rate.ts";
import { sameOriginRedirect } from "./redirect.ts";
import { backoff, RETRY_ERRORS, RETRY_STATUS } from "./retry.ts";

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
