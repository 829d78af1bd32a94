#!/usr/bin/env -S node --
// "--" ends Node's own options: without it Node reads our --env-file flag as its own and exits 9
// when the file is missing (nodejs/node#54232). Run it as `node -- bin/ml-scheduler.js` likewise.
// A checkout runs the TypeScript sources (Node >= 22.18 strips types); the published package,
// which ships no src/, runs the compiled dist/ (Node refuses to strip types under node_modules).
import { existsSync } from "node:fs";

/** Young-generation bound applied under a heap cap; 8 MB measured best under a 128 MB cap. */
const SEMI_SPACE_MB = 8;

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `ml-scheduler: needs Node.js 22.18 or newer; this is ${process.versions.node}.\n`,
  );
  process.exit(3);
}
// Under a heap cap (--max-old-space-size, as a 256 MiB container sets in NODE_OPTIONS) V8 grows
// the young generation to half the cap and then collects the whole heap every few milliseconds:
// more memory and CPU, not less. Bound it (--max-semi-space-size) by re-executing once with the
// flag, in place (same pid, so signals, the lock and the container see one process). execve
// replaces the process before its experimental-feature warning (emitted on the next tick) prints.
// --help and --version print a page and exit: no heap worth bounding, no second start to pay.
const nodeOptions = process.env.NODE_OPTIONS ?? "";
const flags = `${nodeOptions} ${process.execArgv.join(" ")}`;
const printsOnly = process.argv.slice(2).some((a) => ["-h", "--help", "--version"].includes(a));
if (
  !printsOnly &&
  /--max-old-space-size\b/.test(flags) &&
  !/--max-semi-space-size\b/.test(flags) &&
  typeof process.execve === "function"
) {
  try {
    process.execve(
      process.execPath,
      [process.execPath, ...process.execArgv, "--", ...process.argv.slice(1)],
      {
        ...process.env,
        NODE_OPTIONS: `${nodeOptions} --max-semi-space-size=${SEMI_SPACE_MB}`.trim(),
      },
    );
  } catch {
    // No execve here (an unusual platform): run as we are, only less memory-efficient.
  }
}
const source = new URL("../src/cli/main.ts", import.meta.url);
const entry = existsSync(source) ? source : new URL("../dist/cli/main.js", import.meta.url);
const { main } = await import(entry.href);
await main();
