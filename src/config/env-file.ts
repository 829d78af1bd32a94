/**
 * What the CLI reads from the process's surroundings before settings are resolved: the working
 * directory and the env file (`--env-file`, else `.env` when there). The library's resolver takes
 * both as values and loads neither this module nor dotenv.
 */
import { resolve } from "node:path";
import dotenv from "dotenv";
import { LIMITS } from "../defaults.ts";
import { ConfigError } from "../errors.ts";
import { type FileProblem, readBounded } from "../host/read-file.ts";

/**
 * The working directory from `cwd()` (such as `() => process.cwd()`, which throws when the
 * directory was removed: a ConfigError here).
 */
export function workingDirectory(cwd: () => string): string {
  try {
    return cwd();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigError(
      `The working directory no longer exists (${code}): run from an existing directory.`,
      { cause: error },
    );
  }
}

/**
 * The env file, read by us and handed to `dotenv.parse`: `dotenv.config` would let `DOTENV_*`
 * variables choose the file, its encoding and debug output on stdout. No `--env-file` and no
 * `.env` is no variable; a named file that cannot be read is a ConfigError.
 */
export function readEnvFile(path: string | undefined, cwd: string): Record<string, string> {
  const read = readBounded(resolve(cwd, path ?? ".env"), LIMITS.envFileBytes);
  if (typeof read === "string") return dotenv.parse(read);
  if (path === undefined && read.problem === "ENOENT") return {};
  const what = `--env-file ${path ?? ".env"}`;
  throw new ConfigError(
    `${what}: ${envFileProblem(read.problem)}; fix the path or leave the flag out.`,
  );
}

function envFileProblem(problem: FileProblem): string {
  if (problem === "ENOENT") return "no such file";
  if (problem === "not_regular") return "not a regular file (a directory, device or pipe)";
  if (problem === "too_large") return `larger than ${LIMITS.envFileBytes / 1024 / 1024} MiB`;
  return `cannot be read (${problem})`;
}
