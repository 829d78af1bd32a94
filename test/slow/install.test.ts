/**
 * The host install the README's "Installing on a host" describes, into a scratch root: `npm pack`,
 * `npm install -g --prefix <root>/usr/local` of the tarball, the bin started through its shebang
 * under the unit's PATH (Node 24 first, as /opt/node24/bin), and `systemd-analyze verify` (Debian's
 * systemd) on the shipped units with the bin where their ExecStart= says.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseReport } from "../helpers/exec.ts";
import { scratchNpm } from "../helpers/npm.ts";
import { tool } from "../helpers/prometheus-tools.ts";
import { startServices } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const UNITS = ["ml-scheduler.service", "ml-scheduler.timer", "ml-scheduler-failure@.service"];

/** A unit's Environment=PATH= and its ExecStart= program. */
function unitFacts(): { path: string; program: string } {
  const unit = readFileSync(join(root, "ml-scheduler.service"), "utf8");
  const path = /^Environment=PATH=(\S+)$/m.exec(unit)?.[1];
  const program = /^ExecStart=(\S+)/m.exec(unit)?.[1];
  assert.ok(path && program, "the unit sets PATH and starts a program");
  return { path, program };
}

/** Runs a program to its end (at most 60 s) with exactly this environment. */
function start(
  program: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(program, args, { env, timeout: 60_000, encoding: "utf8" }, (error, stdout, stderr) =>
      resolve({
        code: error ? (typeof error.code === "number" ? error.code : null) : 0,
        stdout,
        stderr,
      }),
    );
  });
}

test("the README's host install: the unit's bin runs through its shebang on the unit's PATH, and systemd-analyze verify passes", async (t) => {
  const dir = tempDir(t, "install");
  const host = join(dir, "root");
  const npm = scratchNpm(dir);
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], root));
  const tarball = join(dir, packed[0].filename);
  // The README's command, with the scratch root before /usr/local.
  npm(
    ["install", "-g", "--prefix", join(host, "usr/local"), "--no-audit", "--no-fund", tarball],
    dir,
  );

  const { path, program } = unitFacts();
  const bin = join(host, program);
  assert.ok(existsSync(bin), `${program}: where npm install -g --prefix put the bin`);
  // /opt/node24 is the release tarball's Node 24 (the README links it so); here, this Node.
  mkdirSync(join(host, "opt/node24/bin"), { recursive: true });
  symlinkSync(process.execPath, join(host, "opt/node24/bin/node"));
  // The unit's PATH inside the scratch root, the system's directories as they are.
  const rooted = path
    .split(":")
    .map((d) => (["/usr/bin", "/bin"].includes(d) ? d : join(host, d)))
    .join(":");
  const version = await start(bin, ["--version"], { PATH: rooted });
  assert.equal(version.code, 0, version.stderr);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(version.stdout.trim(), pkg.version);
  const { env } = await startServices(t);
  const sweep = await start(bin, ["--dry-run", "--json"], { ...env, PATH: rooted });
  assert.equal(sweep.code, 0, sweep.stderr);
  assert.equal(parseReport(sweep.stdout).counts.would_update, 4);

  // systemd-analyze verify on the shipped units, in a root that holds systemd's own units, the
  // bin at ExecStart='s path and the failure unit's /bin/sh.
  mkdirSync(join(host, "etc/systemd/system"), { recursive: true });
  for (const unit of UNITS) copyFileSync(join(root, unit), join(host, "etc/systemd/system", unit));
  cpSync("/usr/lib/systemd/system", join(host, "usr/lib/systemd/system"), { recursive: true });
  mkdirSync(join(host, "bin"));
  copyFileSync("/bin/sh", join(host, "bin/sh"));
  const verify = await start(
    tool("systemd-analyze"),
    [
      "verify",
      `--root=${host}`,
      "ml-scheduler.service",
      "ml-scheduler.timer",
      "ml-scheduler-failure@ml-scheduler.service.service",
    ],
    { PATH: "/usr/bin:/bin" },
  );
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(verify.stdout + verify.stderr, "", "no warning either");
  // And the exposure systemd-analyze security scores (lower is better; 2.2 before issue 16).
  const security = await start(
    tool("systemd-analyze"),
    ["security", "--offline=true", `--root=${host}`, "ml-scheduler.service"],
    { PATH: "/usr/bin:/bin" },
  );
  assert.equal(security.code, 0, security.stderr);
  const exposure = Number(
    /Overall exposure level for ml-scheduler\.service: ([\d.]+)/.exec(security.stdout)?.[1],
  );
  assert.ok(exposure <= 2, `exposure ${exposure}`);
});
