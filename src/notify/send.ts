/**
 * What the notifiers that speak HTTP share: their own small got instance (a side channel gets
 * neither the services' long timeouts nor their retries) and one request bounded by the run's
 * hard bound, by a second signal and by the size of its answer, its failure in words. Each
 * notifier words its own error line around those words.
 */
import type { IncomingHttpHeaders } from "node:http";
import got, { type Got, RequestError, TimeoutError } from "got";
import { DEFAULTS } from "../defaults.ts";
import { sameOriginRedirect } from "../services/redirect.ts";

/** Kept back from the run's hard bound (`RunFacts.endBy`) for the process to drain and exit. */
const EXIT_MARGIN_MS = 250;
/** Less time than this left before the bound: the request is skipped rather than started. */
const MIN_BUDGET_MS = 100;
/**
 * A monitor answers "OK" and a Pushgateway an empty body or one line of error: a longer answer
 * is cut off rather than read (a 92 MiB one would end a run that already succeeded).
 */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** An answer, whatever its status: the body as bytes, at most MAX_ANSWER_BYTES of them. */
export interface Answered {
  status: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
}

/** Why a request got no answer, as words that complete "failed (...)". */
export interface Unanswered {
  failed: string;
}

/**
 * A side channel's got instance: each attempt at most DEFAULTS.notifyTimeoutMs, one retry soon
 * after (a repeated push or ping is harmless), redirects on `origin` only, keeping the method.
 * Nothing asks for compression, so an encoded answer is not decoded (1.8 KB of `gzip, gzip`
 * decode to gigabytes), and the answer is counted against the cap as it arrives.
 */
export function sideChannel(origin: string, headers: Record<string, string>): Got {
  return got.extend({
    timeout: { request: DEFAULTS.notifyTimeoutMs },
    retry: { limit: 1, methods: ["GET", "POST"], backoffLimit: 500, maxRetryAfter: 1_000 },
    throwHttpErrors: false,
    decompress: false,
    maxRedirects: 3,
    followRedirect: sameOriginRedirect(origin),
    headers: { "user-agent": "ml-scheduler", ...headers },
  });
}

/** Milliseconds a request may take: unbounded without a deadline, else what is left before it. */
export function timeLeft(endBy: number | undefined): number {
  return endBy === undefined ? Number.POSITIVE_INFINITY : endBy - Date.now() - EXIT_MARGIN_MS;
}

/** One request of a side channel within `budgetMs`, stopped at once by `hush`. */
export async function sendWithin(
  client: Got,
  url: URL,
  init: { method: "GET" | "POST"; body?: string | undefined },
  budgetMs: number,
  hush: AbortSignal,
): Promise<Answered | Unanswered> {
  if (hush.aborted) return { failed: "not sent: stopped by a second signal" };
  if (budgetMs < MIN_BUDGET_MS) return { failed: "no time left before the --deadline bound" };
  const cut = new AbortController();
  // Whole milliseconds: AbortSignal.timeout throws a RangeError (a bug, exit 70) on 968.5, which
  // half of an odd time left (the start ping's share) is.
  const bound = Number.isFinite(budgetMs) ? AbortSignal.timeout(Math.floor(budgetMs)) : undefined;
  try {
    const request = client(url, {
      method: init.method,
      body: init.body,
      responseType: "buffer",
      signal: AbortSignal.any([cut.signal, hush, ...(bound === undefined ? [] : [bound])]),
    });
    request.on("downloadProgress", ({ transferred }) => {
      if (transferred > MAX_ANSWER_BYTES) cut.abort();
    });
    const { statusCode, headers, body } = await request;
    return { status: statusCode, headers, body };
  } catch (error) {
    return { failed: whyUnanswered(error, bound?.aborted === true, cut.signal.aborted) };
  }
}

function whyUnanswered(error: unknown, atBound: boolean, tooLarge: boolean): string {
  if (atBound) return "stopped at the --deadline bound";
  if (tooLarge) return `its answer was over ${MAX_ANSWER_BYTES} bytes and was not read`;
  const attempts = error instanceof RequestError ? (error.request?.retryCount ?? 0) + 1 : 1;
  const after = `after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
  if (error instanceof TimeoutError)
    return `no answer within ${DEFAULTS.notifyTimeoutMs / 1000} s, ${after}`;
  if (error instanceof RequestError) return `${error.code}, ${after}`;
  return String(error);
}
