// Shared machinery for the HTTP stand-ins: a real server on 127.0.0.1:0 that records every request,
// and lets tests hold requests, inject faults, add latency or "kill" the service.

import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { HTML_PAGE, send, sendInternalError, sendJson } from "./fastapi.ts";

export interface RecordedRequest {
  /** index in `requests` (0-based, arrival order) */
  seq: number;
  method: string;
  /** pathname */
  path: string;
  query: URLSearchParams;
  /** path + query as received */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** performance.now() when the request arrived (its body read) */
  at: number;
}

export type Fault =
  | {
      kind: "status";
      status: number;
      body?: string;
      contentType?: string;
      headers?: Record<string, string>;
    }
  | { kind: "reset" }
  | { kind: "stall" }
  | { kind: "html" }
  | { kind: "malformed" }
  | { kind: "body"; status?: number; body: string; contentType?: string }
  | { kind: "oversize"; bytes: number }
  /**
   * A 200 whose body is made as it is sent (with backpressure), so that a test can serve tens of
   * MiB without holding them; `headers` (a content-encoding, a content-length) are sent as given.
   */
  | { kind: "stream"; body: () => Readable; headers?: Record<string, string> };

export interface Hold {
  waitFor(count?: number, timeoutMs?: number): Promise<void>;
  release(): void;
  readonly held: number;
}

type Match = (r: RecordedRequest) => boolean;

