/**
 * The retry policy of a service's requests: what is retried, how long to wait between attempts,
 * and the narrower policy of a request that must never run twice at once.
 */

import type { RetryFunction, RetryOptions } from "got";
import type { ServiceSettings } from "./http.ts";

export const RETRY_STATUS = [408, 429, ...Array.from({ length: 100 }, (_, i) => 500 + i)];

/**
 * got's default network errors (its documented `retry.errorCodes`), and a body that ended before
 * its Content-Length: the same break as a chunked body's reset (which got retries as ECONNRESET),
 * from a server that announced the length.
 */
export const RETRY_ERRORS = [
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

/** Retry-After when the service sent one (got has checked it against the cap), else backoff. */
export function backoff(settings: ServiceSettings): RetryFunction {
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
