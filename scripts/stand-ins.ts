// `npm run stand-ins [-- options]`: the stand-in backend and ML server (test/stand-ins/) on fixed
// local ports until Ctrl-C, so that anyone can try every flag by hand against them. The
// environment to export goes to stdout, everything else to stderr.
import { parseArgs } from "node:util";
import { type Backend, startBackend } from "../test/stand-ins/backend.ts";
import { type Ml, startMl } from "../test/stand-ins/ml.ts";
import { DEMO_USER, demoPatients, makePatients } from "../test/stand-ins/seed.ts";

const USAGE =
  "usage: npm run stand-ins -- [--backend-port 18000] [--ml-port 18001] [--patients <n>] [--latency <ms>] [--nginx]";

/** One line on stderr, then the exit code: a bad argument (2) or a port that cannot be had (1). */
function fail(message: string, code: number): never {
  process.stderr.write(`stand-ins: ${message}\n`);
  process.exit(code);
}

function parse() {
  try {
    return parseArgs({
      options: {
        "backend-port": { type: "string", default: "18000" },
        "ml-port": { type: "string", default: "18001" },
        patients: { type: "string" },
        latency: { type: "string", default: "0" },
        nginx: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    return fail(`${(error as Error).message.split("\n")[0]} (${USAGE})`, 2);
  }
}

/** A whole number from min to max, else a one-line usage error naming the option. */
function whole(name: string, value: string, min: number, max: number): number {
  if (/^\d+$/.test(value) && Number(value) >= min && Number(value) <= max) return Number(value);
  return fail(`--${name} must be a whole number from ${min} to ${max} (${USAGE})`, 2);
}

const args = parse();
const backendPort = whole("backend-port", args["backend-port"], 0, 65535);
const mlPort = whole("ml-port", args["ml-port"], 0, 65535);
const count = args.patients === undefined ? undefined : whole("patients", args.patients, 1, 1e6);
const latencyMs = whole("latency", args.latency, 0, 600_000);

/** Starts one stand-in; a port in use (or refused) is one line and exit 1. */
async function start<T>(what: string, port: number, go: () => Promise<T>): Promise<T> {
  try {
    return await go();
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    const why = code === "EADDRINUSE" ? "is in use" : `cannot be listened on (${code ?? error})`;
    await close();
    return fail(
      `127.0.0.1:${port} ${why}: stop what holds it, or pick another port with --${what}-port.`,
      1,
    );
  }
}

let backend: Backend | undefined;
let ml: Ml | undefined;
async function close(): Promise<void> {
  await Promise.all([backend?.close(), ml?.close()]);
}

const patients = count === undefined ? demoPatients() : makePatients(count);
backend = await start("backend", backendPort, () =>
  startBackend({
    users: { [DEMO_USER.username]: DEMO_USER.password },
    patients,
    port: backendPort,
  }),
);
ml = await start("ml", mlPort, () => startMl({ port: mlPort, health: args.nginx ? "html" : "ok" }));
backend.latencyMs = latencyMs;
ml.latencyMs = latencyMs;

let stopping = false;
const stop = async (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  await close();
  process.stderr.write(`stand-ins: ${signal}: stopped.\n`);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

// The demo user's credentials are the stand-in's own, made up like its patients.
process.stdout.write(
  [
    `export PATIENT_SERVER=${backend.url}`,
    `export ML_SERVER=${ml.url}`,
    `export BACKEND_USERNAME=${DEMO_USER.username}`,
    `export BACKEND_PASSWORD=${DEMO_USER.password}`,
    "",
  ].join("\n"),
);
const seed = count === undefined ? "the 8-patient demo seed" : `${count} generated patients`;
process.stderr.write(
  `stand-ins: patient backend ${backend.url} and ML server ${ml.url}${args.nginx ? " (behind an nginx-like /health)" : ""}, ${seed}${latencyMs ? `, ${latencyMs} ms per request` : ""}. Export the lines above in another shell; Ctrl-C stops them.\n`,
);
