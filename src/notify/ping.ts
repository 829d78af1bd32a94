/**
 * `--ping-url`: a dead man's switch in the healthchecks.io protocol (Healthchecks and its
 * self-hosted clones). A start ping when the sweep starts, an end ping with the exit code when the
 * run ends (also when it ended before starting). A hosted monitor is outside the hospital, so a
 * ping says how the run ended in codes and counts only. Best effort: a ping that fails is one error
 * line, never another exit code, and never outlives the deadline's bound.
 * https://healthchecks.io/docs/http_api/
 */
import type { Counts } from "../core/report.ts";
import { shownUrl } from "../output/safe-text.ts";
import { SHARD_PLACEHOLDER, withShard } from "./metrics.ts";
import type { Notifier, NotifierFactory, RunFacts } from "./notifier.ts";
import { sendWithin, sideChannel, timeLeft } from "./send.ts";

/** The ping notifier, when `--ping-url` (or PING_URL) is set. */
export const pingNotifier: NotifierFactory = ({ options, fail, signal: hush }) => {
  const given = options.pingUrl;
  if (given === undefined) return undefined;
  const base = shardPingBase(given, options.shard);
  if (base === undefined) {
    fail(
      `--ping-url has ${SHARD_PLACEHOLDER} but this run has no shard: no ping is sent; give --shard or --shards, or leave ${SHARD_PLACEHOLDER} out.`,
    );
    return undefined;
  }
  const client = sideChannel(new URL(base).origin, {});
  const origin = shownUrl(base);
  /** Sends one ping; a failure is one error line naming the monitor's origin, never its URL. */
  const ping = async (signal: PingSignal, run: RunFacts, budgetMs: number, body?: string) => {
    const what = signal === "start" ? "start ping" : `end ping (exit ${signal})`;
    const init =
      body === undefined ? { method: "GET" as const } : { method: "POST" as const, body };
    const sent = await sendWithin(client, pingUrl(base, signal, run.runId), init, budgetMs, hush);
    // Stopped by a second signal: the lifecycle has said so.
    if (hush.aborted) return;
    const failure =
      "failed" in sent
        ? sent.failed
        : sent.status >= 200 && sent.status < 300
          ? undefined
          : `HTTP ${sent.status}${sent.status >= 300 && sent.status < 400 ? ", a redirect not followed" : ""}`;
    if (failure)
      fail(`The ${what} to ${origin} failed (${failure}); the run's exit code is unchanged.`);
  };
  let started: Promise<void> | undefined;
  const notifier: Notifier = {
    // `check` is a smoke test, not the scheduled run the monitor waits for.
    start(run) {
      if (run.command !== "sweep") return Promise.resolve();
      // Not awaited: the sweep (and its deadline clock) starts at once. It takes at most half the
      // time left to the bound, so the end ping keeps the other half.
      started = ping("start", run, timeLeft(run.endBy) / 2);
      return Promise.resolve();
    },
    async finish(end) {
      if (end.command !== "sweep") return;
      // A start that landed after the end would show the run as running, then as died.
      await started;
      await ping(end.exitCode, end, timeLeft(end.endBy), pingBody(end satisfies PingEnd));
    },
  };
  return notifier;
};

/**
 * The check URL of a shard: `{shard}` replaced by its index, so each index has its own check.
 * Undefined when the URL has `{shard}` but the run has no shard (which check is unknowable).
 */
export const shardPingBase = withShard;

/** What a ping signals: the run started, or it ended with this exit code. */
export type PingSignal = "start" | number;

/**
 * `<url>/<signal>?<the URL's own query>&rid=<run id>`: the signal is appended to the URL's path
 * and the query is kept as given (re-encoding it could change what the monitor reads).
 */
export function pingUrl(base: string, signal: PingSignal, runId: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${signal}`;
  const rid = `rid=${encodeURIComponent(runId)}`;
  url.search = url.search.length > 1 ? `${url.search}&${rid}` : rid;
  return url;
}

/** How a run ended, as far as a ping may tell it. */
export interface PingEnd {
  exitCode: number;
  error: { code: string } | null;
  report?: { counts: Counts } | undefined;
}

/**
 * The end ping's body: the exit code, the error code and the counts (null before any sweep).
 * Never the error's message, pids or anything else a message could carry.
 */
export function pingBody(end: PingEnd): string {
  const counts = end.report ? { ...end.report.counts } : null;
  return JSON.stringify({ exitCode: end.exitCode, error: end.error?.code ?? null, counts });
}
