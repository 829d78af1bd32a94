/**
 * The deployment examples, read as their schedulers read them: kubernetes.example.yaml (YAML 1.1,
 * as Kubernetes parses it), the Dockerfile and .dockerignore, crontab.example and cron.d.example,
 * and the systemd units (key=value lines in sections). Each test checks the fields that keep a run
 * bounded, unprivileged and heard of, and the sums that must agree between them.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { buildProgram, type Invocation } from "../src/cli/program.ts";
import { OPTION_LIST } from "../src/config/options.ts";
import { dockerStages, type Stage } from "./helpers/dockerfile.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const read = (name: string) => readFileSync(join(root, name), "utf8");

/** The README's bound: a run ends within --deadline + --grace + 2 seconds of its start. */
const END_MARGIN_SECONDS = 2;
/** Every example runs one sweep every 5 minutes. */
const PERIOD_SECONDS = 300;

// --- Command lines and variables ----------------------------------------------------------------

/** Variables the CLI reads that are not an option's: the services, the credentials, Node's. */
const FIXED_VARIABLES = [
  "PATIENT_SERVER",
  "ML_SERVER",
  ...["USERNAME", "PASSWORD", "TOKEN"].flatMap((n) => [`BACKEND_${n}`, `BACKEND_${n}_FILE`]),
  "NODE_OPTIONS",
  // Where the bin's "#!/usr/bin/env -S node --" finds Node 24 (the unit and the cron files set it).
  "PATH",
];

/** The value after `flag` on a command line, as a number (the examples' durations are bare). */
function numberAfter(args: readonly string[], flag: string): number {
  const at = args.indexOf(flag);
  assert.ok(at >= 0, `${flag} is given`);
  const value = Number(args[at + 1]);
  assert.ok(Number.isFinite(value), `${flag} ${args[at + 1]}`);
  return value;
}

/** The names among these flags and variables that the CLI does not declare. */
function unknownNames(args: readonly string[], env: Record<string, string | undefined>): string[] {
  const flags = new Set(OPTION_LIST.map(([, o]) => o.flags.split(" ")[0]));
  const variables = new Set([...FIXED_VARIABLES, ...OPTION_LIST.flatMap(([, o]) => o.env ?? [])]);
  return [
    ...args.filter((a) => a.startsWith("--") && !flags.has(a)),
    ...Object.keys(env).filter((name) => !variables.has(name)),
  ];
}

/** Parses a command line with the bin's own commander program: flags, rules and scopes. */
function parseArgs(args: readonly string[]): Invocation {
  let invocation: Invocation | undefined;
  buildProgram((asked) => {
    invocation = asked;
  }).parse([...args], { from: "user" });
  assert.ok(invocation, `no command for ${args.join(" ")}`);
  return invocation;
}

/** Checks each literal value of an option's variable with the option's own rule. */
function assertValidVariables(where: string, env: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(env)) {
    const rule = OPTION_LIST.find(([, o]) => o.env === name)?.[1].rule;
    if (rule && value !== undefined)
      assert.ok(rule.safeParse(value).success, `${where}: ${name}=${value} breaks its rule`);
  }
}

// --- Kubernetes ---------------------------------------------------------------------------------

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  env: EnvVar[];
  resources: {
    requests: { cpu: string; memory: string };
    limits: { cpu: string; memory: string };
  };
  securityContext: {
    runAsNonRoot: boolean;
    runAsUser: number;
    readOnlyRootFilesystem: boolean;
    allowPrivilegeEscalation: boolean;
    capabilities: { drop: string[]; add?: string[] };
    seccompProfile: { type: string };
  };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  restartPolicy: string;
  terminationGracePeriodSeconds: number;
  automountServiceAccountToken: boolean;
  securityContext: {
    runAsNonRoot: boolean;
    runAsUser: number;
    fsGroup: number;
    seccompProfile: { type: string };
  };
  containers: Container[];
  volumes: Array<{
    name: string;
    secret?: {
      secretName: string;
      defaultMode: number;
      items?: Array<{ key: string; path: string }>;
    };
  }>;
}
interface JobSpec {
  backoffLimit?: number;
  completionMode?: string;
  completions?: number;
  parallelism?: number;
  backoffLimitPerIndex?: number;
  activeDeadlineSeconds: number;
  ttlSecondsAfterFinished: number;
  podFailurePolicy: {
    rules: Array<{
      action: string;
      onExitCodes?: { containerName?: string; operator: string; values: number[] };
      onPodConditions?: Array<{ type: string }>;
    }>;
  };
  template: { spec: PodSpec };
}
interface CronJob {
  kind: "CronJob";
  metadata: { name: string };
  spec: {
    schedule: string;
    timeZone: string;
    concurrencyPolicy: string;
    startingDeadlineSeconds: number;
    successfulJobsHistoryLimit: number;
    failedJobsHistoryLimit: number;
    jobTemplate: { spec: JobSpec };
  };
}

