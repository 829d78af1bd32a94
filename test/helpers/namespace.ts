/**
 * Running the bin as PID 1, as in a container: `unshare --pid --fork --mount-proc`.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Whether this machine lets us make a PID namespace (root, or user namespaces allowed). */
export const canUnshare =
  process.platform === "linux" &&
  spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"], { timeout: 10_000 }).status ===
    0;

/** `unshare`'s arguments that run `node -- <bin> ...args` as PID 1 of a new PID namespace. */
export function asPid1(bin: string, args: string[]): string[] {
  return ["--pid", "--fork", "--mount-proc", process.execPath, "--", bin, ...args];
}

/** The host pid of the process that unshare forked (PID 1 in its namespace). */
export function childOf(parent: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}
