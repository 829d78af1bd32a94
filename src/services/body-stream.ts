/**
 * A GET whose body is read as it arrives, for the patient list: got's promise API would hold its
 * bytes, their concatenation and their text (twice its size when a name is not ASCII) at once.
 * It goes through the service's got instance (its rate cap, redirect rule, timeout and retries).
 */
import { StringDecoder } from "node:string_decoder";
import { HTTPError, type Request, type RequestError } from "got";
import { bodyTooLarge, RequestFailure, toFailure } from "./failure.ts";
import { recorder, type ServiceClient } from "./http.ts";
import { redirectRefused } from "./redirect.ts";

/** Where one attempt's body goes, piece by piece. */
export interface TextSink {
  /** The next piece of the text. A throw stops the download, and the request rejects with it. */
  write(text: string): void;
  /** The text has ended. A throw rejects the request with it. */
  end(): void;
}

/** How a streamed request ended: its final status (the body went to the sink when 2xx). */
export interface Streamed {
  status: number;
  route: string;
  /** Attempts made, the first included. */
  attempts: number;
}

export interface StreamOptions {
  headers?: Record<string, string> | undefined;
  /** A longer body fails the request (`body_too_large`). */
  maxBytes: number;
  /**
   * The sink of an attempt that answered 2xx. A retry after the body broke off (a reset, a
   * timeout) asks for a fresh one: whatever the last one was given is void.
   */
  open(status: number): TextSink;
}

/**
 * GETs `path` and hands a 2xx body to `open()`'s sink as it arrives; any other final status is
 * answered without its body. Retries are got's, as for every request (network errors, timeouts,
 * 408, 429, 5xx); throws RequestFailure like `send`, and records the request once like it.
 */
export async function streamText(
  client: ServiceClient,
  path: string,
  options: StreamOptions,
): Promise<Streamed> {
  const route = `GET /${path}`;
  const record = recorder(client, route);
  try {
    const answer = await download(client, path, route, options);
    record(answer.status, answer.attempts, null);
    return answer;
  } catch (error) {
    // The service answered; what the sink made of the body is not the request's failure.
    if (error instanceof SinkFailure) {
      record(error.answer.status, error.answer.attempts, null);
      throw error.cause;
    }
    if (error instanceof RequestFailure) record(error.status ?? null, error.attempts, error.reason);
    throw error;
  }
}

/** A throw from the sink, with the answer whose body it was reading. */
class SinkFailure extends Error {
  readonly answer: Streamed;
  constructor(cause: unknown, answer: Streamed) {
    super("the sink threw", { cause });
    this.answer = answer;
  }
}

function download(
  client: ServiceClient,
  path: string,
  route: string,
  options: StreamOptions,
): Promise<Streamed> {
  const { signal } = client;
  const { maxBytes } = options;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (stream: Request, outcome: Streamed | Error) => {
      if (settled) return;
      settled = true;
      // Nothing more is read: a refused redirect's or an oversized body's rest stays unread.
      stream.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    /** An attempt's answer, for an adaptive limiter: got runs afterResponse for promises only. */
    const answered = (attemptStart: number, status: number) => {
      if (client.onAttempt === undefined || signal?.aborted) return;
      const durationMs = performance.now() - attemptStart;
      client.onAttempt({ service: client.service, route, status, durationMs, reason: null });
    };

    const follow = (stream: Request) => {
      const attemptStart = performance.now();
      const decoder = new StringDecoder("utf8");
      let sink: TextSink | undefined;
      let bytes = 0;
      const attempts = () => stream.retryCount + 1;
      const answer = (): Streamed => ({
        status: stream.response?.statusCode ?? 0,
        route,
        attempts: attempts(),
      });
      const fail = (failure: RequestFailure) => {
        failure.attempts = attempts();
        settle(stream, failure);
      };
      const tooLarge = () => fail(bodyTooLarge(route, maxBytes));

      // got destroys this attempt quietly and hands over the next one (after its backoff).
      stream.once("retry", (_count: number, error: RequestError, next: () => Request) => {
        if (error instanceof HTTPError) answered(attemptStart, error.response.statusCode);
        follow(next());
      });
      stream.on("response", (response) => {
        const { statusCode, headers } = response;
        answered(attemptStart, statusCode);
        // A 3xx that comes back as an answer is one the redirect rule refused to follow.
        if (headers.location !== undefined && statusCode >= 300 && statusCode < 400) {
          return fail(redirectRefused(route, statusCode, headers.location, response.url));
        }
        if (statusCode < 200 || statusCode > 299) {
          return settle(stream, answer());
        }
        if (Number(headers["content-length"] ?? 0) > maxBytes) return tooLarge();
        sink = options.open(statusCode);
      });
      stream.on("data", (chunk: Buffer) => {
        if (settled || sink === undefined) return;
        bytes += chunk.length;
        if (bytes > maxBytes) return tooLarge();
        try {
          sink.write(decoder.write(chunk));
        } catch (error) {
          settle(stream, new SinkFailure(error, answer()));
        }
      });
      stream.on("end", () => {
        if (settled || sink === undefined) return;
        try {
          sink.write(decoder.end());
          sink.end();
        } catch (error) {
          return settle(stream, new SinkFailure(error, answer()));
        }
        settle(stream, answer());
      });
      stream.on("error", (error: Error) => {
        if (settled) return;
        // With got's HTTP errors on, a status it retries comes back here once it no longer does:
        // that final status is the answer, as `send` would have it.
        if (error instanceof HTTPError) {
          answered(attemptStart, error.response.statusCode);
          return settle(stream, { ...answer(), status: error.response.statusCode });
        }
        let failure: RequestFailure;
        try {
          failure = toFailure(error, route, signal);
        } catch (bug) {
          return settle(stream, bug as Error);
        }
        fail(failure);
      });
    };

    follow(
      client.got.stream(path, {
        // A stream answers a retried status only as an error: got retries errors, not answers.
        throwHttpErrors: true,
        // The one large answer: compression is worth asking for (the instance's default is off).
        decompress: true,
        ...(options.headers === undefined ? {} : { headers: options.headers }),
        ...(signal === undefined ? {} : { signal }),
        ...(client.watched ? { context: { route } } : {}),
      }),
    );
  });
}
