// `npm run demo [-- args]`: one real sweep of bin/ml-scheduler.js against the stand-in backend and ML
// server, seeded like the original database. Arguments go to the CLI; its exit code is ours.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { startBackend } from "../test/stand-ins/backend.ts";
import { startMl } from "../test/stand-ins/ml.ts";
import { DEMO_USER, demoPatients } from "../test/stand-ins/seed.ts";

const backend = await startBackend({
  users: { [DEMO_USER.username]: DEMO_USER.password },
  patients: demoPatients(),
});
const ml = await startMl();

// only what the CLI needs: nothing else from this shell (no stray tokens or .env leftovers)
const env: Record<string, string> = {
  PATH: process.env.PATH ?? "",
  PATIENT_SERVER: backend.url,
  ML_SERVER: ml.url,
  BACKEND_USERNAME: DEMO_USER.username,
  BACKEND_PASSWORD: DEMO_USER.password,
};
for (const name of ["NO_COLOR", "TERM"]) {
  const value = process.env[name];
  if (value !== undefined) env[name] = value;
}

process.stderr.write(`demo: patient backend ${backend.url}, ML server ${ml.url}\n`);
// "--" stops Node from reading CLI flags such as --env-file as its own (nodejs/node#54232)
const bin = fileURLToPath(new URL("../bin/ml-scheduler.js", import.meta.url));
const child = spawn(process.execPath, ["--", bin, ...process.argv.slice(2)], {
  env,
  stdio: "inherit",
});

// Ctrl-C reaches the child through the terminal; a SIGTERM aimed at us is passed on. Either way we
// stay alive until the child exits, so the stand-ins are closed properly.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => child.kill("SIGTERM"));

const code = await new Promise<number>((resolve) => {
  child.on("error", (err) => {
    process.stderr.write(`demo: could not start ${bin}: ${err.message}\n`);
    resolve(1);
  });
  child.on("exit", (status, signal) => {
    resolve(status ?? 128 + (signal ? constants.signals[signal] : 0));
  });
});

await Promise.all([backend.close(), ml.close()]);
process.exit(code);
