/**
 * The reason codes of a failed request, kept apart from failure.ts so that the report's schema
 * (and so --help, which loads it) does not load got.
 */
/**
 * Why a request failed, as the report's `reason`; besides these, `http_<status>` for an answer
 * that is not 2xx. The report's schema (and report.schema.json) lists them from here.
 */
export const REQUEST_REASONS = [
  "timeout",
  "unreachable",
  "invalid_response",
  "body_too_large",
  "redirect_refused",
  "unconfirmed_write",
  "aborted",
] as const;
export type RequestReason = (typeof REQUEST_REASONS)[number] | `http_${number}`;
