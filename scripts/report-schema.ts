// `npm run report-schema`: writes report.schema.json, the JSON Schema of the `--json` report, from
// its zod schema (src/core/report.ts), then formats it as Biome would. Run it after any change to
// the report; a test fails while the committed file differs from a fresh generation.
import { writeFileSync } from "node:fs";
import { z } from "zod";
import { Report } from "../src/core/report.ts";

/** The file's path, next to package.json. */
export const SCHEMA_FILE = new URL("../report.schema.json", import.meta.url);

/** The report's JSON Schema (draft 2020-12) as the file holds it. */
export function reportJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(Report, { target: "draft-2020-12", io: "output" });
}

if (import.meta.main) {
  writeFileSync(SCHEMA_FILE, `${JSON.stringify(reportJsonSchema(), null, 2)}\n`);
}
