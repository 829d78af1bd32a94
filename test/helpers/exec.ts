/**
 * Runs the real bin with the pinned Node and a minimal environment, as cron or Kubernetes would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/ml-scheduler.js", import.meta.url));

/**
 * Node's compile cache for the bin's modules (src/ and its dependencies), kept between spawns and
 * between runs beside the dependencies, not in the temp directory (which the tests leave empty):
 * a spawn that finds its modules compiled uses about a third less CPU, and the suite spawns the
 * bin some two hundred times. A changed file is compiled afresh (the cache checks each source).
 * https://nodejs.org/api/module.html#module-compile-cache
 */
const COMPILE_CACHE = fileURLToPath(
  new URL("../../node_modules/.cache/ml-scheduler-bin", import.meta.url),
);

/** The package's version (package.json), as --version, the report and the metrics give it. */
export const PACKAGE_VERSION: string = JSON.parse(
  readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
).version;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kills the child after this long; a test never waits unbounded. */
  timeoutMs?: number;
  /** Called once the child is spawned, e.g. to signal it. */
  onSpawn?: (child: ChildProcess) => void;
  bin?: string;
  /** Node's own options, before the script (e.g. `--import` of a fixture). */
  nodeArgs?: string[];
  /** stdout goes here instead of a pipe (e.g. a descriptor of /dev/full). */
  stdout?: number;
  /** stderr goes here instead of a pipe (e.g. a file's descriptor, as the journal's stream). */
  stderr?: number;
}

/** Spawns `node bin/ml-scheduler.js ...args` and collects its output. */
export function run(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    NODE_COMPILE_CACHE: COMPILE_CACHE,
  };
  // So that anything the bin puts in the temp directory lands where .ci/run looks for leftovers.
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
  // "--" first: Node scans even a script's arguments for --env-file and exits 9 when the file is
  // missing (nodejs/node#54232), unless "--" ends its own options. The bin's shebang does the same.
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), "--", options.bin ?? BIN, ...args],
    {
      env,
      cwd: options.cwd ?? fileURLToPath(new URL(".", import.meta.url)),
      stdio: ["ignore", options.stdout ?? "pipe", options.stderr ?? "pipe"],
    },
  );
  options.onSpawn?.(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * stderr's lines before the run's last one, which must be its `run finished` line (human or
 * JSON): what a run said besides how it ended.
 */
export function beforeFinished(stderr: string): string[] {
  const lines = stderr.trimEnd().split("\n");
  const last = lines.pop() ?? "";
  if (!/run finished/.test(last)) throw new Error(`the last line is not run finished: ${last}`);
  return lines;
}

/** The one JSON document `--json` prints. */
export function parseReport(stdout: string) {
  const lines = stdout.trim().split("\n");
  if (lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${lines.length}`);
  return JSON.parse(lines[0] as string);
}

/** Resolves once the child's stderr has matched `pattern`; rejects after timeoutMs. */
export function waitForStderr(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      child.stderr?.off("data", onData);
      reject(new Error(`stderr never matched ${pattern}; got: ${seen}`));
    }, timeoutMs);
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stderr?.off("data", onData);
        resolve();
      }
    };
    child.stderr?.on("data", onData);
  });
}
