/**
 * Every default number in one place: config applies them, --help shows them. Kept free of
 * imports so the CLI can show help without loading the sweep's dependencies.
 */
export const DEFAULTS = {
  concurrency: 4,
  requestTimeoutMs: 10_000,
  retries: 2,
  /** First retry delay; it doubles each retry, with jitter. */
  retryDelayMs: 1_000,
  /** A longer Retry-After fails the request at once rather than blocking the sweep. */
  maxRetryAfterMs: 30_000,
  breaker: 10,
  graceSeconds: 10,
  /** How often the holder of `--lock` refreshes the file's mtime to show it is alive. */
  lockRefreshMs: 5_000,
  /** A lock (or takeover guard) not refreshed for this long is stale and is taken over. */
  lockStaleMs: 30_000,
} as const;