/**
 * A CronJob of kubernetes.example.yaml, parsed as YAML 1.1 as Kubernetes does (0440 is octal): the
 * plain one (the first document), or the sharded one (the second, whose Jobs are Indexed Jobs).
 */
function cronJob(variant: "plain" | "sharded" = "plain"): {
  job: CronJob;
  container: Container;
  pod: PodSpec;
} {
  const docs = parseAllDocuments(read("kubernetes.example.yaml"), { version: "1.1" });
  assert.ok(Array.isArray(docs), "a YAML stream");
  for (const doc of docs) assert.deepEqual(doc.errors, [], "valid YAML");
  const jobs = docs.map((d) => d.toJS() as { kind?: string }).filter((o) => o?.kind === "CronJob");
  assert.equal(jobs.length, 2, "two CronJobs: the plain one, then the sharded one");
  const job = jobs[variant === "plain" ? 0 : 1] as CronJob;
  assert.equal(job.metadata.name, variant === "plain" ? "ml-scheduler" : "ml-scheduler-sharded");
  const pod = job.spec.jobTemplate.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  return { job, pod, container: pod.containers[0] as Container };
}

/** The container's literal variables (those from a Secret have no value here). */
function containerEnv(container: Container): Record<string, string | undefined> {
  return Object.fromEntries(container.env.map((e) => [e.name, e.value]));
}

function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(match, `${quantity} in Mi or Gi`);
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

test("kubernetes.example.yaml: a CronJob that never overlaps, never retries a sweep and ends in time", () => {
  const { job, pod, container } = cronJob();
  const { spec } = job;
  assert.equal(spec.schedule, "*/5 * * * *");
  assert.match(spec.timeZone, /^[A-Za-z_]+(\/[A-Za-z_+-]+)*$/, "an IANA time zone");
  assert.equal(spec.concurrencyPolicy, "Forbid");
  assert.ok(spec.startingDeadlineSeconds > 0 && spec.startingDeadlineSeconds < PERIOD_SECONDS);
  assert.ok(spec.successfulJobsHistoryLimit >= 1 && spec.failedJobsHistoryLimit >= 1);

  const jobSpec = spec.jobTemplate.spec;
  assert.equal(jobSpec.backoffLimit, 0, "the next schedule is the retry");
  assert.ok(jobSpec.ttlSecondsAfterFinished > 0);
  assert.equal(pod.restartPolicy, "Never");

  // The arithmetic of the file's header: the process's own bound, plus a minute to start the pod.
  const deadline = numberAfter(container.args, "--deadline");
  const grace = numberAfter(container.args, "--grace");
  const processBound = deadline + grace + END_MARGIN_SECONDS;
  assert.ok(
    jobSpec.activeDeadlineSeconds >= processBound + 60,
    `activeDeadlineSeconds ${jobSpec.activeDeadlineSeconds} covers ${processBound} s and the pod's start`,
  );
  assert.ok(jobSpec.activeDeadlineSeconds < PERIOD_SECONDS, "over before the next schedule");
  assert.ok(
    pod.terminationGracePeriodSeconds >= grace + END_MARGIN_SECONDS,
    "a stopped pod keeps --grace for in-flight patients",
  );

  const [failJob, ignore] = jobSpec.podFailurePolicy.rules;
  assert.equal(failJob?.action, "FailJob");
  assert.equal(failJob?.onExitCodes?.operator, "In");
  assert.equal(failJob?.onExitCodes?.containerName, container.name);
  assert.deepEqual(
    failJob?.onExitCodes?.values.toSorted((a, b) => a - b),
    [2, 3, 4, 70],
  );
  assert.equal(ignore?.action, "Ignore");
  assert.deepEqual(ignore?.onPodConditions, [{ type: "DisruptionTarget" }]);

  // The image's entrypoint (node directly) stays; JSON logs and a ping or a push are passed.
  assert.equal(container.command, undefined);
  assert.equal(container.args[container.args.indexOf("--log-format") + 1], "json");
  const env = containerEnv(container);
  assert.ok(
    container.args.includes("--pushgateway") ||
      container.args.includes("--ping-url") ||
      "PING_URL" in env ||
      "PUSHGATEWAY_URL" in env,
    "a push or a ping carries the exit code",
  );
  assert.doesNotMatch(container.image, /:latest$|^[^:]+$/, "a pinned image tag");
});

