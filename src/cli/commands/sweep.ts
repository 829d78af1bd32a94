/**
 * `ml-scheduler [sweep]`: one prediction sweep under the lifecycle's signals and lock, with what
 * `--state-dir` keeps between runs: the login's token and where the patient list starts.
 */
import { randomInt } from "node:crypto";
import { nextOffset, runSweep } from "../../core/sweep.ts";
import { offsetStore, openStateDir, tokenCache } from "../../host/state.ts";
import { formatHuman, jsonPieces } from "../../output/report.ts";
import type { CommandContext, CommandResult } from "../lifecycle.ts";

export async function sweepCommand(ctx: CommandContext): Promise<CommandResult> {
  const { config, options } = ctx.settings;
  const dir = options.stateDir;
  const state = typeof dir === "string" ? openStateDir(dir, ctx.warn) : undefined;
  const { token, username } = config.credentials;
  // A configured BACKEND_TOKEN wins: the cache is then neither read nor written.
  const cache =
    state && token === undefined && username !== undefined
      ? tokenCache(state, config.patientServer, username)
      : undefined;
  // --patient names its few patients: they keep the backend's order and leave the offset alone.
  const rotated = config.patients === undefined;
  const offsets = state && rotated ? offsetStore(state, config.patientServer) : undefined;
  const report = await runSweep(
    {
      ...config,
      credentials: { ...config.credentials, token: token ?? cache?.read() },
      // Without a kept offset, a random one: runs cut short still take turns, by chance.
      offset: rotated ? (offsets?.read() ?? randomInt(2 ** 32)) : undefined,
    },
    {
      signal: ctx.signal,
      stop: ctx.stop,
      onEvent: ctx.onEvent,
      onToken: cache?.write,
      runId: ctx.runId,
      schedulerVersion: ctx.schedulerVersion,
    },
  );
  const next = nextOffset(report);
  if (offsets && next !== undefined) offsets.write(next);
  return {
    exitCode: report.exitCode,
    error: report.error,
    report,
    json: () => jsonPieces(report),
    human: () => formatHuman(report),
  };
}
