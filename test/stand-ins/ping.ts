// Stand-in for a Healthchecks ping endpoint (https://healthchecks.io/docs/http_api/): one check at
// `/ping/<uuid>`, answering `OK` to `<check>/start` and `<check>/<exit status 0-255>` by GET or POST,
// `not found` elsewhere, and 400 to a run id that is not a UUID, as Healthchecks does.
import type { ServerResponse } from "node:http";
import { send } from "./fastapi.ts";
import type { RecordedRequest, StandIn } from "./server.ts";
import { StandInServer } from "./server.ts";

/** The check's UUID: a secret of sorts (anyone holding it can ping), so never logged. */
export const CHECK_UUID = "5f2b7a9e-0c1d-4e8f-9a6b-3c4d5e6f7a8b";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One ping as the monitor saw it. */
export interface Ping {
  method: string;
  /** What followed the check's path: `start`, or the exit status. */
  signal: string;
  path: string;
  /** Path and query as received. */
  url: string;
  query: URLSearchParams;
  rid: string | null;
  body: string;
}

export interface PingStandIn extends StandIn {
  /** The ping URL to configure: `<server>/ping/<uuid>`. */
  readonly checkUrl: string;
  /** Every request that reached the check, in arrival order (retries and failed ones included). */
  readonly pings: Ping[];
}

class PingServer extends StandInServer implements PingStandIn {
  get checkUrl(): string {
    return `${this.url}/ping/${CHECK_UUID}`;
  }

  get pings(): Ping[] {
    const prefix = `/ping/${CHECK_UUID}/`;
    return this.requests
      .filter((r) => r.path.startsWith(prefix))
      .map((r) => ({
        method: r.method,
        signal: r.path.slice(prefix.length),
        path: r.path,
        url: r.url,
        query: r.query,
        rid: r.query.get("rid"),
        body: r.body,
      }));
  }

  protected override handle(req: RecordedRequest, res: ServerResponse): void {
    const [status, body] = answer(req);
    send(res, status, body, "text/plain; charset=utf-8");
  }
}

/** Healthchecks' answer to a ping: its status and text. */
function answer(req: RecordedRequest): [number, string] {
  const match = /^\/ping\/([^/]+)\/(start|\d{1,3})$/.exec(req.path);
  if (!match || match[1] !== CHECK_UUID || Number(match[2]) > 255) return [404, "not found"];
  if (!["GET", "POST", "HEAD"].includes(req.method)) return [405, ""];
  const rid = req.query.get("rid");
  if (rid !== null && !UUID.test(rid)) return [400, "invalid uuid format"];
  return [200, "OK"];
}

export async function startPing(): Promise<PingStandIn> {
  const server = new PingServer();
  await server.listen();
  return server;
}
