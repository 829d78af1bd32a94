/**
 * Debian's Prometheus tools for the slow tests: promtool, a Pushgateway and node_exporter, run on
 * 127.0.0.1 and stopped when the test ends (and systemd-analyze, for the units). A missing tool
 * fails the test (never a skip): `.ci/run` installs them (apt-get install prometheus
 * prometheus-pushgateway prometheus-node-exporter systemd).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import type { TestContext } from "node:test";

/** Debian's package of each tool, for the message of a missing one. */
const PACKAGE: Record<string, string> = {
  promtool: "prometheus",
  "prometheus-pushgateway": "prometheus-pushgateway",
  "prometheus-node-exporter": "prometheus-node-exporter",
  "systemd-analyze": "systemd",
};

/** The tool's path on PATH; fails the test when it is not installed. */
export function tool(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  assert.fail(
    `${name} is not installed: apt-get install -y ${PACKAGE[name] ?? name} (as .ci/run does)`,
  );
}

/** A port free on 127.0.0.1 a moment ago (the daemon that takes it fails loudly if it was not). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

/**
 * Starts a Prometheus daemon listening on 127.0.0.1 and resolves with its base URL once it says
 * it listens (its "Listening on" log line); it is stopped (SIGTERM, then SIGKILL) when the test
 * ends. Fails when it exits or stays silent for 20 s.
 */
export async function startDaemon(
  t: TestContext,
  name: string,
  args: (address: string) => string[],
): Promise<string> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const child = spawn(tool(name), args(address), { stdio: ["ignore", "ignore", "pipe"] });
  t.after(() => stop(child));
  let log = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not listen within 20 s:\n${log}`)),
      20_000,
    );
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      log += chunk;
      if (/Listening on/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before listening:\n${log}`));
    });
  });
  child.stderr?.resume();
  return `http://${address}`;
}

/** Stops a daemon and waits for it to be gone: SIGTERM, SIGKILL after 5 s. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Runs a tool to its end (at most 60 s): its exit code and output. */
export function runTool(
  name: string,
  args: string[],
  options: { cwd?: string; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      tool(name),
      args,
      { cwd: options.cwd, timeout: 60_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        if (error && typeof error.code !== "number") reject(error);
        else resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** One sample of a text exposition: its name, its labels and its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (what /metrics answers), comments skipped. */
export function samples(text: string): Sample[] {
  const found: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_, c) =>
        c === "n" ? "\n" : c,
      );
    found.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return found;
}
