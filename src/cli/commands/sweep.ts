/**
 * `ml-scheduler [sweep]`: one prediction sweep under the lifecycle's signals and lock, with what
 * `--state-dir` keeps between runs: the login's token, where the patient list starts and the
 * predictions made (reused within --reuse-for). A dry run reads them but changes nothing there,
 * save a new token from a login.
 */
import { randomInt } from "node:crypto";
import { nextOffset } from "../../core/order.ts";
import { runSweep } from "../../core/sweep.ts";
import { DEFAULTS } from "../../defaults.ts";
import { predictionStore } from "../../host/predictions.ts";
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
  const memory =
    state && options.reuseFor > 0
      ? await predictionStore(
          state,
          {
            patientServer: config.patientServer,
            mlServer: config.mlServer,
            shard: config.shard,
            reuseForMs: options.reuseFor,
            full: options.full === true,
            dryRun: config.dryRun,
            maxBytes: config.maxListBytes ?? DEFAULTS.maxListMib * 1024 * 1024,
          },
          ctx.warn,
        )
      : undefined;
  const saving: Promise<void>[] = [];
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
      // Kept as it comes (a run cut short still keeps it), and waited for before the run ends.
      onToken: cache && ((fresh) => void saving.push(cache.write(fresh))),
      runId: ctx.runId,
      memory,
      schedulerVersion: ctx.schedulerVersion,
    },
  );
  // A dry run moves no offset: the next real run starts where this one would have.
  const next = config.dryRun ? undefined : nextOffset(report);
  if (offsets && next !== undefined) saving.push(offsets.write(next));
  await Promise.all([...saving, memory?.save()]);
  return {
    exitCode: report.exitCode,
    error: report.error,
    report,
    json: () => jsonPieces(report),
    human: () => formatHuman(report),
  };
}
