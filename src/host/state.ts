/**
 * `--state-dir <dir>`: what one run leaves the next. One small versioned JSON file per concern:
 * `token-<key>.json` (the login's token) and `offset-<key>.json` (where the next run starts the
 * patient list), keyed by a hash of the backend's origin (and the username); the incremental
 * sweeps' remembered predictions (host/predictions.ts) live beside them. Best effort throughout: a directory or file
 * that cannot be read or written is one warning and the run goes on as without it. A file is
 * trusted only if it is a regular file of this user's, closed to group and others (0600), and
 * within a size bound; it is written to a fresh 0600 file and renamed into place, so a reader
 * never sees half of it. Warnings name files and error codes, never their content.
 */
import { createHash } from "node:crypto";
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { NotRegularFile, writeFileAtomic } from "./atomic-write.ts";
import { readBounded } from "./read-file.ts";

/** A state file holds a few values; the predictions file passes a bound of its own. */
const MAX_BYTES = 64 * 1024;
/** The permission bits of group and others: a state file must have none. */
const OPEN_TO_OTHERS = 0o077;

export interface StateDir {
  readonly path: string;
  /** The file's value, or undefined when it is absent or not to be trusted (with a warning). */
  read<T>(name: string, schema: z.ZodType<T>, maxBytes?: number): T | undefined;
  /** The file's text, or undefined when it is absent or not to be trusted (with a warning). */
  readText(name: string, maxBytes: number): string | undefined;
  /** Replaces the file atomically with this JSON, mode 0600; false (with a warning) when it cannot. */
  write(name: string, value: unknown): Promise<boolean>;
  /**
   * Replaces the file atomically with this text, written piece by piece (a large file is never
   * one string), mode 0600; false (with a warning) when it cannot.
   */
  writeText(name: string, pieces: Iterable<string>): Promise<boolean>;
}

type Warn = (message: string) => void;

/**
 * The state directory, created 0700 if missing; undefined (with a warning) when it cannot be
 * created or is not a directory this user can use: nothing is kept this run.
 */
export function openStateDir(path: string, warn: Warn): StateDir | undefined {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    const why = isOtherThanDirectory(path) ? "ENOTDIR" : errno(error);
    warn(
      `--state-dir ${path}: cannot use it as a directory (${why}): this run keeps nothing; check the path and its permissions.`,
    );
    return undefined;
  }
  warnIfOpenToOthers(path, warn);
  return {
    path,
    read: (name, schema, maxBytes = MAX_BYTES) => {
      const file = join(path, name);
      const text = readOwnFile(file, maxBytes, warn);
      if (text === undefined) return undefined;
      // Neither the parser's message nor zod's is shown: both may quote the content.
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = undefined;
      }
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        warn(`State file ${file} is not one this version writes (version 1): ignored.`);
        return undefined;
      }
      return parsed.data;
    },
    readText: (name, maxBytes) => readOwnFile(join(path, name), maxBytes, warn),
    write: (name, value) => writeText(name, [`${JSON.stringify(value)}\n`]),
    writeText,
  };
  async function writeText(name: string, pieces: Iterable<string>): Promise<boolean> {
    const file = join(path, name);
    try {
      await writeFileAtomic(file, pieces, { mode: 0o600 });
      return true;
    } catch (error) {
      const why =
        error instanceof NotRegularFile
          ? "is not a regular file, so it is not replaced"
          : `cannot be written (${errno(error)})`;
      warn(`State file ${file} ${why}: the next run goes without.`);
      return false;
    }
  }
}

/**
 * A state file's text when it can be trusted: a regular file of this user's, closed to group and
 * others, within the bound, not a symlink; all checked on the descriptor that is read.
 */
