/**
 * `--pushgateway`: at the end of every sweep whose settings could be read, POST the run's metrics
 * to a Prometheus Pushgateway. A run that did not succeed leaves the last-success gauge out, so
 * the Pushgateway keeps the last success it holds (POST replaces only the metric names it sends).
 */
import got, { RequestError, TimeoutError } from "got";
import { DEFAULTS } from "../../defaults.ts";
import {
  countRequest,
  emptyTally,
  epochSeconds,
  formatMetrics,
  shardLabel,
  succeeded,
} from "../../reporters/metrics.ts";
import { shownUrl } from "../../reporters/safe-text.ts";
import { sameOriginRedirect } from "../../services/http.ts";
import type { NotifierFactory } from "../lifecycle.ts";

/** Kept back from the run's hard bound (`RunFacts.endBy`) for the process to drain and exit. */
const EXIT_MARGIN_MS = 250;

/**
 * The push URL: `/metrics/job/ml_scheduler` plus any further grouping labels, under the base's
 * own path (a gateway behind a path prefix works). A shard passes `[["shard", String(i)]]`,
 * giving `/metrics/job/ml_scheduler/shard/<i>`, so that shards do not replace each other.
 */
export function pushUrl(base: string, grouping: ReadonlyArray<[string, string]> = []): URL {
  const url = new URL(base);
  const key = [["job", "ml_scheduler"], ...grouping].map(([name, value]) =>
    groupingPair(name as string, value as string),
  );
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/metrics/${key.join("/")}`;
  return url;
}

/**
 * One label of the grouping key as a path pair. A value that is empty or holds a slash goes in
 * the Pushgateway's base64url form (`name@base64/...`): an escaped slash does not survive proxies.
 */
function groupingPair(name: string, value: string): string {
  if (value !== "" && !value.includes("/")) return `${name}/${encodeURIComponent(value)}`;
  return `${name}@base64/${Buffer.from(value).toString("base64url") || "="}`;
}

/** The Pushgateway notifier, when `--pushgateway` (or PUSHGATEWAY_URL) is set. */
export const pushgatewayNotifier: NotifierFactory = ({ options, warn, signal: hush }) => {
  const base = options.pushgateway;
  if (typeof base !== "string") return undefined;
  // The grouping key adds the label to every pushed sample: the body does not repeat it.
  const url = pushUrl(base, Object.entries(shardLabel(options.shard)));
  const tally = emptyTally();
  // Its own small instance: the services' long timeouts and retries are not for a side channel.
  const client = got.extend({
    method: "POST",
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    timeout: { request: DEFAULTS.pushTimeoutMs },
    retry: { limit: 1, methods: ["POST"] },
    throwHttpErrors: false,
    responseType: "text",
    // A 307/308 on the gateway's own origin only; anything else comes back as a failed push.
    followRedirect: sameOriginRedirect(url.origin),
  });
  const failed = (why: string) =>
    warn(
      `The push to the Pushgateway at ${shownUrl(base)} failed (${why}); the exit code is unchanged.`,
    );
  return {
    event: (event) => countRequest(tally, event),
    async finish(end) {
      // Stopped by a second signal, which the lifecycle has said: no push, no more words.
      if (end.command !== "sweep" || hush.aborted) return;
      const lastSuccess = succeeded(end.exitCode) ? epochSeconds(end.finishedAt) : undefined;
      const left = end.endBy === undefined ? undefined : end.endBy - Date.now() - EXIT_MARGIN_MS;
      if (left !== undefined && left <= 0)
        return failed("no time left before the deadline's bound");
      const bound = left === undefined ? undefined : AbortSignal.timeout(left);
      try {
        const response = await client(url, {
          body: formatMetrics(end, tally, lastSuccess),
          signal: bound ? AbortSignal.any([bound, hush]) : hush,
        });
        if (response.statusCode < 200 || response.statusCode > 299) {
          // The gateway's reason helps (a 400 names the inconsistent metric); no terminal escapes.
          const said = (response.body.split("\n")[0] ?? "").replace(/\p{Cc}/gu, "").slice(0, 200);
          failed(`HTTP ${response.statusCode}${said ? `: ${said}` : ""}`);
        }
      } catch (error) {
        if (hush.aborted) return;
        failed(
          bound?.aborted
            ? "stopped at the deadline's bound"
            : error instanceof TimeoutError
              ? `no answer within ${DEFAULTS.pushTimeoutMs} ms`
              : error instanceof RequestError
                ? (error.code ?? error.message)
                : String(error),
        );
      }
    },
  };
};
