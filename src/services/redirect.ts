/**
 * Which redirects a service's requests follow (the same origin and method only), and the failure
 * of one that was refused.
 */

import type { PlainResponse } from "got";
import { RequestFailure } from "./failure.ts";

/**
 * got's redirect rule: follow only to the service's own origin (scheme, host and port) and only
 * when the method stays: 307/308 on any method, any 3xx on a GET. got would forward a 307's body
 * (the password) to any host and turn a 303 or a POST's 301/302 into a GET. Refused redirects
 * resolve as the 3xx answer itself, which `send` turns into `redirect_refused`, never retried.
 */
export function sameOriginRedirect(origin: string) {
  return (response: PlainResponse): boolean => {
    const location = response.headers.location;
    if (location === undefined || redirectTarget(location, response.url)?.origin !== origin) {
      return false;
    }
    const { statusCode } = response;
    return statusCode === 307 || statusCode === 308 || response.request.options.method === "GET";
  };
}

/** Where a Location points, resolved the way got resolves it (the header's bytes read as UTF-8). */
function redirectTarget(location: string, from: string): URL | null {
  return URL.parse(Buffer.from(location, "binary").toString(), from);
}

/** A 3xx that came back as an answer: one the redirect rule refused to follow. */
export function redirectRefused(
  route: string,
  status: number,
  location: string,
  from: string,
): RequestFailure {
  const origin = redirectTarget(location, from)?.origin ?? "an unparsable location";
  return new RequestFailure(
    "redirect_refused",
    `${route}: HTTP ${status} redirect to ${origin} refused (only the same origin and method are followed); fix the service's base URL`,
    status,
  );
}
