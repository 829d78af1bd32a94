/**
 * Every default number in one place: config applies them, --help shows them. Kept free of
 * imports so the CLI can show help without loading the sweep's dependencies.
 */
export const DEFAULTS = {
  concurrency: 4,
  /** The most patients in flight `--concurrency auto` may reach when no `auto:<max>` says. */
  adaptiveMaxConcurrency: 64,
  requestTimeoutMs: 10_000,
  retries: 2,
  /** First retry delay; it doubles each retry, with jitter. */
  retryDelayMs: 1_000,
  /** A longer Retry-After fails the request at once rather than blocking the sweep. */
  maxRetryAfterMs: 30_000,
  breaker: 10,
  /**
   * `--max-list-mib`: a longer patient list is a contract break. 64 MiB is about 400,000 patients
   * of about 157 bytes each (the contract's example record with a six-digit pid).
   */
  maxListMib: 64,
  graceSeconds: 10,
  /** How often the holder of `--lock` refreshes the file's mtime to show it is alive. */
  lockRefreshMs: 5_000,
  /** A lock (or takeover guard) not refreshed for this long is stale and is taken over. */
  lockStaleMs: 30_000,
  /**
   * With --deadline, the process ends by deadline + grace + this: what the notifiers, the report
   * and the drain of stdout and stderr are given after the grace.
   */
  exitMarginSeconds: 1.5,
  /**
   * Each attempt of a Pushgateway push or a ping; one retry half a second later, so a stalled
   * side channel costs the run about 6.5 s.
   */
  notifyTimeoutMs: 3_000,
  /**
   * `--reuse-for`: a remembered prediction is reused for a random half to all of this, so a new
   * model behind the same URL takes effect within it.
   */
  reuseForMs: 3_600_000,
} as const;

/** Upper bounds of inputs: past them a value is refused (exit 2 or 3), never silently misread. */
export const LIMITS = {
  concurrency: 1_024,
  /** `--max-rps`: a cap above this is no cap a service would notice. */
  maxRps: 10_000,
  /** `--max-rps`: one request every 1,000 s at the slowest; slower is a mistake, not a cap. */
  minRps: 0.001,
  /** `--retries`: the backoff of the 22nd retry would pass Node's timer limit; 10 is plenty. */
  retries: 10,
  /** Node's timers hold at most 2^31-1 ms; a longer one fires after 1 ms instead. */
  timerMs: 2 ** 31 - 1,
  /**
   * The longest duration in seconds whose timer still fits (about 24.8 days); also the most that
   * `--deadline` + `--grace` + DEFAULTS.exitMarginSeconds may add up to (the notifiers' timers).
   */
  timerSeconds: 2_147_483,
  /** A `*_FILE` secret holds one value. */
  secretFileBytes: 64 * 1024,
  envFileBytes: 1024 * 1024,
  /** `--max-list-mib`: V8's longest string is just under 512 MiB. */
  maxListMib: 500,
  /**
   * More invalid patient records than this (or than half the list) is a contract break; the list
   * is read no further than the one past it (8 million invalid records would take 262 MB).
   */
  invalidRecords: 1_000,
  /**
   * One record of the patient list, as text (spaces before it included): a longer one is an
   * invalid record, never parsed. The list's cap bounds the whole list, not one element: one
   * record holding a 60 MiB string, or 30 million numbers, fills a 128 MiB heap once parsed. A
   * real record is about 160 characters; 64 Ki of them (64 KiB of ASCII) leave room for any.
   */
  recordChars: 64 * 1024,
  /**
   * Arrays and objects open at once in one record, itself included: a deeper one is an invalid
   * record, never parsed (a real one has 2: the record and its status).
   */
  recordDepth: 32,
  /**
   * A list body that is not a JSON array is judged by at most this much of its start (a short one
   * is parsed to say what it is), never kept whole.
   */
  notArrayChars: 1024,
  /** `--reuse-for` and `--max-vitals-age`: 30 days; past that, neither means anything. */
  ageSeconds: 30 * 86_400,
  /** Shards of one sweep (`--shard i/n`, `--shards n`): each is a pod logging in to the backend. */
  shards: 1_024,
} as const;
