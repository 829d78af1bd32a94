/**
 * `--ping-url`: a dead man's switch in the healthchecks.io protocol. A start ping when the sweep
 * starts, an end ping with the exit code when the run ends (also when it ended before starting).
 * Best effort: a ping that fails is one warn line, never another exit code, and never outlives
 * the deadline's bound.
 */
import got, { type Got, RequestError, TimeoutError } from "got";
import { shownUrl } from "../output/safe-text.ts";
import { sameOriginRedirect } from "../services/http.ts";
import type { Notifier, NotifierFactory, RunFacts } from "./notifier.ts";
import {
  type PingEnd,
  type PingSignal,
  pingBody,
  pingUrl,
  SHARD_PLACEHOLDER,
  shardPingBase,
} from "./ping-url.ts";

/** Each attempt's timeout; one retry, after at most about half a second. */
const ATTEMPT_MS = 3_000;
/** Left before `endBy` for the rest of the run to end (drain stdout and stderr, exit). */
const EXIT_MARGIN_MS = 250;
/** Less time than this left before the bound: the ping is skipped rather than started. */
const MIN_BUDGET_MS = 100;
/** A monitor answers "OK": a longer answer is cut off rather than read. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The ping notifier, when `--ping-url` (or PING_URL) is set. */
export const pingNotifier: NotifierFactory = ({ options, warn, signal: hush }) => {
  const given = options.pingUrl;
  if (typeof given !== "string") return undefined;
  const base = shardPingBase(given, options.shard);
  if (base === undefined) {
    warn(
      `--ping-url has ${SHARD_PLACEHOLDER} but this run has no shard: no ping is sent; give --shard or --shards, or leave ${SHARD_PLACEHOLDER} out.`,
    );
    return undefined;
  }
  const client = createPingClient(base);
  const origin = shownUrl(base);
  /** Sends one ping; a failure is one warn line naming the monitor's origin, never its URL. */
  const ping = async (signal: PingSignal, run: RunFacts, budgetMs: number, body?: string) => {
    const what = signal === "start" ? "start ping" : `end ping (exit ${signal})`;
    const failure = await send(client, pingUrl(base, signal, run.runId), budgetMs, hush, body);
    // Stopped by a second signal: the lifecycle has said so.
    if (failure && !hush.aborted)
      warn(`The ${what} to ${origin} ${failure}; the run's exit code is unchanged.`);
  };
  let started: Promise<void> | undefined;
  const notifier: Notifier = {
    // `check` is a smoke test, not the scheduled run the monitor waits for.
    start(run) {
      if (run.command !== "sweep") return Promise.resolve();
      // Not awaited: the sweep (and its deadline clock) starts at once. It takes at most half the
      // time left to the bound, so the end ping keeps the other half.
      started = ping("start", run, budget(run) / 2);
      return Promise.resolve();
    },
    async finish(end) {
      if (end.command !== "sweep") return;
      // A start that landed after the end would show the run as running, then as died.
      await started;
      await ping(end.exitCode, end, budget(end), pingBody(end satisfies PingEnd));
    },
  };
  return notifier;
};

/** Milliseconds a ping may take: unbounded without a deadline, else what is left before it. */
function budget(run: RunFacts): number {
  return run.endBy === undefined
    ? Number.POSITIVE_INFINITY
    : run.endBy - Date.now() - EXIT_MARGIN_MS;
}

/**
 * The monitor's own got instance: 3 s per attempt, one retry (GET and POST: a repeated ping is
 * one more log line), redirects only to the ping URL's own origin, keeping the method.
 */
function createPingClient(base: string): Got {
  return got.extend({
    timeout: { request: ATTEMPT_MS },
    throwHttpErrors: false,
    // Only the status is read: no compression is asked for, and an answer encoded nevertheless
    // (a few KB of `gzip, gzip` decode to gigabytes) is not decoded.
    decompress: false,
    responseType: "text",
    maxRedirects: 3,
    followRedirect: sameOriginRedirect(new URL(base).origin),
    retry: { limit: 1, methods: ["GET", "POST"], backoffLimit: 500, maxRetryAfter: 1_000 },
    headers: { "user-agent": "ml-scheduler" },
  });
}

/** Sends one ping within `budgetMs`: undefined when the monitor took it, else why not. */
async function send(
  client: Got,
  url: URL,
  budgetMs: number,
  hush: AbortSignal,
  body?: string,
): Promise<string | undefined> {
  if (hush.aborted) return "was not sent: stopped by a second signal";
  if (budgetMs < MIN_BUDGET_MS) return "was skipped: the --deadline bound leaves no time for it";
  const controller = new AbortController();
  const onHush = () => controller.abort();
  hush.addEventListener("abort", onHush, { once: true });
  let cut: "deadline" | "size" | undefined;
  const timer = Number.isFinite(budgetMs)
    ? setTimeout(() => {
        cut = "deadline";
        controller.abort();
      }, budgetMs)
    : undefined;
  try {
    const request = client(url, {
      method: body === undefined ? "GET" : "POST",
      body,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      signal: controller.signal,
    });
    request.on("downloadProgress", ({ transferred }) => {
      if (transferred <= MAX_ANSWER_BYTES) return;
      cut ??= "size";
      controller.abort();
    });
    const { statusCode } = await request;
    if (statusCode >= 200 && statusCode < 300) return undefined;
    const refused = statusCode >= 300 && statusCode < 400 ? " (a redirect, not followed)" : "";
    return `was answered HTTP ${statusCode}${refused}`;
  } catch (error) {
    if (cut === "deadline") return "was cut short by the --deadline bound";
    if (cut === "size") return `answered more than ${MAX_ANSWER_BYTES} bytes`;
    const attempts = error instanceof RequestError ? (error.request?.retryCount ?? 0) + 1 : 1;
    const reason =
      error instanceof TimeoutError
        ? `timed out (${ATTEMPT_MS / 1000} s)`
        : error instanceof RequestError
          ? `failed (${error.code})`
          : "failed";
    return `${reason} after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
  } finally {
    clearTimeout(timer);
    hush.removeEventListener("abort", onHush);
  }
}
