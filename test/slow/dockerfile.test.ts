/**
 * The Dockerfile's stages replayed without Docker, a rehearsal of the image's build (npm ci,
 * tsc, npm ci --omit=dev from the registry) and of a sweep from its result. Slow (tens of seconds),
 * so it runs in `npm run test:slow`; the Dockerfile's fields are checked in test/deploy-files.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { dockerStages } from "../helpers/dockerfile.ts";
import { parseReport, run } from "../helpers/exec.ts";
import { startServices } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** What the runtime stage may remove from the base image: its package managers, nothing else. */
const PACKAGE_MANAGER =
  /^\/(usr\/local\/lib\/node_modules\/(npm|corepack)|usr\/local\/bin\/(npm|npx|corepack|yarn|yarnpkg)|opt\/yarn-\*)$/;

test("the Dockerfile's stages replayed here without Docker: dist/ built on this Node, no Node downloaded, a sweep run from the result", async (t) => {
  const dir = tempDir(t, "docker");
  // This Node stands in for the image's (the checkout's node_modules/.bin leave the PATH); npm's
  // cache, and so the download, is the test's own; the rest of the environment (a proxy's CA) stays.
  const path = (process.env.PATH ?? "").split(":").filter((p) => !p.includes("node_modules"));
  const baseEnv: Record<string, string | undefined> = {
    ...process.env,
    PATH: [dirname(process.execPath), ...path].join(":"),
    npm_config_cache: join(dir, "npm-cache"),
    NODE_DISABLE_COMPILE_CACHE: "1",
  };
  const stageRoots = new Map<string | undefined, string>();
  const stageEnvs: Array<Record<string, string | undefined>> = [];
  for (const [index, stage] of dockerStages().entries()) {
    const stageRoot = join(dir, `stage-${index}`);
    stageRoots.set(stage.name, stageRoot);
    const env = { ...baseEnv };
    stageEnvs.push(env);
    let workdir = stageRoot;
    for (const { op, args } of stage.instructions) {
      if (op === "WORKDIR") {
        workdir = join(stageRoot, args);
        mkdirSync(workdir, { recursive: true });
      } else if (op === "ENV") {
        for (const m of args.matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g))
          env[m[1] as string] = m[2] ?? m[3] ?? "";
      } else if (op === "COPY") {
        const parts = args.split(/\s+/);
        const from = parts[0]?.startsWith("--from=") ? parts.shift()?.slice(7) : undefined;
        const context = from === undefined ? root : stageRoots.get(from);
        assert.ok(context, `stage ${from}`);
        const dest = join(workdir, parts.pop() as string);
        for (const source of parts) {
          const src = join(context, source);
          const target = statSync(src).isDirectory() ? dest : join(dest, basename(source));
          cpSync(src, target, { recursive: true });
        }
      } else if (op === "RUN" && args.startsWith("rm ")) {
        // The runtime stage's removal of the base image's package managers acts on the image's
        // own files, outside any WORKDIR: never replayed here (it would remove this machine's npm).
        assert.equal(stage.name, undefined, "only the runtime stage removes anything");
        for (const path of args.split(/\s+/).slice(2))
          assert.match(path, PACKAGE_MANAGER, `${path}: only npm, npx, corepack or yarn go`);
      } else if (op === "RUN") {
        execFileSync("sh", ["-c", args], { cwd: workdir, env, stdio: "pipe", timeout: 180_000 });
      } else {
        assert.ok(["FROM", "ARG", "LABEL", "USER", "ENTRYPOINT"].includes(op), `replays ${op}`);
      }
    }
  }

  const built = join(stageRoots.get("build") as string, "src");
  assert.ok(existsSync(join(built, "dist", "cli", "main.js")), "tsc ran on this Node");
  const nodePackage = join(built, "node_modules", "node");
  assert.ok(existsSync(join(nodePackage, "package.json")), "the node package is installed...");
  assert.ok(!existsSync(join(nodePackage, "bin")), "...but its install script did not run");
  assert.ok(!existsSync(join(nodePackage, "node_modules")), "no Node binary package fetched");
  assert.ok(!existsSync(join(built, "node_modules", ".bin", "node")));

  const app = join(stageRoots.get(undefined) as string, "app");
  assert.ok(!existsSync(join(app, "node_modules", "node")), "production brings no node package");
  assert.ok(!existsSync(join(app, "node_modules", "typescript")));
  assert.ok(!existsSync(join(app, "src")));

  // The image's entrypoint with its ENV (NODE_OPTIONS included), credentials as Secret files.
  const imageEnv = stageEnvs.at(-1) ?? {};
  const { backend, env } = await startServices(t);
  const secrets = join(dir, "secrets");
  mkdirSync(secrets);
  writeFileSync(join(secrets, "username"), `${env.BACKEND_USERNAME}\n`);
  writeFileSync(join(secrets, "password"), `${env.BACKEND_PASSWORD}\n`);
  const sweep = await run(["--json"], {
    bin: join(app, "bin", "ml-scheduler.js"),
    cwd: app,
    env: {
      NODE_ENV: imageEnv.NODE_ENV,
      NODE_OPTIONS: imageEnv.NODE_OPTIONS,
      PATIENT_SERVER: env.PATIENT_SERVER,
      ML_SERVER: env.ML_SERVER,
      BACKEND_USERNAME_FILE: join(secrets, "username"),
      BACKEND_PASSWORD_FILE: join(secrets, "password"),
    },
  });
  assert.equal(sweep.code, 0, sweep.stderr);
  assert.equal(parseReport(sweep.stdout).counts.updated, 4);
  assert.equal(backend.writes.length, 4);
});
