/**
 * `--pushgateway`: at the end of every sweep whose settings could be read, POST the run's metrics
 * to a Prometheus Pushgateway. A run that did not succeed leaves the last-success gauge out, so
 * the Pushgateway keeps the last success it holds (POST replaces only the metric names it sends).
 */
import type { IncomingHttpHeaders } from "node:http";
import got, { RequestError, TimeoutError } from "got";
import { DEFAULTS } from "../defaults.ts";
import { shownUrl } from "../output/safe-text.ts";
import { sameOriginRedirect } from "../services/http.ts";
import {
  countRequest,
  emptyTally,
  epochSeconds,
  formatMetrics,
  shardLabel,
  succeeded,
} from "./metrics.ts";
import type { NotifierFactory } from "./notifier.ts";

/** Kept back from the run's hard bound (`RunFacts.endBy`) for the process to drain and exit. */
const EXIT_MARGIN_MS = 250;
/**
 * A Pushgateway answers an empty body, or one line of error: a longer answer is cut off rather
 * than read (a 92 MiB one would end a run that already succeeded, under a heap cap).
 */
const MAX_ANSWER_BYTES = 64 * 1024;

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
    // Bytes as they came: nothing asks for compression, so an encoded answer is not decoded (1.8 KB
    // of `gzip, gzip` decode to gigabytes), and it is counted against the cap as it arrives.
    decompress: false,
    responseType: "buffer",
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
      const cut = new AbortController();
      try {
        const request = client(url, {
          body: formatMetrics(end, tally, lastSuccess),
          signal: AbortSignal.any([cut.signal, hush, ...(bound === undefined ? [] : [bound])]),
        });
        request.on("downloadProgress", ({ transferred }) => {
          if (transferred > MAX_ANSWER_BYTES) cut.abort();
        });
        const response = await request;
        if (response.statusCode < 200 || response.statusCode > 299) {
          failed(`HTTP ${response.statusCode}${reason(response.headers, response.body)}`);
        }
      } catch (error) {
        if (hush.aborted) return;
        failed(
          bound?.aborted
            ? "stopped at the deadline's bound"
            : cut.signal.aborted
              ? `its answer was over ${MAX_ANSWER_BYTES} bytes and was not read`
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

/**
 * The gateway's reason for a refused push, as `: <its first line>`: it helps (a 400 names the
 * inconsistent metric). Nothing from an encoded answer (it was not decoded), no terminal escapes.
 */
function reason(headers: IncomingHttpHeaders, body: Uint8Array): string {
  const encoding = headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") return "";
  const line = new TextDecoder().decode(body.subarray(0, 1024)).split("\n")[0] ?? "";
  const said = line.replace(/\p{Cc}/gu, "").slice(0, 200);
  return said ? `: ${said}` : "";
}
