/**
 * The metrics against the real tools an operator runs, Debian's packages on 127.0.0.1: node_exporter's
 * textfile collector reads the metrics file, a real Pushgateway takes the push, promtool checks and
 * tests the shipped alert rules. A missing tool fails these tests (`.ci/run` installs them).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { run } from "../helpers/exec.ts";
import { runTool, type Sample, samples, startDaemon } from "../helpers/prometheus-tools.ts";
import { startServices } from "../helpers/services.ts";
import { tempDir } from "../helpers/temp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const LAST_SUCCESS = "ml_scheduler_last_success_timestamp_seconds";

/** The value of the one sample with this name and exactly these labels among those of `found`. */
function one(found: Sample[], name: string, labels: Record<string, string>): number {
  const key = JSON.stringify(Object.entries(labels).toSorted());
  const matching = found.filter(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).toSorted()) === key,
  );
  assert.equal(matching.length, 1, `${name}${JSON.stringify(labels)} in ${JSON.stringify(found)}`);
  return (matching[0] as Sample).value;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return samples(await res.text());
}

test("node_exporter's textfile collector reads two shards' files with no error; a failed run keeps its last success", async (t) => {
  const { env } = await startServices(t);
  const failing = { ...env, BACKEND_PASSWORD: "not-the-password" };
  const dir = tempDir(t, "textfile");
  const exporter = await startDaemon(t, "prometheus-node-exporter", (address) => [
    `--web.listen-address=${address}`,
    "--collector.disable-defaults",
    "--collector.textfile",
    `--collector.textfile.directory=${dir}`,
  ]);
  // As the unit runs it: UMask=0027, one file per shard in the collector's directory.
  const umask = ["--import", "data:text/javascript,process.umask(0o027)"];
  const file = join(dir, "ml_scheduler_{shard}.prom");
  for (const shard of ["0/2", "1/2"]) {
    const res = await run(["--dry-run", "--metrics-file", file, "--shard", shard], {
      env,
      nodeArgs: umask,
    });
    assert.equal(res.code, 0, res.stderr);
  }
  // promtool's lint of the file itself: valid exposition, no naming problem.
  const lint = await runTool("promtool", ["check", "metrics"], {
    input: readFileSync(join(dir, "ml_scheduler_0.prom"), "utf8"),
  });
  assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  assert.equal(lint.stdout + lint.stderr, "", "no lint problem");

  const first = await scrape(exporter);
  assert.equal(one(first, "node_textfile_scrape_error", {}), 0);
  const success = [0, 1].map((i) => one(first, LAST_SUCCESS, { shard: String(i) }));
  for (const value of success) assert.ok(value > 1_700_000_000, String(value));
  assert.equal(one(first, "ml_scheduler_exit_code", { shard: "1" }), 0);
  assert.equal(
    one(first, "ml_scheduler_patients", { shard: "0", outcome: "would_update" }) +
      one(first, "ml_scheduler_patients", { shard: "1", outcome: "would_update" }),
    4,
    "the demo's four changes, split over the shards",
  );

  // Shard 1 fails (exit 4): its exit code moves, its last success stays; shard 0 is untouched.
  const failed = await run(["--dry-run", "--metrics-file", file, "--shard", "1/2"], {
    env: failing,
    nodeArgs: umask,
  });
  assert.equal(failed.code, 4, failed.stderr);
  const second = await scrape(exporter);
  assert.equal(one(second, "node_textfile_scrape_error", {}), 0);
  assert.equal(one(second, "ml_scheduler_exit_code", { shard: "1" }), 4);
  assert.equal(one(second, LAST_SUCCESS, { shard: "1" }), success[1]);
  assert.equal(one(second, LAST_SUCCESS, { shard: "0" }), success[0]);
});

interface Group {
  labels: Record<string, string>;
  [metric: string]: unknown;
}