test("kubernetes.example.yaml: the sharded variant is an Indexed Job, one retry per index, the same pod", () => {
  const plain = cronJob("plain");
  const { job, pod, container } = cronJob("sharded");
  const spec = job.spec.jobTemplate.spec;
  assert.equal(spec.completionMode, "Indexed");
  const shards = numberAfter(container.args, "--shards");
  assert.equal(spec.completions, shards, "one index per shard");
  assert.equal(spec.parallelism, shards, "all shards at once, each with the whole time budget");
  assert.ok((spec.backoffLimitPerIndex ?? -1) >= 1, "a failed index is retried on its own");
  assert.equal(spec.backoffLimit, undefined, "per index, not per Job");
  assert.ok(!container.args.includes("--shard"), "the index comes from JOB_COMPLETION_INDEX");
  const [failIndex, ignore] = spec.podFailurePolicy.rules;
  assert.equal(failIndex?.action, "FailIndex");
  assert.equal(failIndex?.onExitCodes?.operator, "In");
  assert.equal(failIndex?.onExitCodes?.containerName, container.name);
  assert.deepEqual(
    failIndex?.onExitCodes?.values.toSorted((a, b) => a - b),
    [2, 3, 4, 70],
  );
  assert.equal(ignore?.action, "Ignore");
  assert.match(read("kubernetes.example.yaml"), /n logins, each about 0\.27 s of bcrypt/);
  assert.match(read("kubernetes.example.yaml"), /n copies of the whole patient list/);

  // Otherwise the plain CronJob's: schedule, time budget, pod; only --shards added.
  const { jobTemplate: plainTemplate, ...plainRest } = plain.job.spec;
  const { jobTemplate, ...rest } = job.spec;
  assert.deepEqual(rest, plainRest);
  assert.equal(spec.activeDeadlineSeconds, plainTemplate.spec.activeDeadlineSeconds);
  assert.equal(spec.ttlSecondsAfterFinished, plainTemplate.spec.ttlSecondsAfterFinished);
  assert.deepEqual({ ...pod, containers: [] }, { ...plain.pod, containers: [] });
  const without = container.args.filter(
    (_, i) =>
      i !== container.args.indexOf("--shards") && i !== container.args.indexOf("--shards") + 1,
  );
  assert.deepEqual({ ...container, args: without }, plain.container);
});

