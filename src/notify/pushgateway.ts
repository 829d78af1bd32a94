/**
 * `--pushgateway`: at the end of every sweep whose settings could be read, POST the run's metrics
 * to a Prometheus Pushgateway. A run that did not succeed leaves the last-success gauge out, so
 * the Pushgateway keeps the last success it holds (POST replaces only the metric names it sends).
 */
import type { IncomingHttpHeaders } from "node:http";
import { shownUrl } from "../output/safe-text.ts";
import {
  countRequest,
  emptyTally,
  epochSeconds,
  formatMetrics,
  shardLabel,
  succeeded,
} from "./metrics.ts";
import type { NotifierFactory } from "./notifier.ts";
import { sendWithin, sideChannel, timeLeft } from "./send.ts";

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
export const pushgatewayNotifier: NotifierFactory = ({ options, fail, signal: hush }) => {
  const base = options.pushgateway;
  if (base === undefined) return undefined;
  // The grouping key adds its labels to every pushed sample: the body does not repeat them.
  // --pushgateway-label's first (a deployment's), then the shard's.
  const url = pushUrl(base, [
    ...(options.pushgatewayLabel ?? []),
    ...Object.entries(shardLabel(options.shard)),
  ]);
  const tally = emptyTally();
  const client = sideChannel(url.origin, {
    "content-type": "text/plain; version=0.0.4; charset=utf-8",
  });
  return {
    event: (event) => countRequest(tally, event),
    async finish(end) {
      if (end.command !== "sweep") return;
      const lastSuccess = succeeded(end.exitCode) ? epochSeconds(end.finishedAt) : undefined;
      const body = formatMetrics(end, tally, lastSuccess);
      const sent = await sendWithin(
        client,
        url,
        { method: "POST", body },
        timeLeft(end.endBy),
        hush,
      );
      // Stopped by a second signal, which the lifecycle has said: no more words.
      if (hush.aborted) return;
      const failure =
        "failed" in sent
          ? sent.failed
          : sent.status < 200 || sent.status > 299
            ? `HTTP ${sent.status}${reason(sent.headers, sent.body)}`
            : undefined;
      if (failure)
        fail(
          `The push to the Pushgateway at ${shownUrl(base)} failed (${failure}); the exit code is unchanged.`,
        );
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
