/**
 * The HTTP layer's request building, against a real stand-in: the query it sends and the route it
 * records. The query string is built by hand (cheaper than got's searchParams option), so this
 * guards its encoding.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, type RequestRecord, send } from "../src/services/http.ts";
import { startServices } from "./helpers/services.ts";

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
