/**
 * Starting the measured processes: wall time from spawn to exit, and, through GNU time, the CPU
 * (user + sys) and peak RSS of the process and anything it waited for. GNU time takes them from
 * wait4's rusage, so a process that re-executes itself in place (execve keeps the pid) is still
 * measured whole; ru_maxrss is the VmHWM the kernel kept for it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const GNU_TIME = "/usr/bin/time";
const MARK = "bench-rusage";

export interface LaunchOptions {
  /** The command and its arguments. */
  command: string[];
  env: Record<string, string>;
  cwd: string;
  /** Killed (SIGKILL) after this long: no run waits unbounded. */
  timeoutMs: number;
  /** Measure CPU and peak RSS (needs GNU time). */
  rusage?: boolean;
  /** Pin the process to this CPU (needs taskset). */
  cpu?: number | undefined;
}

export interface Launched {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** performance.now() just before spawn and at exit. */
  spawnedAt: number;
  exitedAt: number;
  /** user + sys, ms; undefined without GNU time. */
  cpuMs: number | undefined;
  /** Peak resident set, KiB; undefined without GNU time. */
  maxRssKiB: number | undefined;
}

/** Whether GNU time (which has -f; BSD's has not) is at /usr/bin/time. */
export const hasGnuTime =
  existsSync(GNU_TIME) &&
  /^\d+\s*$/.test(spawnSync(GNU_TIME, ["-f", "%M", "true"], { encoding: "utf8" }).stderr ?? "");

/** The CPUs this process may run on (taskset's list), or undefined without taskset. */
export function allowedCpus(): number[] | undefined {
  const shown = spawnSync("taskset", ["-pc", String(process.pid)], { encoding: "utf8" });
  if (shown.status !== 0) return undefined;
  const list = shown.stdout.split(":").at(-1)?.trim() ?? "";
  const cpus: number[] = [];
  for (const part of list.split(",")) {
    const [from, to = from] = part.split("-").map(Number);
    if (from === undefined || to === undefined || Number.isNaN(from) || Number.isNaN(to)) continue;
    for (let cpu = from; cpu <= to && cpus.length < 1024; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** Pins every thread of this process (the stand-ins) to `cpus`. */
export function pinSelf(cpus: number[]): boolean {
  const args = ["-a", "-pc", cpus.join(","), String(process.pid)];
  return spawnSync("taskset", args, { stdio: "ignore" }).status === 0;
}

const live = new Set<ChildProcess>();

/** Kills a child and whatever it started (GNU time and taskset wrap the measured process). */
function kill(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Kills every process still running (on SIGINT, or when the benchmark fails). */
export function killAll(): void {
  for (const child of live) kill(child);
}

/** Runs one process to its end and measures it. */
export function launch(options: LaunchOptions): Promise<Launched> {
  let command = options.command;
  if (options.cpu !== undefined) command = ["taskset", "-c", String(options.cpu), ...command];
  const rusage = options.rusage === true && hasGnuTime;
  if (rusage) command = [GNU_TIME, "-f", `${MARK} %U %S %M`, ...command];
  const [file, ...args] = command as [string, ...string[]];
  const spawnedAt = performance.now();
  const child = spawn(file, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    // A process group of its own, so a timeout kills the measured process, not just its wrapper.
    detached: true,
  });
  live.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  let exitedAt = 0;
  child.on("exit", () => {
    exitedAt = performance.now();
  });
  const timer = setTimeout(() => kill(child), options.timeoutMs);
  return new Promise((resolve, reject) => {
    child.on("error", (error) => {
      clearTimeout(timer);
      live.delete(child);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      // GNU time's line comes last; a line of its own unless the child's last one had no newline.
      const found = rusage ? new RegExp(`${MARK} (\\S+) (\\S+) (\\d+)\\n?$`).exec(stderr) : null;
      if (found) stderr = stderr.slice(0, found.index);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        spawnedAt,
        exitedAt: exitedAt || performance.now(),
        cpuMs: found ? (Number(found[1]) + Number(found[2])) * 1000 : undefined,
        maxRssKiB: found ? Number(found[3]) : undefined,
      });
    });
  });
}
