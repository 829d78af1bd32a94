/**
 * `ml-scheduler [sweep]`: one prediction sweep under the lifecycle's signals and lock.
 */
import { runSweep } from "../../core/sweep.ts";
import { formatHuman, formatJson } from "../../reporters/report.ts";
import type { CommandContext, CommandResult } from "../lifecycle.ts";

export async function sweepCommand(ctx: CommandContext): Promise<CommandResult> {
  const report = await runSweep(ctx.settings.config, {
    signal: ctx.signal,
    stop: ctx.stop,
    onEvent: ctx.onEvent,
    runId: ctx.runId,
  });
  return {
    exitCode: report.exitCode,
    error: report.error,
    report,
    json: () => formatJson(report),
    human: () => formatHuman(report),
  };
}
