/**
 * The installed package, as a user gets it: the tarball `npm pack` makes, installed with production
 * dependencies only into an empty folder under `dir` (which the caller removes).
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Builds the package in a staging folder rather than through `prepack` in the checkout: the
 * checkout's dist/ is test/slow/pack.test.ts's, and two builds writing it at once could pack a torn file.
 * Returns the installed bin.
 */
export function installPackage(root: string, dir: string): string {
  const stage = join(dir, "package");
  mkdirSync(stage, { recursive: true });
  cpSync(join(root, "package.json"), join(stage, "package.json"));
  cpSync(join(root, "bin"), join(stage, "bin"), { recursive: true });
  const tsc = join(root, "node_modules", ".bin", "tsc");
  const build = join(root, "tsconfig.build.json");
  execFileSync(tsc, ["-p", build, "--outDir", join(stage, "dist")], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 120_000,
  });
  // npm 11 would leave its module compile cache in the temp directory (module.enableCompileCache).
  const env = { ...process.env, NODE_DISABLE_COMPILE_CACHE: "1" };
  const npm = (args: string[], cwd: string) =>
    execFileSync("npm", args, {
      cwd,
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 180_000,
    });
  const packed = JSON.parse(
    npm(["pack", "--ignore-scripts", "--json", "--pack-destination", dir], stage),
  ) as Array<{ filename: string }>;
  const tarball = join(dir, packed[0]?.filename ?? "");
  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), '{"name":"bench-install","private":true}\n');
  npm(["install", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline", tarball], app);
  return join(app, "node_modules", "ml-scheduler", "bin", "ml-scheduler.js");
}
