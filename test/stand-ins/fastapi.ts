// FastAPI and Starlette behaviour both stand-ins share: how answers are written, the router's
// 307/404/405 rules, and pydantic-1-style validation errors.
import type { ServerResponse } from "node:http";
import type { RecordedRequest } from "./server.ts";

export const HTML_PAGE =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Patient monitor</title></head><body><div id="root"></div><script src="/static/js/main.js"></script></body></html>';

export function send(
  res: ServerResponse,
  status: number,
  body: string,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...headers,
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** FastAPI's JSONResponse: compact JSON, application/json */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers = {}): void {
  send(res, status, JSON.stringify(value), "application/json", headers);
}

/** Starlette's answer to an unhandled exception */
export function sendInternalError(res: ServerResponse): void {
  send(res, 500, "Internal Server Error", "text/plain; charset=utf-8");
}

export interface Route {
  method: string;
  path: string;
  handle: (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;
}

/** Starlette's router: 405 for a known path, else a 307 to the other slash form if that exists, else 404. */
export function dispatch(
  routes: Route[],
  req: RecordedRequest,
  res: ServerResponse,
): void | Promise<void> {
  const here = routes.filter((r) => r.path === req.path);
  const method = req.method === "HEAD" ? "GET" : req.method; // Starlette serves HEAD with GET routes
  const route = here.find((r) => r.method === method);
  if (route) return route.handle(req, res);
  if (here.length > 0) {
    const allow = here.map((r) => r.method).join(", ");
    return sendJson(res, 405, { detail: "Method Not Allowed" }, { allow });
  }
  const other = req.path.endsWith("/") ? req.path.slice(0, -1) : `${req.path}/`;
  if (req.path !== "/" && routes.some((r) => r.path === other)) {
    const search = req.query.size > 0 ? `?${req.url.split("?").slice(1).join("?")}` : "";
    res.writeHead(307, {
      location: `http://${req.headers.host ?? "127.0.0.1"}${other}${search}`,
      "content-length": "0",
    });
    return void res.end();
  }
  return sendJson(res, 404, { detail: "Not Found" });
}

/** pydantic 1's int coercion: ints, bools, floats (truncated) and Python-int()-like strings. */
export function toInt(v: unknown): number | undefined {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return Number.isFinite(v) ? Math.trunc(v) : undefined;
  if (typeof v === "string" && /^\s*[+-]?\d+(_\d+)*\s*$/.test(v))
    return Number(v.replaceAll("_", ""));
  return undefined;
}

export const notInt = (loc: Array<string | number>) => ({
  loc,
  msg: "value is not a valid integer",
  type: "type_error.integer",
});
export const missing = (loc: Array<string | number>) => ({
  loc,
  msg: "field required",
  type: "value_error.missing",
});

/** FastAPI's body reading: an empty body is a missing one, broken JSON a 422 (position simplified). */
export function parseBody(body: string): { value: unknown } | { errors: object[] } {
  if (body === "") return { errors: [missing(["body"])] };
  try {
    return { value: JSON.parse(body) };
  } catch {
    const msg = "Expecting value: line 1 column 1 (char 0)";
    return { errors: [{ loc: ["body", 0], msg, type: "value_error.jsondecode" }] };
  }
}