export interface StandIn {
  readonly url: string;
  readonly requests: RecordedRequest[];
  hold(match: Match): Hold;
  fault(match: Match, fault: Fault, times?: number): void;
  chaos(opts: { seed: number; rate: number; faults: Fault[]; match?: Match }): void;
  readonly faulted: Array<{ seq: number; fault: Fault }>;
  waitForRequests(match: Match, count: number, timeoutMs?: number): Promise<void>;
  latencyMs: number;
  /**
   * How the service bears load. A number k is a pool of k workers (`{ shape: "pool", workers: k }`);
   * undefined: no limit.
   */
  capacity: number | Capacity | undefined;
  /** Called with each request the service served (not shed), ms from its arrival to its answer. */
  onServed: ((request: RecordedRequest, ms: number) => void) | undefined;
  /** Requests in flight now, and the most there have been at once. */
  readonly inFlight: number;
  readonly peakInFlight: number;
  /** Requests answered 429 or 503 by the capacity limit (shed). */
  readonly overloaded: number;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/**
 * The shapes of a service's capacity, counted in requests in flight (the one arriving included):
 * - `pool`: `workers` workers; above that many the rest queue for one (slower and slower), and a
 *   request arriving while twice as many are in flight is answered 429 at once.
 * - `slows`: every request above `threshold` adds `extraMs` to the latency of one arriving now;
 *   above `limit` it is answered 429 at once.
 * - `sheds`: above `threshold` a request is answered `status` at once, with Retry-After: 1; the
 *   service never slows.
 */
export type Capacity =
  | { shape: "pool"; workers: number }
  | { shape: "slows"; threshold: number; extraMs: number; limit: number }
  | { shape: "sheds"; threshold: number; status: 429 | 503 };

/** mulberry32: a tiny seeded PRNG, so chaos and generated data are reproducible (no Math.random) */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-mixed 32-bit hash of (seed, n): per-item randomness that does not depend on visiting order. */
export function hash32(seed: number, n: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ n;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Waits for `cond` to become true, re-checked by `poke`; rejects after timeoutMs. */
class Waiters {
  #list: Array<() => boolean> = [];
  wait(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (!cond()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.#list = this.#list.filter((c) => c !== check);
        reject(new Error(`stand-in: timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      this.#list.push(check);
    });
  }
  poke(): void {
    this.#list = this.#list.filter((check) => !check());
  }
}

interface HoldState {
  match: Match;
  released: boolean;
  held: number;
  resume: Array<() => void>;
}

/** Subclasses override `handle`; everything around it (recording, holds, faults) lives here. */
export class StandInServer implements StandIn {
  url = "";
  readonly requests: RecordedRequest[] = [];
  readonly faulted: Array<{ seq: number; fault: Fault }> = [];
  latencyMs = 0;
  capacity: number | Capacity | undefined;
  onServed: ((request: RecordedRequest, ms: number) => void) | undefined;
  #server: Server;
  #inFlight = 0;
  #peakInFlight = 0;
  #overloaded = 0;
  #working = 0;
  #workerQueue: Array<() => void> = [];
  #sockets = new Set<Socket>();
  #holds: HoldState[] = [];
  #faults: Array<{ match: Match; fault: Fault; left: number }> = [];
  #chaos: { rand: () => number; rate: number; faults: Fault[]; match: Match } | undefined;
  #waiters = new Waiters();
  #down = false;
  #closing: Promise<void> | undefined;

  constructor() {
    this.#server = createServer((req, res) => this.#receive(req, res));
    this.#server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
  }

  /** Listens on 127.0.0.1: on `port`, else on one the system picks. */
  listen(port = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, "127.0.0.1", () => {
        this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  hold(match: Match): Hold {
    const h: HoldState = { match, released: false, held: 0, resume: [] };
    this.#holds.push(h);
    const waiters = this.#waiters;
    return {
      get held() {
        return h.held;
      },
      waitFor: (count = 1, timeoutMs = 5000) =>
        waiters.wait(
          () => h.held >= count,
          timeoutMs,
          () => `${count} held (have ${h.held})`,
        ),
      release: () => {
        h.released = true;
        h.held = 0;
        for (const go of h.resume.splice(0)) go();
      },
    };
  }

  fault(match: Match, fault: Fault, times = Number.POSITIVE_INFINITY): void {
    this.#faults.push({ match, fault, left: times });
  }

  chaos(opts: { seed: number; rate: number; faults: Fault[]; match?: Match }): void {
    const { seed, rate, faults, match = () => true } = opts;
    this.#chaos = { rand: prng(seed), rate, faults, match };
  }

  waitForRequests(match: Match, count: number, timeoutMs = 5000): Promise<void> {
    const have = () => this.requests.filter(match).length;
    return this.#waiters.wait(
      () => have() >= count,
      timeoutMs,
      () => `${count} requests (have ${have()})`,
    );
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  get overloaded(): number {
    return this.#overloaded;
  }

  down(): void {
    this.#down = true;
  }

  up(): void {
    this.#down = false;
  }

  close(): Promise<void> {
    this.#closing ??= new Promise((resolve) => {
      this.#server.close(() => resolve());
      // held requests wake up, see their socket destroyed and stop; stalled ones just die
      for (const h of this.#holds) for (const go of h.resume.splice(0)) go();
      for (const go of this.#workerQueue.splice(0)) go();
      for (const s of this.#sockets) s.destroy();
    });
    return this.#closing;
  }

  #receive(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      this.#process(req, res, Buffer.concat(chunks).toString("utf8")).catch(() => res.destroy());
    });
  }

  async #process(req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const url = req.url ?? "/";
    const parsed = new URL(url, "http://stand-in");
    const rec: RecordedRequest = {
      seq: this.requests.length,
      method: req.method ?? "GET",
      path: parsed.pathname,
      query: parsed.searchParams,
      url,
      headers: req.headers,
      body,
      at: performance.now(),
    };
    this.requests.push(rec);
    this.#waiters.poke();
    if (this.#down) return reset(req);
    this.#inFlight++;
    this.#peakInFlight = Math.max(this.#peakInFlight, this.#inFlight);
    try {
      await this.#admitted(req, res, rec);
    } finally {
      this.#inFlight--;
    }
  }

  /** Past the capacity limit (if any): a worker, then holds, faults, latency and the handler. */
  async #admitted(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest): Promise<void> {
    const capacity =
      typeof this.capacity === "number"
        ? ({ shape: "pool", workers: this.capacity } as const)
        : this.capacity;
    const served = async (extraMs = 0) => {
      await this.#served(req, res, rec, extraMs);
      this.onServed?.(rec, performance.now() - rec.at);
    };
    if (capacity === undefined) return served();
    const n = this.#inFlight;
    switch (capacity.shape) {
      case "slows":
        if (n > capacity.limit) return this.#shed(res, 429);
        return served(capacity.extraMs * Math.max(0, n - capacity.threshold));
      case "sheds":
        if (n > capacity.threshold) return this.#shed(res, capacity.status, { "retry-after": "1" });
        return served();
      case "pool":
        if (n > 2 * capacity.workers) return this.#shed(res, 429);
    }
    if (this.#working < capacity.workers) this.#working++;
    else await new Promise<void>((go) => this.#workerQueue.push(go));
    try {
      await served();
    } finally {
      // the worker passes straight to the next in line, or goes idle
      const next = this.#workerQueue.shift();
      if (next) next();
      else this.#working--;
    }
  }

  #shed(res: ServerResponse, status: 429 | 503, headers?: Record<string, string>): void {
    this.#overloaded++;
    const detail = status === 429 ? "Too Many Requests" : "Service Unavailable";
    sendJson(res, status, { detail }, headers);
  }

  async #served(
    req: IncomingMessage,
    res: ServerResponse,
    rec: RecordedRequest,
    extraMs: number,
  ): Promise<void> {
    const gone = () => this.#closing !== undefined || req.socket.destroyed;
    const holds = this.#holds.filter((h) => !h.released && h.match(rec));
    if (holds.length > 0) {
      const released = holds.map(
        (h) =>
          new Promise<void>((go) => {
            h.resume.push(go);
            h.held++;
          }),
      );
      this.#waiters.poke();
      await Promise.all(released);
    }
    if (gone()) return;
    if (this.#down) return reset(req);
    // the fault is chosen once the request is past its holds, in that order, so it is reproducible
    const fault = this.#pickFault(rec);
    if (fault) this.faulted.push({ seq: rec.seq, fault });
    const latencyMs = this.latencyMs + extraMs;
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    if (gone()) return;
    if (fault) return applyFault(req, res, fault);
    try {
      await this.handle(rec, res);
    } catch {
      if (res.headersSent) res.destroy();
      else sendInternalError(res);
    }
  }

  protected handle(_req: RecordedRequest, res: ServerResponse): void | Promise<void> {
    sendJson(res, 404, { detail: "Not Found" });
  }

  #pickFault(rec: RecordedRequest): Fault | undefined {
    const entry = this.#faults.find((f) => f.left > 0 && f.match(rec));
    if (entry) {
      entry.left--;
      return entry.fault;
    }
    const c = this.#chaos;
    if (!c || c.faults.length === 0 || !c.match(rec)) return undefined;
    // always draw twice so one request's outcome never shifts the next request's draws
    const hit = c.rand() < c.rate;
    const which = Math.floor(c.rand() * c.faults.length);
    return hit ? c.faults[which] : undefined;
  }
}

/** A connection reset (RST), as a crashed or killed service gives. */
function reset(req: IncomingMessage): void {
  req.socket.resetAndDestroy();
}

async function applyFault(req: IncomingMessage, res: ServerResponse, fault: Fault): Promise<void> {
  switch (fault.kind) {
    case "status":
      return send(
        res,
        fault.status,
        fault.body ?? "Internal Server Error",
        fault.contentType ?? "text/plain; charset=utf-8",
        fault.headers,
      );
    case "reset":
      return reset(req);
    case "stall":
      return; // never answered: the socket stays open until the client gives up or close()
    case "html":
      return send(res, 200, HTML_PAGE, "text/html");
    case "malformed":
      return send(res, 200, '{"a": [1,', "application/json");
    case "body":
      return send(res, fault.status ?? 200, fault.body, fault.contentType ?? "application/json");
    case "oversize":
      return streamArray(res, fault.bytes);
    case "stream":
      res.writeHead(200, { "content-type": "application/json", ...fault.headers });
      // The client may stop reading at any point: that ends the stream, not the server.
      return pipeline(fault.body(), res).catch(() => {});
  }
}

/** Streams a valid JSON array of exactly `bytes` bytes ("[0,0,...]"), chunked, with backpressure. */
async function streamArray(res: ServerResponse, bytes: number): Promise<void> {
  res.writeHead(200, { "content-type": "application/json" });
  let left = Math.max(0, bytes - 2);
  res.write(left > 0 ? "[0" : "[");
  if (left > 0) left--;
  const chunk = ",0".repeat(32 * 1024);
  while (left >= 2 && !res.destroyed) {
    const n = Math.min(chunk.length, left - (left % 2));
    left -= n;
    if (!res.write(n === chunk.length ? chunk : chunk.slice(0, n))) {
      await new Promise<void>((go) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          go();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    }
  }
  if (!res.destroyed) res.end(left === 1 ? " ]" : "]");
}
