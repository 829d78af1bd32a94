/**
 * Stopping waits for nothing that has nothing to finish: a signal before the first patient ends
 * the run at once, whatever --grace says; after the report, its exit code stands, the first
 * signal lets the notifiers finish and the second aborts them, each signal with one warning.
 * Signals are sent once the held request is seen, never after a fixed sleep.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { parseReport, run, waitForStderr } from "./helpers/exec.ts";
import { startServices } from "./helpers/services.ts";
import { startPing } from "./stand-ins/ping.ts";
import { startPushgateway } from "./stand-ins/pushgateway.ts";
import type { RecordedRequest, StandIn } from "./stand-ins/server.ts";

const path = (p: string) => (r: RecordedRequest) => r.path === p;
/** Far longer than any of these runs may take: waiting it out would fail the test. */
const GRACE = "60";

test("a signal before the first patient ends the run at once, not after --grace: hung login, slow list, rate-cap wait", async (t) => {
  const { backend, ml, env } = await startServices(t);
  /** Each wait: what it is, the flags it needs, and how to know the run is in it. */
  const waits: Array<[string, string[], () => { seen: Promise<void>; release(): void }]> = [
    [
      "a hung login",
      [],
      () => {
        const hold = backend.hold(path("/api/login/"));
        return { seen: hold.waitFor(1, 15_000), release: () => hold.release() };
      },
    ],
    [
      "a slow patient list",
      [],
      () => {
        const hold = backend.hold(path("/api/patient/fetchAllPatients"));
        return { seen: hold.waitFor(1, 15_000), release: () => hold.release() };
      },
    ],
    [
      // One request per 100 s to each service: the list waits on the backend's cap after the login.
      "a rate-cap wait",
      ["--max-rps", "0.01"],
      () => {
        const count = ml.requests.filter(path("/health")).length + 1;
        return { seen: ml.waitForRequests(path("/health"), count, 15_000), release: () => {} };
      },
    ],
  ];
  for (const [what, args, arm] of waits) {
    const { seen, release } = arm();
    let signalled = 0;
    const res = await run(["--json", "--grace", GRACE, ...args], {
      env,
      timeoutMs: 40_000,
      onSpawn: async (child) => {
        await seen;
        signalled = Date.now();
        child.kill("SIGTERM");
      },
    });
    const took = Date.now() - signalled;
    release();
    assert.equal(res.code, 143, `${what}: ${res.stderr}`);
    assert.ok(signalled > 0, what);
    assert.ok(took < 5_000, `${what}: ended ${took} ms after the signal, not after the grace`);
    const report = parseReport(res.stdout);
    assert.equal(report.error.code, "sigterm", what);
    assert.equal(report.patients.length, 0, what);
  }
  assert.equal(backend.writes.length, 0);
});

/** A notifier's stand-in for one test, closed (its holds released first) when the test ends. */
async function standIn<S extends StandIn & { close(): Promise<void> }>(
  t: TestContext,
  start: () => Promise<S>,
): Promise<S> {
  const server = await start();
  t.after(() => server.close());
  return server;
}

test("after the report: the first signal lets a held ping finish, the second aborts a held push; the exit code stands", async (t) => {
  const { env } = await startServices(t);
  const ping = await standIn(t, startPing);
  const endPing = ping.hold((r) => r.path.endsWith("/0"));
  t.after(() => endPing.release());
  const first = await run(["--ping-url", ping.checkUrl, "--grace", GRACE], {
    env,
    timeoutMs: 30_000,
    onSpawn: async (child) => {
      await endPing.waitFor(1, 15_000);
      child.kill("SIGTERM");
      await waitForStderr(child, /SIGTERM: the report is written/);
      endPing.release();
    },
  });
  assert.equal(first.code, 0, first.stderr);
  const said = first.stderr.match(/\[warn\].*SIGTERM.*/g) ?? [];
  assert.equal(said.length, 1, first.stderr);
  assert.match(said[0] as string, /its exit code 0 stands; the notifiers finish their requests/);
  assert.doesNotMatch(first.stderr, /ping .* (failed|timed out)/);
  assert.ok(
    ping.pings.some((p) => p.signal === "0"),
    "the end ping arrived",
  );

  const gateway = await standIn(t, startPushgateway);
  const push = gateway.hold((r) => r.path.startsWith("/metrics/"));
  t.after(() => push.release());
  let second = 0;
  const res = await run(["--pushgateway", gateway.url, "--grace", GRACE], {
    env,
    timeoutMs: 30_000,
    onSpawn: async (child) => {
      await push.waitFor(1, 15_000);
      child.kill("SIGTERM");
      await waitForStderr(child, /SIGTERM: the report is written/);
      second = Date.now();
      child.kill("SIGTERM");
    },
  });
  const took = Date.now() - second;
  assert.equal(res.code, 0, res.stderr);
  const warnings = res.stderr.match(/\[warn\].*/g) ?? [];
  assert.equal(warnings.length, 2, res.stderr);
  assert.match(warnings[0] as string, /SIGTERM: the report is written and its exit code 0 stands/);
  assert.match(warnings[1] as string, /SIGTERM again: aborting the notifiers now; the exit code 0/);
  assert.ok(took < 2_500, `ended ${took} ms after the second signal, not at the push's timeout`);
  assert.equal(gateway.pushes.length, 1, "aborted, not retried");
});
