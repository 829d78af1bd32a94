/**
 * npm as the rehearsals run it: its cache and logs in the test's own directory, so they vanish
 * with it (and an install fetches from the registry, as `npm ci` does); npm 11 would also leave its
 * module compile cache in os.tmpdir() (its lib/cli.js calls module.enableCompileCache()).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

/** Runs `npm <args>` in `cwd` with its cache under `dir`; its stdout, or a throw. */
export function scratchNpm(dir: string): (args: string[], cwd: string) => string {
  const env = {
    ...process.env,
    npm_config_cache: join(dir, "npm-cache"),
    NODE_DISABLE_COMPILE_CACHE: "1",
  };
  return (args, cwd) =>
    execFileSync("npm", args, {
      cwd,
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 180_000,
    });
}