function readOwnFile(file: string, maxBytes: number, warn: Warn): string | undefined {
  const read = readBounded(file, maxBytes, {
    noFollow: true,
    check: (stats) => {
      if (stats.uid !== process.getuid?.()) return "belongs to another user";
      if ((stats.mode & OPEN_TO_OTHERS) === 0) return undefined;
      const mode = (stats.mode & 0o777).toString(8).padStart(4, "0");
      return `is open to group or others (mode ${mode}; state files are 0600)`;
    },
  });
  if (typeof read === "string") return read;
  const { problem } = read;
  if (problem === "ENOENT") return undefined; // the first run, or a run that kept nothing
  const why =
    problem === "ELOOP"
      ? "is a symbolic link"
      : problem === "not_regular"
        ? "is not a regular file"
        : problem === "too_large"
          ? `is larger than ${maxBytes} bytes`
          : /^E[A-Z]+$/.test(problem)
            ? `cannot be read (${problem})`
            : problem;
  warn(`State file ${file} ${why}: ignored.`);
  return undefined;
}

/** A file-name key for values that must not mix: the same inputs always give the same name. */
export function keyOf(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 32);
}

const TokenFile = z.object({
  version: z.literal(1),
  origin: z.string(),
  username: z.string(),
  // It goes into an Authorization header: what config demands of BACKEND_TOKEN.
  token: z.string().regex(/^[\x21-\x7e]+$/),
  savedAt: z.string(),
});

export interface TokenCache {
  /** The token a login gave this user at this origin, if kept. */
  read(): string | undefined;
  /** Keeps a fresh token; a failure is a warning. */
  write(token: string): Promise<void>;
}

/**
 * The token cache of one backend origin and one username: a token is never sent to another
 * server nor used for another user, as the file's name and its content both say whose it is.
 */
export function tokenCache(state: StateDir, server: string, username: string): TokenCache {
  const origin = new URL(server).origin;
  const name = `token-${keyOf(origin, username)}.json`;
  return {
    read() {
      const kept = state.read(name, TokenFile);
      return kept?.origin === origin && kept.username === username ? kept.token : undefined;
    },
    async write(token) {
      await state.write(name, {
        version: 1,
        origin,
        username,
        token,
        savedAt: new Date().toISOString(),
      } satisfies z.infer<typeof TokenFile>);
    },
  };
}

const OffsetFile = z.object({
  version: z.literal(1),
  origin: z.string(),
  offset: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});

export interface OffsetStore {
  read(): number | undefined;
  write(offset: number): Promise<void>;
}

/** Where the next run starts the patient list of the backend at this origin. */
export function offsetStore(state: StateDir, server: string): OffsetStore {
  const origin = new URL(server).origin;
  const name = `offset-${keyOf(origin)}.json`;
  return {
    read() {
      const kept = state.read(name, OffsetFile);
      return kept?.origin === origin ? kept.offset : undefined;
    },
    async write(offset) {
      await state.write(name, { version: 1, origin, offset } satisfies z.infer<typeof OffsetFile>);
    },
  };
}

/** The write bit of others: a directory with it lets anyone on the host add or swap files. */
const WRITABLE_BY_OTHERS = 0o002;

/**
 * One warning when others (not the owner, not the group) may write in the directory. It is used
 * still, as each file in it is checked before it is trusted; group-writable is fine (Kubernetes
 * mounts a volume under `fsGroup` group-writable by design).
 */
function warnIfOpenToOthers(path: string, warn: Warn): void {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined || (stats.mode & WRITABLE_BY_OTHERS) === 0) return;
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, "0");
  warn(
    `--state-dir ${path} is writable by others (mode ${mode}): anyone on this host can add or replace files there. It is used (each file is checked before it is trusted); make it 0700, or 0770 for a shared group.`,
  );
}

/** Whether something that is not a directory is in the way (mkdir says only EEXIST). */
function isOtherThanDirectory(path: string): boolean {
  try {
    return !statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function errno(error: unknown): string {
  return (error instanceof Error && (error as NodeJS.ErrnoException).code) || "unknown error";
}
