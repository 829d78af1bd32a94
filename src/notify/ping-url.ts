/**
 * Pings in the healthchecks.io protocol (Healthchecks and its self-hosted clones): where each one
 * goes and what it says. A hosted monitor is outside the hospital, so a ping says how the run
 * ended in codes and counts only. https://healthchecks.io/docs/http_api/
 */
import type { Counts } from "../core/report.ts";

/**
 * The check URL of a shard: `{shard}` replaced by its index, so each index has its own check.
 * Undefined when the URL has `{shard}` but the run has no shard (which check is unknowable).
 */
export function shardPingBase(base: string, shard: unknown): string | undefined {
  if (!base.includes(SHARD_PLACEHOLDER)) return base;
  const index = (shard as { index?: unknown } | undefined)?.index;
  return typeof index === "number" ? base.replaceAll(SHARD_PLACEHOLDER, String(index)) : undefined;
}

/** Where `--ping-url` takes the shard's index. */
export const SHARD_PLACEHOLDER = "{shard}";

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