test("kubernetes.example.yaml: a non-root, read-only, unprivileged pod in 256 MiB, credentials as Secret files", () => {
  const { pod, container } = cronJob();
  const dockerfileUser = /^USER (\d+)$/m.exec(read("Dockerfile"))?.[1];
  for (const context of [pod.securityContext, container.securityContext]) {
    assert.equal(context.runAsNonRoot, true);
    assert.equal(context.runAsUser, 1000);
    assert.equal(String(context.runAsUser), dockerfileUser, "the image's USER");
    assert.equal(context.seccompProfile.type, "RuntimeDefault");
  }
  const security = container.securityContext;
  assert.equal(security.readOnlyRootFilesystem, true);
  assert.equal(security.allowPrivilegeEscalation, false);
  assert.deepEqual(security.capabilities.drop, ["ALL"]);
  assert.equal(security.capabilities.add, undefined);
  assert.equal(pod.automountServiceAccountToken, false);

  // NODE_OPTIONS sized for the memory limit: a heap of at most half of it, the young generation capped.
  const { requests, limits } = container.resources;
  assert.equal(limits.memory, "256Mi");
  assert.equal(requests.memory, limits.memory, "not the first pod evicted");
  assert.ok(requests.cpu && limits.cpu);
  const nodeOptions = containerEnv(container).NODE_OPTIONS ?? "";
  assert.equal(nodeOptions, "--max-old-space-size=128 --max-semi-space-size=8");
  const heap = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
  assert.ok(heap <= mebibytes(limits.memory) / 2);
  const dockerOptions = /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(read("Dockerfile"))?.[1];
  assert.equal(dockerOptions, nodeOptions, "the Dockerfile sets the same");

  // Credentials: *_FILE paths into a read-only mount of a Secret that the pod's group may read.
  const env = containerEnv(container);
  for (const name of ["BACKEND_USERNAME", "BACKEND_PASSWORD"]) {
    assert.ok(!(name in env), `${name} is not a plain variable`);
    const path = env[`${name}_FILE`];
    assert.ok(path, `${name}_FILE is set`);
    const mount = container.volumeMounts.find((m) => dirname(path) === m.mountPath);
    assert.ok(mount, `${path} is in a mount`);
    assert.equal(mount.readOnly, true);
    const volume = pod.volumes.find((v) => v.name === mount.name);
    assert.ok(volume?.secret, `${mount.name} is a Secret`);
    assert.equal(volume.secret.defaultMode, 0o440, "owner and group read, nobody else");
    const files = volume.secret.items?.map((i) => i.path);
    assert.ok(!files || files.includes(basename(path)), `${path} is one of the Secret's files`);
  }
  assert.equal(pod.securityContext.fsGroup, 1000, "the Secret's files belong to the user's group");
});

// --- Docker -------------------------------------------------------------------------------------

test("the Dockerfile: numeric USER 1000, OCI labels from build arguments, a .dockerignore sending only what it copies", () => {
  const stages = dockerStages();
  const runtime = stages.at(-1) as Stage;
  const ops = runtime.instructions;
  assert.deepEqual(
    ops.filter((i) => i.op === "USER").map((i) => i.args),
    ["1000"],
    "numeric, so runAsNonRoot can check it",
  );

  const args = ops.flatMap((i, at) => (i.op === "ARG" ? [{ name: i.args.split("=")[0], at }] : []));
  const lastRun = ops.findLastIndex((i) => i.op === "RUN");
  for (const arg of args) assert.ok(arg.at > lastRun, `ARG ${arg.name} after the last RUN (cache)`);
  const labels = Object.fromEntries(
    ops
      .filter((i) => i.op === "LABEL")
      .flatMap((i) => [...i.args.matchAll(/([\w.-]+)="([^"]*)"/g)].map((m) => [m[1], m[2]])),
  );
  for (const key of ["version", "revision", "source"]) {
    const value = labels[`org.opencontainers.image.${key}`];
    const arg = /^\$\{(\w+)\}$/.exec(value ?? "")?.[1];
    assert.ok(arg, `org.opencontainers.image.${key} comes from a build argument`);
    assert.ok(
      args.some((a) => a.name === arg),
      `ARG ${arg} is declared in the runtime stage`,
    );
  }

  const ignore = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  assert.equal(ignore[0], "*", "everything is left out first");
  const sent = ignore.slice(1).map((p) => p.replace(/^!/, ""));
  assert.ok(
    ignore.slice(1).every((p) => p.startsWith("!")),
    "then only re-inclusions",
  );
  const copied = stages.flatMap((s) =>
    s.instructions
      .filter((i) => i.op === "COPY" && !i.args.startsWith("--from="))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1)),
  );
  assert.deepEqual(sent.toSorted(), [...new Set(copied)].toSorted());
  for (const secret of [".env", "node_modules", ".git", "test"])
    assert.ok(!sent.includes(secret), `${secret} stays out of the build context`);
});