/** The Pushgateway's groups (GET /api/v1/metrics). */
async function groups(gateway: string): Promise<Group[]> {
  const res = await fetch(`${gateway}/api/v1/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; data: Group[] };
  assert.equal(body.status, "success");
  return body.data;
}

/** The one value a group holds for a metric without labels of its own. */
function groupValue(group: Group, name: string): number {
  const family = group[name] as {
    metrics: Array<{ labels: Record<string, string>; value: string }>;
  };
  assert.ok(family, `${name} in ${JSON.stringify(group.labels)}`);
  assert.equal(family.metrics.length, 1);
  return Number(family.metrics[0]?.value);
}

test("a push lands in its group on a real Pushgateway with its grouping labels; a failed run keeps the last success", async (t) => {
  const { env } = await startServices(t);
  // Debian's default persists to /var/lib/prometheus/pushgateway.data: in memory only here.
  const gateway = await startDaemon(t, "prometheus-pushgateway", (address) => [
    `--web.listen-address=${address}`,
    "--persistence.file=",
  ]);
  const args = [
    "--dry-run",
    "--pushgateway",
    gateway,
    "--pushgateway-label",
    "site=north/1",
    "--shard",
    "1/2",
  ];
  const ok = await run(args, { env: { ...env, PUSHGATEWAY_LABELS: "ignored=1" } });
  assert.equal(ok.code, 0, ok.stderr);
  // The environment's labels apply when no flag gives any: another deployment, its own group.
  const other = await run(["--dry-run", "--pushgateway", gateway], {
    env: { ...env, PUSHGATEWAY_LABELS: "env=staging" },
  });
  assert.equal(other.code, 0, other.stderr);

  const pushed = await groups(gateway);
  assert.equal(pushed.length, 2, JSON.stringify(pushed.map((g) => g.labels)));
  const find = (labels: Record<string, string>) => {
    const group = pushed.find(
      (g) =>
        JSON.stringify(Object.entries(g.labels).toSorted()) ===
        JSON.stringify(Object.entries(labels).toSorted()),
    );
    assert.ok(
      group,
      `group ${JSON.stringify(labels)} in ${JSON.stringify(pushed.map((g) => g.labels))}`,
    );
    return group;
  };
  const sharded = find({ job: "ml_scheduler", site: "north/1", shard: "1" });
  find({ job: "ml_scheduler", env: "staging" });
  const success = groupValue(sharded, LAST_SUCCESS);
  assert.ok(success > 1_700_000_000);
  // Every sample carries the grouping key's labels (as a scrape with honor_labels keeps them).
  const family = sharded.ml_scheduler_exit_code as {
    metrics: Array<{ labels: Record<string, string> }>;
  };
  assert.deepEqual(family.metrics[0]?.labels, {
    instance: "",
    job: "ml_scheduler",
    site: "north/1",
    shard: "1",
  });

  const failed = await run(args, { env: { ...env, BACKEND_PASSWORD: "not-the-password" } });
  assert.equal(failed.code, 4, failed.stderr);
  const after = await groups(gateway);
  const group = after.find((g) => g.labels.site === "north/1");
  assert.ok(group);
  assert.equal(groupValue(group, "ml_scheduler_exit_code"), 4);
  assert.equal(
    groupValue(group, LAST_SUCCESS),
    success,
    "the last success survives the failed run",
  );
  assert.equal(after.length, 2, "the failed run replaced its own group, nothing else");
});

test("the shipped alert rules pass promtool check rules and promtool test rules", async () => {
  const check = await runTool("promtool", ["check", "rules", "prometheus-rules.example.yaml"], {
    cwd: root,
  });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /SUCCESS: 4 rules found/);
  const unit = await runTool("promtool", ["test", "rules", "prometheus-rules.test.yaml"], {
    cwd: root,
  });
  assert.equal(unit.code, 0, unit.stdout + unit.stderr);
  assert.match(unit.stdout, /SUCCESS/);
});

test("the rules' test series are what real runs write: each name with its labels, job and instance aside", async (t) => {
  const { env } = await startServices(t);
  const dir = tempDir(t, "rules-series");
  const written: Sample[] = [];
  for (const shard of [[], ["--shard", "1/2"]]) {
    const file = join(dir, `m${shard.length}.prom`);
    const res = await run(["--dry-run", "--metrics-file", file, ...shard], { env });
    assert.equal(res.code, 0, res.stderr);
    written.push(...samples(readFileSync(file, "utf8")));
  }
  const shape = (name: string, labels: Record<string, string>) =>
    `${name}{${Object.keys(labels)
      .filter((k) => k !== "job" && k !== "instance")
      .toSorted()
      .join(",")}}`;
  const real = new Set(written.map((s) => shape(s.name, s.labels)));
  const tests = parse(readFileSync(join(root, "prometheus-rules.test.yaml"), "utf8")) as {
    tests: Array<{ input_series: Array<{ series: string }> }>;
  };
  const series = tests.tests.flatMap((x) => x.input_series.map((s) => s.series));
  const ours = series.filter((s) => s.startsWith("ml_scheduler_"));
  assert.ok(ours.length >= 8, "the rules are tested over our series");
  for (const text of ours) {
    const [parsed] = samples(`${text} 0`);
    assert.ok(parsed, text);
    assert.ok(real.has(shape(parsed.name, parsed.labels)), `${text} is no series a run writes`);
  }
  // And every metric an alert reads is one a run writes.
  const rules = readFileSync(join(root, "prometheus-rules.example.yaml"), "utf8");
  for (const name of new Set(rules.match(/ml_scheduler_[a-z_]+/g) ?? []))
    assert.ok(
      written.some((s) => s.name === name),
      `the rules read ${name}, which no run writes`,
    );
});
