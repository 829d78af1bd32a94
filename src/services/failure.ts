/**
 * What a request ended with: its answer, checked for a 2xx and parsed against its schema, or a
 * RequestFailure with a stable reason for every way it can fail.
 */

import { AbortError, MaxRedirectsError, RequestError, TimeoutError } from "got";
import type { z } from "zod";
import type { RequestReason } from "./reasons.ts";
import { describeIssues } from "./schemas.ts";

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

/** The body as JSON, or undefined when it is not JSON. */
export function json(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}
