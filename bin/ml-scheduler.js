#!/usr/bin/env -S node --
// "--" ends Node's own options: without it Node reads our --env-file flag as its own and exits 9
// when the file is missing (nodejs/node#54232). Run it as `node -- bin/ml-scheduler.js` likewise.
// A checkout runs the TypeScript sources (Node >= 22.18 strips types); the published package,
// which ships no src/, runs the compiled dist/ (Node refuses to strip types under node_modules).
import { existsSync } from "node:fs";

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `ml-scheduler: needs Node.js 22.18 or newer; this is ${process.versions.node}.\n`,
  );
  process.exit(3);
}
const source = new URL("../src/cli/main.ts", import.meta.url);
const entry = existsSync(source) ? source : new URL("../dist/cli/main.js", import.meta.url);
const { main } = await import(entry.href);
await main();
