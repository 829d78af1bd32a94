/**
 * The benchmark's figures (one value per run: the median and the range) and the table that says by
 * how much each target of issue 9 is met or missed.
 */

/** Every row the table prints, in order; a test checks that each one is there. */
export const ROWS = {
  eff1: "efficiency, concurrency 1",
  eff1Client: "  minimal client, concurrency 1",
  eff8: "efficiency, concurrency 8",
  eff8Client: "  minimal client, concurrency 8",
  eff32: "efficiency, concurrency 32",
  eff32Client: "  minimal client, concurrency 32",
  eff128: "efficiency, concurrency 128",
  eff128Client: "  minimal client, concurrency 128",
  cpuTool: "CPU per patient, ml-scheduler",
  cpuClient: "CPU per patient, minimal client",
  cpuRatio: "CPU ratio, ml-scheduler / minimal client",
  ceilingTool: "ceiling on one core, ml-scheduler",
  ceilingClient: "ceiling on one core, minimal client",
  rssCapped: "peak RSS under the 128 MB heap cap",
  rssUncapped: "peak RSS uncapped",
  cpuCapped: "CPU per patient under the cap",
  cpuUncapped: "CPU per patient uncapped",
  cpuCapRatio: "CPU per patient, capped / uncapped",
  login: "login's own time",
  startInstalled: "start to first patient, installed package",
  startCheckout: "start to first patient, checkout",
  helpInstalled: "--help, installed package",
  helpCheckout: "--help, checkout",
  nodeEmpty: "node -e 0",
  helpRatio: "--help / node -e 0, installed package",
  helpRatioCheckout: "--help / node -e 0, checkout",
  pacingRatio: "auto / best fixed concurrency, the worst shape",
  pacing429: "auto's requests shed (429, 503), the worst shape",
  reuseRequestsPlain: "steady sweep without reuse: requests",
  reuseRequests: "steady sweep with reuse: requests",
  reusePredictions: "steady sweep with reuse: predictions made",
  reuseWallPlain: "steady sweep without reuse: spawn to exit",
  reuseWall: "steady sweep with reuse: spawn to exit",
  reuseRatio: "steady sweep spawn to exit, with / without reuse",
  reuseSweepPlain: "steady sweep without reuse: first request to exit",
  reuseSweep: "steady sweep with reuse: first request to exit",
  reuseSweepRatio: "steady sweep first request to exit, with / without reuse",
  reuseFile: "predictions file at the memory runs' size",
  reuseRss: "peak RSS with reuse under the 128 MB heap cap",
} as const;

export type RowKey = keyof typeof ROWS;

/** A bound a figure must keep: at least or at most `limit`, with an optional stricter aim. */
export interface Target {
  op: ">=" | "<=";
  limit: number;
  aim?: number;
}

export interface Row {
  key: RowKey;
  /** One value per run; empty when the section did not run. */
  values: number[];
  unit: string;
  /** Decimals shown. */
  digits: number;
  target?: Target | undefined;
  /** A target without a number (the CPU ratio): shown, never judged. */
  aimOnly?: string | undefined;
  /** Why there is no value (a section not run, no GNU time). */
  missing?: string | undefined;
}

export function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Pairwise ratios of runs made side by side (run i of one against run i of the other). */
export function ratios(top: number[], bottom: number[]): number[] {
  return top.flatMap((t, i) => {
    const b = bottom[i];
    return b === undefined || b === 0 ? [] : [t / b];
  });
}

function fmt(value: number, digits: number): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function targetText(row: Row): string {
  if (row.aimOnly) return row.aimOnly;
  const t = row.target;
  if (!t) return "";
  const sign = t.op === ">=" ? "≥" : "≤";
  const aim = t.aim === undefined ? "" : ` (aim ${fmt(t.aim, row.digits)})`;
  return `${sign} ${fmt(t.limit, row.digits)}${row.unit ? ` ${row.unit}` : ""}${aim}`;
}

/** "met by 0.03 (4%)" or "MISSED by 0.14 (16%)": the distance to the limit, and to the aim. */
export function verdict(value: number, target: Target, unit: string, digits: number): string {
  const judge = (limit: number) => {
    const margin = target.op === ">=" ? value - limit : limit - value;
    const share = limit === 0 ? "" : ` (${Math.round((Math.abs(margin) / limit) * 100)}%)`;
    const amount = `${fmt(Math.abs(margin), digits)}${unit ? ` ${unit}` : ""}${share}`;
    return margin >= 0 ? `met by ${amount}` : `MISSED by ${amount}`;
  };
  const main = judge(target.limit);
  return target.aim === undefined ? main : `${main}; aim: ${judge(target.aim)}`;
}

/** The table: one line per row, columns padded. */
export function formatTable(rows: Row[], runsLabel: string): string {
  const header = ["measure", "median", `range (${runsLabel})`, "target", "verdict"];
  const lines = rows.map((row) => {
    const label = ROWS[row.key];
    if (row.values.length === 0)
      return [label, "-", "-", targetText(row), row.missing ?? "not run"];
    const unit = row.unit ? ` ${row.unit}` : "";
    const mid = median(row.values);
    const range = `${fmt(Math.min(...row.values), row.digits)} - ${fmt(Math.max(...row.values), row.digits)}`;
    const judged = row.target ? verdict(mid, row.target, row.unit, row.digits) : "";
    return [label, `${fmt(mid, row.digits)}${unit}`, range, targetText(row), judged];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const pad = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [pad(header), pad(widths.map((w) => "-".repeat(w))), ...lines.map(pad)].join("\n");
}
