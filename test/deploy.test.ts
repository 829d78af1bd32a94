/**
 * What can be proved here about the Dockerfile and the crontab without Docker or cron: the fields
 * that make them safe to run.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { OPTION_LIST } from "../src/config/options.ts";
import { EXIT_CODES } from "../src/errors.ts";

const read = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), "utf8");

test("the Dockerfile builds in a stage of its own and runs production dependencies as uid 1000, directly", () => {
  const docker = read("Dockerfile");
  const stages = docker.match(/^FROM .*$/gm) ?? [];
  assert.equal(stages.length, 3, "build, production dependencies, runtime");
  for (const from of stages) assert.match(from, /^FROM node:24-slim\b/);
  // No "# syntax=" directive: an air-gapped build would have to pull its frontend image.
  assert.doesNotMatch(docker, /^#\s*syntax\s*=/im);
  const deps = docker.slice(
    docker.indexOf("\nFROM node:24-slim AS deps"),
    docker.lastIndexOf("\nFROM "),
  );
  assert.match(deps, /^RUN npm ci --omit=dev\b/m);
  const runtime = docker.slice(docker.lastIndexOf("\nFROM "));
  assert.match(runtime, /^COPY --from=deps \/app\/node_modules \.\/node_modules$/m);
  // No package manager in the runtime image: the base image's npm and corepack are removed, and
  // no instruction of the runtime stage runs one.
  const joined = runtime.replace(/\\\n/g, " ");
  const removed = /^RUN rm -rf (.*)$/m.exec(joined)?.[1]?.split(/\s+/) ?? [];
  for (const path of ["/usr/local/lib/node_modules/npm", "/usr/local/lib/node_modules/corepack"])
    assert.ok(removed.includes(path), `${path} removed`);
  for (const bin of ["npm", "npx", "corepack"])
    assert.ok(removed.includes(`/usr/local/bin/${bin}`), `${bin} removed`);
  assert.doesNotMatch(joined.replace(/^#.*$/gm, ""), /^RUN (?!rm -rf ).*$/m, "no other RUN");
  assert.match(runtime, /^ENV NODE_ENV=production$/m);
  assert.match(runtime, /^USER 1000$/m);
  assert.match(runtime, /^COPY --from=build \/src\/dist \.\/dist$/m);
  assert.doesNotMatch(runtime, /^COPY (\.\/)?src\b/m, "no sources in the runtime image");
  const entrypoint = JSON.parse(runtime.match(/^ENTRYPOINT (.*)$/m)?.[1] ?? "null");
  assert.deepEqual(
    entrypoint,
    ["node", "--", "/app/bin/ml-scheduler.js"],
    "node directly, never npm",
  );
});

test("crontab.example runs one locked sweep with an env file and lists every exit code", () => {
  const cron = read("crontab.example");
  const entries = cron.split("\n").filter((l) => /^[*\d]/.test(l));
  assert.equal(entries.length, 1);
  const entry = entries[0] as string;
  assert.match(entry, /^\*\/\d+ \* \* \* \* ml-scheduler /);
  assert.match(entry, /--env-file \S+/);
  assert.match(entry, /--lock \S+/);
  assert.match(cron, /^TZ=\S+$/m);
  assert.match(cron, /^MAILTO=\S+$/m);
  const comments = cron
    .split("\n")
    .filter((l) => l.startsWith("#"))
    .join("\n");
  for (const { code } of EXIT_CODES)
    assert.match(comments, new RegExp(`\\b${code}\\b`), `exit ${code}`);
});

test("the README's exit-code table and precedence list every code of the table in errors.ts", () => {
  const readme = read("README.md");
  const section = readme.slice(
    readme.indexOf("## Exit codes"),
    readme.indexOf("\n## ", readme.indexOf("## Exit codes") + 1),
  );
  const rows = section.match(/^\| [\d /]+\|/gm) ?? [];
  const documented = rows.flatMap((row) => row.match(/\d+/g) ?? []).map(Number);
  assert.deepEqual(
    documented.toSorted((a, b) => a - b),
    EXIT_CODES.map((e) => e.code).toSorted((a, b) => a - b),
  );
  const precedence = section.match(/When several apply, the first of ([\d/, ]+) wins/)?.[1] ?? "";
  assert.deepEqual(
    (precedence.match(/\d+/g) ?? []).map(Number).toSorted((a, b) => a - b),
    EXIT_CODES.map((e) => e.code).toSorted((a, b) => a - b),
  );
});

test("the README's flag and environment tables list exactly the declared options", () => {
  const readme = read("README.md");
  const section = (heading: string) => {
    const start = readme.indexOf(heading);
    assert.ok(start >= 0, heading);
    const end = readme.indexOf("\n#", start + heading.length);
    return readme.slice(start, end === -1 ? undefined : end);
  };
  const flagRows = (section("## Usage").match(/^\| `--.*$/gm) ?? []).map(
    (row) => row.split("|")[1] ?? "",
  );
  const documented = new Set(flagRows.flatMap((cell) => cell.match(/--[a-z-]+/g) ?? []));
  const declared = new Set(OPTION_LIST.map(([, o]) => o.flags.split(" ")[0] as string));
  assert.deepEqual(
    [...documented].filter((f) => f !== "--version" && f !== "--help").toSorted(),
    [...declared].toSorted(),
  );
  const envTable = section("### Environment");
  for (const [, o] of OPTION_LIST.filter(([, o]) => o.env))
    assert.match(envTable, new RegExp(`\`${o.env}\``));
});
