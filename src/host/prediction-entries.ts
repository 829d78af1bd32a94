/**
 * The predictions file's entries in memory (see predictions.ts): pid, fingerprint, status id and
 * time, read from and written as lines `<pid> <fingerprint> <status id> <epoch ms>`.
 */
import { randomBytes } from "node:crypto";

/** Bytes of the HMAC kept: 128 bits. */
export const FP_BYTES = 16;
const ENTRY = /^([1-9]\d{0,15}) ([A-Za-z0-9_-]{22}) ([19]) (\d{1,16})$/;

/**
 * The entries, compact: 100,000 of them as arrays of a pid, a string and two numbers would take
 * ~18 MB of a capped heap, and a Map from pid to slot alone 3.7 MB of it, walked by every
 * collection. Here typed arrays, outside the heap: the slots' columns, and an index from pid to
 * slot (open addressing, linear probing) twice their size.
 */
export class Entries {
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
