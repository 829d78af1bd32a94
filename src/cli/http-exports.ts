/**
 * node:http's ES module exports, made without loading Node's bundled undici. Node builds a
 * builtin's ES module by reading every export of it, and three of node:http's are getters that
 * load undici for its WebSocket classes (nodejs/node#57649): about a sixth of a run's start, for
 * classes neither got nor we use.
 */

/** The getters of node:http that load undici when read. */
const UNDICI_GETTERS = ["WebSocket", "CloseEvent", "MessageEvent"];

/**
 * Imports node:http with those three set aside, so its ES module exports them as undefined; the
 * getters are put back for `http.WebSocket` and `require("node:http")`. Call it before got loads;
 * once node:http's ES module exists it changes nothing.
 */
export async function importHttpWithoutUndici(): Promise<void> {
  const http = process.getBuiltinModule("node:http") as unknown as Record<string, unknown>;
  const aside = UNDICI_GETTERS.flatMap((name) => {
    const descriptor = Object.getOwnPropertyDescriptor(http, name);
    return descriptor?.get && descriptor.configurable ? [{ name, descriptor }] : [];
  });
  for (const { name, descriptor } of aside) {
    const { enumerable } = descriptor;
    Object.defineProperty(http, name, { configurable: true, enumerable, value: undefined });
  }
  try {
    await import("node:http");
  } finally {
    for (const { name, descriptor } of aside) Object.defineProperty(http, name, descriptor);
  }
}
