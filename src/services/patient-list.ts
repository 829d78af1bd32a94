/**
 * The patient list's body as it arrives: its records handed one at a time to the caller's sink,
 * a body that is not a JSON array judged from its start, and a list over the size cap.
 */
import { LIMITS } from "../defaults.ts";
import type { TextSink } from "./body-stream.ts";
import { parseBody, RequestFailure } from "./failure.ts";
import { createArrayReader, type Unread } from "./json-array.ts";
import { PatientList } from "./schemas.ts";

/** Where the patient list's records go as they are parsed. */
export interface ListSink {
  add(record: unknown): void;
  /** A record too large or too deep to parse (LIMITS.recordChars, LIMITS.recordDepth). */
  skip(record: Unread): void;
  /** The list is read again from its start (a retry after its body broke off): forget it all. */
  restart(): void;
}

export const MIB = 1024 * 1024;

const LIST_ROUTE = "GET /api/patient/fetchAllPatients";

/**
 * The list's text, read as it arrives, its records handed to `list`. A malformed list fails as
 * soon as the fault arrives. A body that is not an array is kept only while it is short
 * (LIMITS.notArrayChars), so that parseBody says what it is, in the words it has for every body;
 * a longer one fails once that much has come, and the rest is not downloaded.
 */
export function listReader(list: ListSink, status: number): TextSink {
  const reader = createArrayReader(
    (record) => list.add(record),
    (record) => list.skip(record),
  );
  /** The text from the first piece that showed it is not an array (what precedes is spaces). */
  let other: string[] | undefined;
  let otherChars = 0;
  const notJson = () =>
    new RequestFailure("invalid_response", `${LIST_ROUTE}: HTTP ${status} body is not JSON`);
  return {
    write(text) {
      if (other === undefined) {
        const scan = reader.write(text);
        if (scan === "malformed") throw notJson();
        if (scan !== "not_array") return;
        other = [];
      }
      other.push(text);
      otherChars += text.length;
      if (otherChars > LIMITS.notArrayChars) {
        other = [];
        throw new RequestFailure(
          "invalid_response",
          `${LIST_ROUTE}: HTTP ${status} body is not a JSON array (judged by its first ${LIMITS.notArrayChars} characters; the rest was not read)`,
        );
      }
    },
    end() {
      const scan = other === undefined ? reader.end() : "not_array";
      if (scan === "read") return;
      if (scan === "malformed") throw notJson();
      const body = other?.join("") ?? "";
      parseBody({ status, body, route: LIST_ROUTE, attempts: 1 }, PatientList);
      throw new Error("The patient list's scan says it is not an array; JSON.parse disagrees.");
    },
  };
}

/** A list over the cap, in words that name the setting which raises it. */
export function listTooLarge(error: RequestFailure, maxBytes: number): RequestFailure {
  const size = maxBytes % MIB === 0 ? `${maxBytes / MIB} MiB` : `${maxBytes} bytes`;
  const failure = new RequestFailure(
    "body_too_large",
    `${LIST_ROUTE}: the list is over ${size}; if the backend has that many patients, raise --max-list-mib (MAX_LIST_MIB)`,
    error.status,
    { cause: error },
  );
  failure.attempts = error.attempts;
  return failure;
}
