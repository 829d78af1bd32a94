/**
 * `ml-scheduler check`: configuration, both services, the login and the patient list, with the
 * exit code a sweep would give; no prediction, no write, no lock.
 */
import { runCheck } from "../../core/check.ts";
import { formatCheckHuman, formatCheckJson } from "../../output/report.ts";
import type { CommandContext, CommandResult } from "../lifecycle.ts";

export async function checkCommand(ctx: CommandContext): Promise<CommandResult> {
  // A signal stops a check at once: it has no work worth a grace.
  const signal = AbortSignal.any([ctx.signal, ctx.stop]);
  const report = await runCheck(ctx.settings.config, {
    signal,
    onEvent: ctx.onEvent,
    schedulerVersion: ctx.schedulerVersion,
  });
  for (const step of report.steps) if (step.warning) ctx.warn(step.warning);
  return {
    exitCode: report.exitCode,
    error: report.error,
    json: () => [formatCheckJson(report)],
    human: () => formatCheckHuman(report),
  };
}
