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
import { keyOf, type StateDir } from "./state.ts";

/** The directory's HMAC key: 32 random bytes, hex. */
const KEY_FILE = "prediction-key.json";
const KeyFile = z.object({ version: z.literal(1), key: z.string().regex(/^[0-9a-f]{64}$/) });

/** Version 1; a later version is ignored with a warning (state.read says so). */
const PredictionsFile = z.object({
  version: z.literal(1),
  origin: z.string(),
  /** `i/n`, or null for a run without shards. */
  shard: z.string().nullable(),
  /** Names the key the fingerprints were made with: another key's cannot match. */
  keyId: z.string(),
  /** `[pid, fingerprint, status id, epoch ms predicted]`, checked one by one. */
  entries: z.array(z.unknown()),
});

/** 128 bits of the HMAC, base64url. */
const FINGERPRINT = /^[A-Za-z0-9_-]{22}$/;

type Entry = [pid: number, fingerprint: string, status: number, at: number];

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
  return `predictions-${keyOf(new URL(patientServer).origin)}${part}.json`;
}

/** The prediction memory of this state directory, read now; see PredictionStoreOptions. */
export function predictionStore(
  state: StateDir,
  options: PredictionStoreOptions,
  warn: (message: string) => void,
): PredictionStore {
  const now = options.now ?? Date.now;
  const origin = new URL(options.patientServer).origin;
  const shard = options.shard ? `${options.shard.index}/${options.shard.count}` : null;
  const name = predictionsFileName(options.patientServer, options.shard);
  const file = join(state.path, name);
  const { key, made } = loadKey(state, !options.dryRun);
  const keyId = key
    ? createHmac("sha256", key).update("key id").digest("base64url").slice(0, 8)
    : "";
  const entries = new Map<number, Entry>();
  /** Whether the file must be written: something new, dropped or not to be kept. */
  let changed = false;

  if (key) {
    const kept = state.read(name, PredictionsFile, options.maxBytes);
    if (kept === undefined) {
      // Absent, or ignored with its warning: a file there is replaced by this run's.
    } else if (kept.origin !== origin || kept.shard !== shard || kept.keyId !== keyId) {
      // A key just made cannot have made any file's fingerprints: not worth a second warning.
      if (!made) warn(`State file ${file} was written for another backend, shard or key: ignored.`);
      changed = true;
    } else if (!load(kept.entries, entries)) {
      warn(`State file ${file} is damaged: ignored; this run predicts every patient.`);
      entries.clear();
      changed = true;
    }
  }

  const fingerprint = (question: string) =>
    createHmac("sha256", key as Buffer)
      .update(options.mlServer)
      .update("\0")
      .update(question)
      .digest()
      .subarray(0, 16)
      .toString("base64url");
  /** A random half to all of --reuse-for, the same for the same fingerprint (the HMAC is random). */
  const lifetime = (fp: string) =>
    options.reuseForMs * (0.5 + Buffer.from(fp, "base64url").readUInt32BE(0) / 2 ** 33);

  return {
    recall(pid, question) {
      if (!key || options.full) return undefined;
      const entry = entries.get(pid);
      if (!entry) return undefined;
      const fp = fingerprint(question);
      const age = now() - entry[3];
      // An entry from the future (a clock set back) is not trusted.
      return entry[1] === fp && age >= 0 && age < lifetime(fp) ? entry[2] : undefined;
    },
    remember(pid, question, status) {
      if (!key || !isPredicted(status)) return;
      entries.set(pid, [pid, fingerprint(question), status, now()]);
      changed = true;
    },
    async save() {
      if (!key || options.dryRun) return;
      // Entries no run may reuse any more go: patients not seen for --reuse-for leave the file.
      const at = now();
      for (const [pid, entry] of entries) {
        if (at - entry[3] >= options.reuseForMs || entry[3] > at) {
          entries.delete(pid);
          changed = true;
        }
      }
      if (!changed) return;
      const head = { version: 1, origin, shard, keyId } satisfies Omit<
        z.infer<typeof PredictionsFile>,
        "entries"
      >;
      await state.writeText(name, pieces(JSON.stringify(head).slice(0, -1), entries));
    },
  };
}

/** The file's text in pieces of about 64 KiB: 100,000 entries are never one string. */
function* pieces(head: string, entries: Map<number, Entry>): Generator<string> {
  let piece = `${head},"entries":[`;
  let first = true;
  for (const entry of entries.values()) {
    piece += `${first ? "" : ","}${JSON.stringify(entry)}`;
    first = false;
    if (piece.length >= 64 * 1024) {
      yield piece;
      piece = "";
    }
  }
  yield `${piece}]}\n`;
}

/** Fills `into` with the file's entries; false when any is not one this version writes. */
function load(raw: unknown[], into: Map<number, Entry>): boolean {
  for (const item of raw) {
    if (!Array.isArray(item) || item.length !== 4) return false;
    const [pid, fp, status, at] = item as unknown[];
    const valid =
      Number.isSafeInteger(pid) &&
      (pid as number) > 0 &&
      typeof fp === "string" &&
      FINGERPRINT.test(fp) &&
      isPredicted(status) &&
      Number.isSafeInteger(at) &&
      (at as number) >= 0 &&
      !into.has(pid as number);
    if (!valid) return false;
    into.set(pid as number, item as Entry);
  }
  return true;
}

/** A status the ML server can answer today (as validated on the wire): 1 Alert or 9 Normal. */
function isPredicted(status: unknown): status is number {
  return status === STATUS.alert || status === STATUS.normal;
}

/**
 * The directory's key; made (0600) when there is none and `create`. `made`: it is new, so no
 * file's fingerprints were made with it.
 */
function loadKey(state: StateDir, create: boolean): { key?: Buffer; made: boolean } {
  const kept = state.read(KEY_FILE, KeyFile);
  if (kept) return { key: Buffer.from(kept.key, "hex"), made: false };
  if (!create) return { made: false };
  const key = randomBytes(32);
  const written = state.write(KEY_FILE, { version: 1, key: key.toString("hex") });
  return written ? { key, made: true } : { made: false };
}