test("the lockfile: only the dev-only `node` package has an install script, which the build stage skips", () => {
  const lock = JSON.parse(read("package-lock.json")) as {
    packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
  };
  const scripted = Object.entries(lock.packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([path]) => path);
  assert.deepEqual(scripted, ["node_modules/node"], "the one that downloads Node 24");
  assert.equal(lock.packages["node_modules/node"]?.dev, true, "npm ci --omit=dev leaves it out");

  const stages = dockerStages();
  const build = stages.find((stage) => stage.name === "build");
  const installs = (stage: Stage | undefined) =>
    (stage?.instructions ?? []).filter(
      (i) => i.op === "RUN" && /\bnpm (ci|install)\b/.test(i.args),
    );
  assert.ok(installs(build).length > 0);
  for (const install of installs(build))
    assert.match(install.args, /--ignore-scripts\b/, "no second Node on top of the image's");
  for (const stage of stages.filter((x) => x !== build))
    for (const install of installs(stage)) assert.match(install.args, /\bnpm ci --omit=dev\b/);
});

// --- cron ---------------------------------------------------------------------------------------

interface CronEntry {
  schedule: string;
  user: string | undefined;
  argv: string[];
  redirects: string[];
}

/** The entries of a crontab (with the user field for /etc/cron.d) and its variables. */
function crontab(name: string, userField: boolean) {
  const lines = read(name)
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"));
  const variables = Object.fromEntries(
    lines.flatMap((l) => {
      const m = /^([A-Z_]+)=(.*)$/.exec(l);
      return m ? [[m[1], m[2]]] : [];
    }),
  );
  const entries = lines
    .filter((l) => !/^[A-Z_]+=/.test(l))
    .map((line): CronEntry => {
      // One word per token is all these entries need: no quotes, so a plain split is cron's view.
      assert.doesNotMatch(line, /['"\\]/, `${name}: no quoting`);
      assert.doesNotMatch(line, /%/, `${name}: cron turns % into a newline`);
      assert.doesNotMatch(line, /[|;&`$]/, `${name}: one command, no pipe to swallow its status`);
      const words = line.split(/\s+/);
      const fields = userField ? 6 : 5;
      const command = words.slice(fields);
      return {
        schedule: words.slice(0, 5).join(" "),
        user: userField ? words[5] : undefined,
        argv: command.filter((w) => !/^\d?>/.test(w)),
        redirects: command.filter((w) => /^\d?>/.test(w)),
      };
    });
  return { variables, entries };
}

test("crontab.example and cron.d.example: the exit code reaches someone, and a run ends inside its slot", () => {
  const user = crontab("crontab.example", false);
  const system = crontab("cron.d.example", true);
  for (const [name, { variables, entries }] of [
    ["crontab.example", user],
    ["cron.d.example", system],
  ] as const) {
    assert.equal(entries.length, 1, name);
    const entry = entries[0] as CronEntry;
    assert.equal(entry.schedule, "*/5 * * * *", name);
    assert.match(entry.argv[0] ?? "", /(^|\/)ml-scheduler$/);
    const args = entry.argv.slice(1);
    assert.ok(
      args.includes("--ping-url") || args.includes("--metrics-file"),
      `${name}: a ping or a metrics file hears the exit code`,
    );
    assert.ok(args.includes("--lock"), `${name}: one run at a time`);
    assert.ok(args.includes("--env-file"));
    // Only stdout may go: stderr (errors, with --quiet) is what cron mails.
    assert.deepEqual(entry.redirects, [">/dev/null"], name);
    assert.ok(args.includes("--quiet"), `${name}: a good run mails nothing`);
    assert.match(variables.MAILTO ?? "", /^\S+@\S+$/, `${name}: MAILTO`);
    assert.equal(variables.SHELL, "/bin/sh");
    const bound =
      numberAfter(args, "--deadline") + numberAfter(args, "--grace") + END_MARGIN_SECONDS;
    assert.ok(bound <= PERIOD_SECONDS, `${name}: ${bound} s fits the 5-minute slot`);
  }
  assert.match(system.entries[0]?.user ?? "", /^[a-z_][a-z0-9_-]*$/, "a user field");
  assert.notEqual(system.entries[0]?.user, "root");
  assert.deepEqual(system.entries[0]?.argv, user.entries[0]?.argv, "the two entries agree");
});

// --- systemd ------------------------------------------------------------------------------------

type UnitFile = Map<string, Map<string, string[]>>;

/** A unit file's sections and keys (a repeated key keeps each value), continuations joined. */
function unitFile(name: string): UnitFile {
  const unit: UnitFile = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = read(name)
    .split("\n")
    .filter((l) => !/^\s*[#;]/.test(l))
    .join("\n")
    .replace(/\\\n\s*/g, " ")
    .split("\n");
  for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const [, key = "", value = ""] = /^(\w+)=(.*)$/.exec(line) ?? [];
    assert.ok(section && key, `${name}: ${line}`);
    section.set(key, [...(section.get(key) ?? []), value]);
  }
  return unit;
}

/** The one value of a key; undefined when absent. */
function one(unit: UnitFile, section: string, key: string): string | undefined {
  const values = unit.get(section)?.get(key);
  assert.ok((values?.length ?? 0) <= 1, `one ${key}=`);
  return values?.[0];
}

/** A time span as systemd writes it in these units: a number of seconds, `10s` or `5min`. */
function seconds(span: string | undefined): number {
  const match = /^(\d+)(s|sec|min)?$/.exec(span ?? "");
  assert.ok(match, `a time span: ${span}`);
  return Number(match[1]) * (match[2] === "min" ? 60 : 1);
}

/** The service's Environment= assignments (one a line, unquoted). */
function unitEnv(unit: UnitFile): Record<string, string> {
  return Object.fromEntries(
    (unit.get("Service")?.get("Environment") ?? []).map((assignment) => {
      assert.doesNotMatch(assignment, /["'\s]/, "one unquoted assignment a line");
      const at = assignment.indexOf("=");
      return [assignment.slice(0, at), assignment.slice(at + 1)];
    }),
  );
}

function execStart(unit: UnitFile): string[] {
  return (one(unit, "Service", "ExecStart") ?? "").split(/\s+/);
}

test("ml-scheduler.service: a oneshot that fails visibly, bounded by its deadline, unprivileged, credentials through LoadCredential", () => {
  const unit = unitFile("ml-scheduler.service");
  const get = (key: string) => one(unit, "Service", key);
  assert.equal(get("Type"), "oneshot");

  // Ready for OnFailure=: every non-zero exit code fails the unit, and nothing hides it.
  const [program = "", ...args] = execStart(unit);
  assert.match(program, /^\/\S+\/ml-scheduler$/, "an absolute path, no -, +, ! or @ prefix");
  assert.equal(get("SuccessExitStatus"), undefined);
  assert.equal(get("RemainAfterExit"), undefined, "else the next start is a no-op");
  assert.ok([undefined, "no"].includes(get("Restart")), "the next timer run is the retry");
  assert.equal(unit.get("Install"), undefined, "started by its timer, not at boot");

  const grace = numberAfter(args, "--grace");
  const bound = numberAfter(args, "--deadline") + grace + END_MARGIN_SECONDS;
  assert.ok(seconds(get("TimeoutStartSec")) >= bound, `TimeoutStartSec covers ${bound} s`);
  assert.ok(seconds(get("TimeoutStopSec")) >= grace + END_MARGIN_SECONDS, "a stop keeps --grace");

  assert.equal(get("DynamicUser"), "yes");
  assert.equal(get("ProtectSystem"), "strict");
  assert.equal(get("NoNewPrivileges"), "yes");
  const metrics = args[args.indexOf("--metrics-file") + 1] ?? unitEnv(unit).METRICS_FILE;
  assert.ok(metrics, "a metrics file for node_exporter");
  assert.deepEqual(
    (get("ReadWritePaths") ?? "").split(/\s+/),
    [dirname(metrics)],
    "writes the metrics file's directory (atomic rename) and nothing else",
  );

  const credentials = new Map(
    (unit.get("Service")?.get("LoadCredential") ?? []).map((c) => {
      const [id = "", source = ""] = c.split(":");
      assert.match(source, /^\//, `${id} from an absolute path`);
      return [id, source];
    }),
  );
  const env = unitEnv(unit);
  for (const name of ["BACKEND_USERNAME", "BACKEND_PASSWORD"]) {
    assert.ok(!(name in env), `${name} is not in the unit`);
    const file = /^%d\/(.+)$/.exec(env[`${name}_FILE`] ?? "")?.[1];
    assert.ok(file, `${name}_FILE points into the credentials directory %d`);
    assert.ok(credentials.has(file), `LoadCredential=${file}:...`);
  }
});

test("ml-scheduler.timer: every 5 minutes, persistent, a small random delay that keeps runs apart", () => {
  const timer = unitFile("ml-scheduler.timer");
  const service = unitFile("ml-scheduler.service");
  const get = (key: string) => one(timer, "Timer", key);
  assert.equal(get("OnCalendar"), "*:0/5");
  assert.equal(get("Persistent"), "true");
  assert.equal(get("Unit"), "ml-scheduler.service");
  assert.equal(one(timer, "Install", "WantedBy"), "timers.target");
  const delay = seconds(get("RandomizedDelaySec"));
  assert.ok(delay > 0 && delay <= 30, "small");
  // Two starts are at least the period less the delay and the accuracy apart; a run fits in that.
  const longest = seconds(one(service, "Service", "TimeoutStartSec"));
  assert.ok(longest + delay + seconds(get("AccuracySec")) <= PERIOD_SECONDS);
});

test("ml-scheduler.service: a state directory, UMask=0027, the sandboxing systemd-analyze security asks for, OnFailure= a shipped template", () => {
  const unit = unitFile("ml-scheduler.service");
  const get = (key: string) => one(unit, "Service", key);
  // STATE_DIRECTORY, which ml-scheduler reads as --state-dir, comes from StateDirectory=.
  assert.match(get("StateDirectory") ?? "", /^[a-z][a-z0-9-]*$/, "one directory");
  assert.equal(get("StateDirectoryMode"), "0700", "the token cache is the run's alone");
  assert.equal(unitEnv(unit).STATE_DIRECTORY, undefined, "systemd sets it");
  assert.equal(get("UMask"), "0027");
  for (const key of [
    "ProtectClock",
    "ProtectKernelLogs",
    "ProtectHostname",
    "RestrictRealtime",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "PrivateDevices",
  ])
    assert.equal(get(key), "yes", key);

  // OnFailure= names a template that ships beside the unit, for every failed run.
  const onFailure = one(unit, "Unit", "OnFailure") ?? "";
  const template = /^([\w-]+@)%n\.service$/.exec(onFailure)?.[1];
  assert.ok(template, `OnFailure=<template>@%n.service, got ${onFailure}`);
  const failure = unitFile(`${template}.service`);
  assert.equal(one(failure, "Service", "Type"), "oneshot");
  assert.match(one(failure, "Service", "ExecStart") ?? "", /^\/\S+/, "an absolute program");
  assert.equal(failure.get("Install"), undefined, "started by OnFailure= only");
  assert.match(read(`${template}.service`), /%i/, "it names the failed unit");
});

test("one install layout: the unit's ExecStart, the README's install command and the cron files' PATH name the same places", () => {
  const readme = read("README.md");
  const section = readme.slice(readme.indexOf("### Installing on a host"));
  const install = /npm install -g --prefix (\/\S+) \.\/ml-scheduler-<version>\.tgz/.exec(section);
  assert.ok(install, "the README's install command, from npm pack's tarball");
  assert.match(section.slice(0, install.index), /npm pack/);
  const prefix = install[1] as string;
  const bin = `${prefix}/bin/ml-scheduler`;

  const unit = unitFile("ml-scheduler.service");
  assert.equal(execStart(unit)[0], bin, "ExecStart= is where that install puts the bin");
  const path = unitEnv(unit).PATH ?? "";
  const dirs = path.split(":");
  assert.ok(dirs.includes(`${prefix}/bin`), `${path} holds the bin`);
  // Node 24 before the system's: the tarball's, linked as the README says, then NodeSource's.
  const tarball = /sudo ln -sfn "\/opt\/\$\{file%\.tar\.xz\}" (\/\S+)/.exec(readme)?.[1];
  assert.ok(tarball, "the README links the release tarball's directory under one name");
  assert.equal(dirs[0], `${tarball}/bin`, "the tarball's Node 24 first");
  assert.ok(dirs.indexOf("/usr/bin") > 0, "NodeSource's /usr/bin/node after it");
  assert.ok(section.includes(`PATH=${path}`), "the README names the same PATH");

  for (const name of ["crontab.example", "cron.d.example"]) {
    const cron = crontab(name, name === "cron.d.example");
    assert.equal(cron.variables.PATH, path, `${name}: the unit's PATH`);
    assert.equal(cron.entries[0]?.argv[0], "ml-scheduler", `${name}: found on that PATH`);
    assert.match(read(name), new RegExp(`npm install -g --prefix ${prefix} \\./ml-scheduler-`));
  }
  assert.match(read("ml-scheduler.service"), new RegExp(`npm install -g --prefix ${prefix} `));
});

test("the ping URL stays out of the world-readable /etc/cron.d file: it belongs in the 0600 env file", () => {
  for (const name of ["cron.d.example", "crontab.example"]) {
    const cron = crontab(name, name === "cron.d.example");
    const args = cron.entries[0]?.argv ?? [];
    assert.ok(!args.includes("--ping-url"), `${name}: no --ping-url on the command line`);
    assert.ok(args.includes("--env-file"));
    for (const line of read(name)
      .split("\n")
      .filter((l) => !l.startsWith("#")))
      assert.doesNotMatch(line, /https?:\/\//, `${name}: no URL outside comments: ${line}`);
  }
  assert.match(read("crontab.example"), /^#\s+PING_URL=https:\/\/\S+$/m, "shown for the env file");
});

test("kubernetes.example.yaml: the comment on finished Jobs says the history limits prune them, not the TTL", () => {
  const text = read("kubernetes.example.yaml");
  const comments = [...text.matchAll(/((?:^ *#.*\n)+) *ttlSecondsAfterFinished:/gm)].map(
    (m) => m[1] as string,
  );
  assert.equal(comments.length, 2, "both CronJobs");
  for (const comment of comments) {
    assert.match(comment, /pruned by the CronJob's history limits/);
    assert.doesNotMatch(comment, /beyond the history limits/);
  }
});

// --- Every example against the CLI ----------------------------------------------------------------

test("every flag and environment variable the examples pass exists in the CLI and obeys its rule", () => {
  const { container } = cronJob();
  const sharded = cronJob("sharded").container;
  const service = unitFile("ml-scheduler.service");
  const examples: Array<{ name: string; args: string[]; env: Record<string, string | undefined> }> =
    [
      { name: "kubernetes.example.yaml", args: container.args, env: containerEnv(container) },
      {
        name: "kubernetes.example.yaml (sharded)",
        args: sharded.args,
        env: containerEnv(sharded),
      },
      ...(["crontab.example", "cron.d.example"] as const).map((name) => ({
        name,
        args: crontab(name, name === "cron.d.example").entries[0]?.argv.slice(1) ?? [],
        env: {},
      })),
      { name: "ml-scheduler.service", args: execStart(service).slice(1), env: unitEnv(service) },
    ];
  const unknown = examples.flatMap(({ name, args, env }) =>
    unknownNames(args, env).map((n) => `${name}: ${n}`),
  );
  assert.deepEqual(unknown, [], "names the CLI does not declare in src/config/options.ts");
  for (const { name, args, env } of examples) {
    assert.equal(parseArgs(args).command, "sweep", name);
    assertValidVariables(name, env);
  }
});
