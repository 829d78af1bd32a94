// Stand-in for a Prometheus Pushgateway: records every push (method, path, body) and keeps each
// group's metrics as the real one does: PUT replaces the whole group, POST only the metric names
// it sends. A body that is not text exposition is refused with 400, as the real one refuses it.
import type { ServerResponse } from "node:http";
import { send } from "./fastapi.ts";
import type { RecordedRequest, StandIn } from "./server.ts";
import { StandInServer } from "./server.ts";

export interface PushgatewayOptions {
  /** The path the gateway is served under (behind a reverse proxy), e.g. "/pushgateway". */
  prefix?: string;
}

export interface Pushgateway extends StandIn {
  /** Requests to `<prefix>/metrics/...`, in arrival order. */
  readonly pushes: RecordedRequest[];
  /** Each group's samples by metric name: `job/ml_scheduler` → name → sample lines. */
  readonly groups: Map<string, Map<string, string[]>>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/;

class PushgatewayServer extends StandInServer implements Pushgateway {
  readonly groups = new Map<string, Map<string, string[]>>();
  readonly #prefix: string;

  constructor(options: PushgatewayOptions) {
    super();
    this.#prefix = options.prefix ?? "";
  }

  get pushes(): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(`${this.#prefix}/metrics/`));
  }

  protected override handle(req: RecordedRequest, res: ServerResponse): void {
    const [status, body] = this.#push(req);
    send(res, status, body, "text/plain; charset=utf-8");
  }

  /** The real gateway's answers: 404 off its routes, 405 for a GET there, 400 for a bad body. */
  #push(req: RecordedRequest): [number, string] {
    const key = req.path.slice(`${this.#prefix}/metrics/`.length);
    if (!req.path.startsWith(`${this.#prefix}/metrics/job/`) || key.split("/").length % 2 !== 0) {
      return [404, "404 page not found\n"];
    }
    if (req.method !== "POST" && req.method !== "PUT") return [405, "Method Not Allowed\n"];
    const families = new Map<string, string[]>();
    for (const [i, line] of req.body.split("\n").entries()) {
      if (line === "" || line.startsWith("#")) continue;
      const name = SAMPLE.exec(line)?.[1];
      if (name === undefined) return [400, `text format parsing error in line ${i + 1}\n`];
      families.set(name, [...(families.get(name) ?? []), line]);
    }
    const group = req.method === "PUT" ? new Map() : (this.groups.get(key) ?? new Map());
    for (const [name, samples] of families) group.set(name, samples);
    this.groups.set(key, group);
    return [200, ""];
  }
}

export async function startPushgateway(options: PushgatewayOptions = {}): Promise<Pushgateway> {
  const gateway = new PushgatewayServer(options);
  await gateway.listen();
  return gateway;
}
