/**
 * Incremental sweeps: the predictions earlier runs made, kept in `--state-dir` so that the same
 * question is never asked of the ML server twice within `--reuse-for`. The question is exactly the
 * body sent to `/predict` and `ML_SERVER` as configured; what is kept of it is a keyed hash
 * (HMAC-SHA256 with a random key of this directory, `prediction-key.json`, 0600), never the vitals.
 * Only pid, fingerprint, status id and time are kept, one file per backend origin and shard,
 * written atomically once per run. Best effort: a file that cannot be trusted is one warning and
 * the run predicts everything.
 */
import { createHmac, randomBytes } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import type { PredictionMemory } from "../core/patient.ts";
import type { Shard } from "../core/select.ts";
import { STATUS } from "../services/schemas.ts";
import { Entries, FP_BYTES } from "./prediction-entries.ts";
import { keyOf, type StateDir } from "./state.ts";

/** The directory's HMAC key: 32 random bytes, hex. */
const KEY_FILE = "prediction-key.json";
const KeyFile = z.object({ version: z.literal(1), key: z.string().regex(/^[0-9a-f]{64}$/) });

/**
 * The file's first line (JSON); one line per entry follows: `<pid> <fingerprint> <status id>
 * <epoch ms predicted>`, the fingerprint in base64url. Lines, not one JSON document: 100,000
 * entries are read without 100,000 parsed arrays. Version 1; another is ignored with a warning.
 */
const Head = z.object({
  version: z.literal(1),
  origin: z.string(),
  /** `i/n`, or null for a run without shards. */
  shard: z.string().nullable(),
  /** Names the key the fingerprints were made with: another key's cannot match. */
  keyId: z.string(),
});
type Head = z.infer<typeof Head>;

export interface PredictionStoreOptions {
  /** PATIENT_SERVER: its origin names the file (pids are that backend's). */
  patientServer: string;
  /** ML_SERVER as configured, path included: part of every fingerprint. */
  mlServer: string;
  shard?: Shard | undefined;
  /** `--reuse-for` in ms (> 0): an entry lives a random half to all of it. */
  reuseForMs: number;
  /** `--full`: nothing is recalled; what is predicted is remembered. */
  full: boolean;
  /** `--dry-run`: recall only; `save` writes nothing, and no key is made. */
  dryRun: boolean;
  /** The file's read bound (derived from --max-list-mib). */
  maxBytes: number;
  /** Epoch ms now; Date.now unless given. */
  now?: (() => number) | undefined;
}

export interface PredictionStore extends PredictionMemory {
  /** Writes what is remembered (once, after the sweep); nothing under --dry-run. */
  save(): Promise<void>;
}

/** The file of this backend and shard: shards keep one file each, so parallel shards never mix. */
export function predictionsFileName(patientServer: string, shard?: Shard): string {
  const part = shard ? `-shard-${shard.index}-of-${shard.count}` : "";
  return `predictions-${keyOf(new URL(patientServer).origin)}${part}.txt`;
}

/** The prediction memory of this state directory, read now; see PredictionStoreOptions. */
export async function predictionStore(
  state: StateDir,
  options: PredictionStoreOptions,
  warn: (message: string) => void,
): Promise<PredictionStore> {
  const now = options.now ?? Date.now;
  const origin = new URL(options.patientServer).origin;
  const shard = options.shard ? `${options.shard.index}/${options.shard.count}` : null;
  const name = predictionsFileName(options.patientServer, options.shard);
  const file = join(state.path, name);
  const { key, made } = await loadKey(state, !options.dryRun);
  const keyId = key
    ? createHmac("sha256", key).update("key id").digest("base64url").slice(0, 8)
    : "";
  const entries = new Entries();
  /** Whether the file must be written: something new, dropped or not to be kept. */
  let changed = false;

  const text = key ? state.readText(name, options.maxBytes) : undefined;
  if (text !== undefined) {
    changed = true; // unless it loads: then only what changes
    const newline = text.indexOf("\n");
    const head = parseHead(newline === -1 ? text : text.slice(0, newline));
    if (head === undefined) {
      warn(`State file ${file} is not one this version writes (version 1): ignored.`);
    } else if (head.origin !== origin || head.shard !== shard || head.keyId !== keyId) {
      // A key just made cannot have made any file's fingerprints: not worth a second warning.
      if (!made) warn(`State file ${file} was written for another backend, shard or key: ignored.`);
    } else if (!entries.load(text, newline + 1)) {
      warn(`State file ${file} is damaged: ignored; this run predicts every patient.`);
      entries.clear();
    } else {
      changed = false;
    }
  }

  const fingerprint = (question: string) =>
    createHmac("sha256", key as Buffer)
      .update(options.mlServer)
      .update("\0")
      .update(question)
      .digest()
      .subarray(0, FP_BYTES);
  /** A random half to all of --reuse-for, the same for the same fingerprint (the HMAC is random). */
  const lifetime = (fp: Buffer) => options.reuseForMs * (0.5 + fp.readUInt32BE(0) / 2 ** 33);

  return {
    recall(pid, question) {
      if (!key || options.full) return undefined;
      const slot = entries.slot(pid);
      if (slot === undefined) return undefined;
      const fp = fingerprint(question);
      const age = now() - entries.at(slot);
      // An entry from the future (a clock set back) is not trusted.
      return entries.matches(slot, fp) && age >= 0 && age < lifetime(fp)
        ? entries.status(slot)
        : undefined;
    },
    remember(pid, question, status) {
      if (!key || !isPredicted(status)) return;
      entries.set(pid, fingerprint(question), status, now());
      changed = true;
    },
    async save() {
      if (!key || options.dryRun) return;
      // Entries no run may reuse any more go: patients not seen for --reuse-for leave the file.
      const at = now();
      if (entries.drop((predicted) => at - predicted >= options.reuseForMs || predicted > at)) {
        changed = true;
      }
      if (!changed) return;
      const head: Head = { version: 1, origin, shard, keyId };
      await state.writeText(name, entries.lines(`${JSON.stringify(head)}\n`));
    },
  };
}

function parseHead(line: string): Head | undefined {
  try {
    return Head.safeParse(JSON.parse(line)).data;
  } catch {
    return undefined;
  }
}

/** A status the ML server can answer today (as validated on the wire): 1 Alert or 9 Normal. */
function isPredicted(status: unknown): status is number {
  return status === STATUS.alert || status === STATUS.normal;
}

/**
 * The directory's key; made (0600) when there is none and `create`. `made`: it is new, so no
 * file's fingerprints were made with it.
 */
async function loadKey(state: StateDir, create: boolean): Promise<{ key?: Buffer; made: boolean }> {
  const kept = state.read(KEY_FILE, KeyFile);
  if (kept) return { key: Buffer.from(kept.key, "hex"), made: false };
  if (!create) return { made: false };
  const key = randomBytes(32);
  const written = await state.write(KEY_FILE, { version: 1, key: key.toString("hex") });
  return written ? { key, made: true } : { made: false };
}
