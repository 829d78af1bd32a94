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

/** Bytes of the HMAC kept: 128 bits. */
const FP_BYTES = 16;
const ENTRY = /^([1-9]\d{0,15}) ([A-Za-z0-9_-]{22}) ([19]) (\d{1,16})$/;

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

/**
 * The entries, compact: 100,000 of them as arrays of a pid, a string and two numbers would take
 * ~18 MB of a capped heap, and a Map from pid to slot alone 3.7 MB of it, walked by every
 * collection. Here typed arrays, outside the heap: the slots' columns, and an index from pid to
 * slot (open addressing, linear probing) twice their size.
 */
class Entries {
  #size = 0;
  /** pid by slot; NaN for a dropped entry. */
  #pids = new Float64Array(0);
  #fps = new Uint8Array(0);
  #statuses = new Uint8Array(0);
  #ats = new Float64Array(0);
  /** slot + 1 by the pid's hash; 0 is free. Its length is a power of two. */
  #index = new Int32Array(0);

  slot(pid: number): number | undefined {
    const mask = this.#index.length - 1;
    if (mask < 0) return undefined;
    for (let at = this.#home(pid); ; at = (at + 1) & mask) {
      const slot = (this.#index[at] ?? 0) - 1;
      if (slot < 0) return undefined;
      if (this.#pids[slot] === pid) return slot;
    }
  }
  at(slot: number): number {
    return this.#ats[slot] ?? Number.NaN;
  }
  status(slot: number): number | undefined {
    return this.#statuses[slot];
  }
  matches(slot: number, fp: Uint8Array): boolean {
    const kept = this.#fps.subarray(slot * FP_BYTES, (slot + 1) * FP_BYTES);
    return Buffer.compare(kept, fp) === 0;
  }

  set(pid: number, fp: Uint8Array, status: number, at: number): void {
    let slot = this.slot(pid);
    if (slot === undefined) {
      slot = this.#size++;
      this.#grow(this.#size);
      this.#pids[slot] = pid;
      this.#place(slot);
    }
    this.#fps.set(fp, slot * FP_BYTES);
    this.#statuses[slot] = status;
    this.#ats[slot] = at;
  }

  /** Drops the entries whose time `expired` says; whether any was. */
  drop(expired: (at: number) => boolean): boolean {
    let dropped = false;
    for (let slot = 0; slot < this.#size; slot++) {
      if (!Number.isNaN(this.#pids[slot]) && expired(this.#ats[slot] ?? 0)) {
        // Its index cell stays taken (a NaN pid matches none), so lookups probe past it.
        this.#pids[slot] = Number.NaN;
        dropped = true;
      }
    }
    return dropped;
  }

  clear(): void {
    this.#size = 0;
    this.#index.fill(0);
  }

  /** Reads the entry lines of `text` from `from`; false at the first that is not valid. */
  load(text: string, from: number): boolean {
    let start = from;
    while (start > 0 && start < text.length) {
      const end = text.indexOf("\n", start);
      const line = text.slice(start, end === -1 ? text.length : end);
      start = end === -1 ? text.length : end + 1;
      const match = ENTRY.exec(line);
      if (!match) return false;
      const [, pid, fp, status, at] = match.map(String);
      const fingerprint = Buffer.from(fp as string, "base64url");
      if (fingerprint.length !== FP_BYTES) return false;
      if (!Number.isSafeInteger(Number(pid)) || !Number.isSafeInteger(Number(at))) return false;
      if (this.slot(Number(pid)) !== undefined) return false;
      this.set(Number(pid), fingerprint, Number(status), Number(at));
    }
    return true;
  }

  /** The file's text after `head`, in pieces of about 64 KiB: never one string. */
  *lines(head: string): Generator<string> {
    let piece = head;
    for (let slot = 0; slot < this.#size; slot++) {
      const pid = this.#pids[slot];
      if (pid === undefined || Number.isNaN(pid)) continue;
      const fp = Buffer.from(this.#fps.buffer, slot * FP_BYTES, FP_BYTES).toString("base64url");
      piece += `${pid} ${fp} ${this.#statuses[slot]} ${this.#ats[slot]}\n`;
      if (piece.length >= 64 * 1024) {
        yield piece;
        piece = "";
      }
    }
    yield piece;
  }

  /** Where the index starts looking for `pid`: the top bits of its hash. */
  #home(pid: number): number {
    return hash(pid) >>> (Math.clz32(this.#index.length) + 1);
  }

  /** Puts `slot` (its pid set) in the index. */
  #place(slot: number): void {
    const mask = this.#index.length - 1;
    let at = this.#home(this.#pids[slot] ?? 0);
    while (this.#index[at] !== 0) at = (at + 1) & mask;
    this.#index[at] = slot + 1;
  }

  /** Room for `size` entries, doubling; the index is built again at each doubling. */
  #grow(size: number): void {
    if (size <= this.#statuses.length) return;
    const capacity = Math.max(1024, this.#statuses.length * 2);
    this.#pids = copied(this.#pids, new Float64Array(capacity));
    this.#fps = copied(this.#fps, new Uint8Array(capacity * FP_BYTES));
    this.#statuses = copied(this.#statuses, new Uint8Array(capacity));
    this.#ats = copied(this.#ats, new Float64Array(capacity));
    this.#index = new Int32Array(capacity * 2);
    for (let slot = 0; slot < size - 1; slot++) this.#place(slot);
  }
}

function copied<T extends Float64Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/**
 * Random odd multipliers, this process's own: pids come from the backend, and a fixed hash would
 * let one that chose them pile them into one run of the index (each lookup then walks it all).
 */
const [MIX_LOW, MIX_HIGH] = [randomBytes(4).readUInt32LE() | 1, randomBytes(4).readUInt32LE() | 1];

/** A pid's 32-bit hash (multiply-shift over both halves of a safe integer; top bits are best). */
function hash(pid: number): number {
  const high = Math.floor(pid / 2 ** 32);
  return Math.imul((Math.imul(pid >>> 0, MIX_LOW) + high) | 0, MIX_HIGH) >>> 0;
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
