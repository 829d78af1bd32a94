/**
 * The baseline: a minimal node:http keep-alive client making the same requests as a sweep (login,
 * health, the list, then per patient vitals, predict, and the write when the status changed), with
 * none of the tool's checks. Run as a child of the benchmark, configured like the tool
 * (PATIENT_SERVER, ML_SERVER, BACKEND_USERNAME, BACKEND_PASSWORD, CONCURRENCY); prints its counts.
 */
import { Agent, request } from "node:http";

const env = (name: string) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`client: ${name} is not set`);
  return value;
};
const concurrency = Number(process.env.CONCURRENCY ?? "4");
const backend = new URL(env("PATIENT_SERVER"));
const ml = new URL(env("ML_SERVER"));
const agents = new Map([
  [backend.origin, new Agent({ keepAlive: true, maxSockets: concurrency })],
  [ml.origin, new Agent({ keepAlive: true, maxSockets: concurrency })],
]);

/** A kept-alive socket the server closed as it was reused: every request here is safe to repeat. */
const RETRIES = 2;

async function call(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(base, method, path, headers, body);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (attempt >= RETRIES || (code !== "ECONNRESET" && code !== "EPIPE")) throw error;
    }
  }
}

function once(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const all = payload === undefined ? headers : { ...headers, "content-type": "application/json" };
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, base),
      { method, headers: all, agent: agents.get(base.origin) },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => {
          if (res.statusCode !== 200)
            reject(new Error(`client: ${method} ${path}: ${res.statusCode}`));
          else resolve(JSON.parse(text));
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** The sweep, as plainly as node:http allows. */
async function sweep(): Promise<void> {
  const login = (await call(
    backend,
    "POST",
    "/api/login/",
    {},
    {
      username: env("BACKEND_USERNAME"),
      password: env("BACKEND_PASSWORD"),
    },
  )) as { token: string };
  const auth = { authorization: `Bearer ${login.token}` };
  await call(ml, "GET", "/health", {});
  const list = (await call(backend, "GET", "/api/patient/fetchAllPatients", auth)) as Array<{
    pid: number;
    status: { id: number };
  }>;

  let next = 0;
  let updated = 0;
  async function worker(): Promise<void> {
    for (let i = next++; i < list.length; i = next++) {
      const { pid, status } = list[i] as (typeof list)[number];
      const vitals = (await call(
        backend,
        "GET",
        `/api/patient/fetchVitals?key=${pid}&limit=5`,
        auth,
      )) as unknown[];
      if (vitals.length < 5) continue;
      const prediction = (await call(ml, "POST", "/predict", {}, vitals)) as {
        status: { id: number };
      };
      if (prediction.status.id === status.id) continue;
      await call(
        backend,
        "PUT",
        `/api/patient/updateStatus?pid=${pid}&status=${prediction.status.id}`,
        auth,
      );
      updated++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(`${JSON.stringify({ patients: list.length, updated })}\n`);
}

try {
  await sweep();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  for (const agent of agents.values()) agent.destroy();
}
