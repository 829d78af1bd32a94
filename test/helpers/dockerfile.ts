/**
 * The Dockerfile read as its stages: the fast suite checks their fields (test/deploy-files.test.ts),
 * the slow one replays them (test/slow/dockerfile.test.ts).
 */
import { readFileSync } from "node:fs";

export interface Instruction {
  op: string;
  args: string;
}
export interface Stage {
  name: string | undefined;
  instructions: Instruction[];
}

/** The Dockerfile's stages and their instructions, continuation lines joined, comments dropped. */
export function dockerStages(): Stage[] {
  const lines = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8")
    .split("\n")
    .filter((l) => !l.trim().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = "", args = ""] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (op === "FROM") stages.push({ name: /\bAS (\S+)$/i.exec(args)?.[1], instructions: [] });
    stages.at(-1)?.instructions.push({ op, args });
  }
  return stages;
}
