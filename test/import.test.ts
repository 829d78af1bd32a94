/**
 * Importing the package does nothing by itself: no output, no listeners, no timers, no env reads.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

test("importing the public API has no side effects", () => {
  const script = `
    const before = { sigterm: process.listenerCount("SIGTERM"), sigint: process.listenerCount("SIGINT") };
    const touched = [];
    void [process.stdin, process.stdout, process.stderr]; // opened lazily: open them before counting
    const handlesBefore = process.getActiveResourcesInfo().length;
    process.env = new Proxy(process.env, { get(t, k) { if (typeof k === "string") touched.push(k); return t[k]; } });
    const api = await import(${JSON.stringify(new URL("../src/index.ts", import.meta.url).href)});
    const handles = process.getActiveResourcesInfo().slice(handlesBefore);
    console.log(JSON.stringify({ exports: Object.keys(api).sort(), before, after: { sigterm: process.listenerCount("SIGTERM"), sigint: process.listenerCount("SIGINT") }, touched, handles, exitCode: process.exitCode ?? null }));
  `;
  const res = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stderr, "");
  const out = JSON.parse(res.stdout);
  assert.ok(out.exports.includes("runSweep"));
  assert.deepEqual(out.after, out.before);
  assert.deepEqual(
    out.touched.filter((k: string) => /SERVER|BACKEND|USERNAME|PASSWORD|TOKEN|CONCURRENCY/.test(k)),
    [],
  );
  assert.deepEqual(out.handles, []);
  assert.equal(out.exitCode, null);
});

test("the library loads no CLI package: neither commander nor dotenv, nor anything under cli/", () => {
  const probe = new URL("./fixtures/module-probe.mjs", import.meta.url).href;
  const api = new URL("../src/index.ts", import.meta.url).href;
  const script = `const { resolveConfig } = await import(${JSON.stringify(api)});
    resolveConfig({ flags: {}, env: { PATIENT_SERVER: "http://b", ML_SERVER: "http://m", BACKEND_TOKEN: "t" }, cwd: "/" });`;
  const res = spawnSync(
    process.execPath,
    ["--import", probe, "--input-type=module", "-e", script],
    {
      encoding: "utf8",
      timeout: 20_000,
    },
  );
  assert.equal(res.status, 0, res.stderr);
  const line = /^module-probe (.*)$/m.exec(res.stderr)?.[1];
  assert.ok(line, res.stderr);
  const loaded = JSON.parse(line) as string[];
  assert.ok(loaded.includes("zod") && loaded.includes("got"), loaded.join(" "));
  assert.deepEqual(
    loaded.filter((m) => m === "commander" || m === "dotenv" || m.startsWith("src/cli/")),
    [],
  );
});
