/**
 * The HTTP layer against real servers: the query it sends (built by hand, cheaper than got's
 * searchParams option) and the route it records, the compression it asks for, how its requests
 * are aborted (a light signal per request, linked to the client's), and the scheme it speaks
 * (Node's request is called by us, with got's options less the undefined ones).
 */
import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { test } from "node:test";
import { runSweep } from "../src/core/sweep.ts";
import { createClient } from "../src/services/client.ts";
import { RequestFailure } from "../src/services/failure.ts";
import { type RequestRecord, send } from "../src/services/http.ts";
import { startServices, sweepConfig } from "./helpers/services.ts";

const settings = { requestTimeoutMs: 5_000, retries: 0, retryDelayMs: 1, maxRetryAfterMs: 1_000 };

test("searchParams reach the service percent-encoded, and the recorded route keeps no query", async (t) => {
  const { backend, env } = await startServices(t);
  const records: RequestRecord[] = [];
  const client = createClient(
    { ...settings, baseUrl: env.PATIENT_SERVER as string },
    { service: "backend", onRequest: (r) => records.push(r) },
  );
  const tricky = "a b&c=d/é?#+%";
  const answer = await send(client, "api/patient/fetchVitals", {
    searchParams: { key: tricky, limit: 5 },
  });
  assert.equal(answer.route, "GET /api/patient/fetchVitals");
  assert.equal(backend.requests.length, 1);
  const [received] = backend.requests;
  assert.equal(received?.path, "/api/patient/fetchVitals");
  assert.deepEqual(
    [...(received?.query ?? [])],
    [
      ["key", tricky],
      ["limit", "5"],
    ],
  );
  assert.deepEqual(
    records.map((r) => r.route),
    ["GET /api/patient/fetchVitals"],
  );
});

test("a request without searchParams is sent to its path alone", async (t) => {
  const { ml, env } = await startServices(t);
  const client = createClient({ ...settings, baseUrl: env.ML_SERVER as string }, { service: "ml" });
  const answer = await send(client, "health");
  assert.equal(answer.status, 200);
  assert.equal(ml.requests[0]?.url, "/health");
});

test("requests ask for no compression; the patient list, the one large answer, does", async (t) => {
  const { backend, env } = await startServices(t);
  const result = await runSweep(sweepConfig(env, { patients: [1] }));
  assert.equal(result.counts.failed, 0);
  const encodings = Object.fromEntries(
    backend.requests.map((r) => [r.path, r.headers["accept-encoding"] ?? null]),
  );
  assert.match(String(encodings["/api/patient/fetchAllPatients"]), /\bgzip\b/);
  assert.equal(encodings["/api/patient/fetchVitals"], null);
  assert.equal(encodings["/api/patient/updateStatus"] ?? null, null);
});

test("aborting the client's signal aborts every request in flight, and a later one before it is sent", async (t) => {
  const { backend, env } = await startServices(t);
  const hold = backend.hold((r) => r.path === "/api/patient/fetchVitals");
  const controller = new AbortController();
  const records: RequestRecord[] = [];
  const client = createClient(
    { ...settings, baseUrl: env.PATIENT_SERVER as string },
    { service: "backend", signal: controller.signal, onRequest: (r) => records.push(r) },
  );
  const pending = [1, 2, 3].map((key) =>
    send(client, "api/patient/fetchVitals", { searchParams: { key } }).then(
      () => "answered",
      (error: unknown) => (error instanceof RequestFailure ? error.reason : String(error)),
    ),
  );
  await hold.waitFor(3);
  controller.abort();
  assert.deepEqual(await Promise.all(pending), ["aborted", "aborted", "aborted"]);
  assert.deepEqual(
    records.map((r) => r.reason),
    ["aborted", "aborted", "aborted"],
  );
  // A request sent after the abort fails at once, without reaching the service.
  const late = await send(client, "api/patient/fetchVitals", { searchParams: { key: 4 } }).catch(
    (error: unknown) => (error instanceof RequestFailure ? error.reason : String(error)),
  );
  assert.equal(late, "aborted");
  assert.equal(backend.requests.filter((r) => r.query.get("key") === "4").length, 0);
});

test("an https base URL is spoken to in TLS", async (t) => {
  const first = new Promise<number | undefined>((resolve) => {
    const server = createServer((socket) => {
      socket.once("data", (data) => {
        resolve(data[0]);
        socket.destroy();
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      const client = createClient(
        { ...settings, baseUrl: `https://127.0.0.1:${port}` },
        { service: "ml" },
      );
      send(client, "health")
        .catch(() => undefined)
        .finally(() => server.close());
    });
    t.after(() => server.close());
  });
  // 0x16: a TLS handshake record, the ClientHello.
  assert.equal(await first, 0x16);
});
