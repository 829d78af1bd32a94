/**
 * The patient backend: the patient list, vitals and status writes, each request carrying the
 * token that backend-auth.ts holds and renews.
 */
import { DEFAULTS } from "../defaults.ts";
import { type AuthOptions, createBackendAuth } from "./backend-auth.ts";
import { streamText } from "./body-stream.ts";
import { createClient } from "./client.ts";
import { expectOk, json, parseBody, RequestFailure } from "./failure.ts";
import type { ClientHooks } from "./http.ts";
import { type ListSink, listReader, listTooLarge, MIB } from "./patient-list.ts";
import { type Patient, timestampMs, UpdatedPatient, type Vital, VitalList } from "./schemas.ts";

export interface BackendOptions extends AuthOptions, Omit<ClientHooks, "service"> {
  /** A longer patient list is a contract break (`body_too_large`); undefined: the default. */
  maxListBytes?: number | undefined;
}

export interface BackendClient {
  /** Makes sure a valid token is held: checks a configured one, logs in when missing or rejected. */
  authenticate(): Promise<void>;
  /**
   * Hands each record of the patient list to `list.add`, in order, as its text arrives, and keeps
   * none: the caller keeps what it needs; the raw records (names included) and the text never
   * pile up. A retry of a list that broke off midway calls `list.restart()` first.
   */
  fetchAllPatients(list: ListSink): Promise<void>;
  fetchVitals(pid: number, limit: number): Promise<Vital[]>;
  updateStatus(pid: number, status: number): Promise<Patient>;
}

export function createBackend(options: BackendOptions): BackendClient {
  const { signal, onRequest, onAttempt } = options;
  const client = createClient(options, { service: "backend", signal, onRequest, onAttempt });
  const { authenticate, authed, authedWith } = createBackendAuth(client, options);

  return {
    authenticate,

    async fetchAllPatients(list) {
      const maxBytes = options.maxListBytes ?? DEFAULTS.maxListMib * MIB;
      let opened = 0;
      const open = (status: number) => {
        if (opened++ > 0) list.restart();
        return listReader(list, status);
      };
      const answer = await authedWith((headers) =>
        streamText(client, "api/patient/fetchAllPatients", { headers, maxBytes, open }),
      ).catch((error: unknown) => {
        throw error instanceof RequestFailure && error.reason === "body_too_large"
          ? listTooLarge(error, maxBytes)
          : error;
      });
      expectOk(answer);
    },

    async fetchVitals(pid, limit) {
      const answer = await authed("api/patient/fetchVitals", { searchParams: { key: pid, limit } });
      const vitals = parseBody(expectOk(answer), VitalList);
      if (vitals.some((v) => v.pid !== undefined && v.pid !== pid)) {
        throw new RequestFailure(
          "invalid_response",
          `${answer.route}: a record belongs to another patient`,
        );
      }
      return newestFirst(vitals);
    },

    async updateStatus(pid, status) {
      const answer = expectOk(
        await authed("api/patient/updateStatus", { method: "PUT", searchParams: { pid, status } }),
      );
      const updated = UpdatedPatient.safeParse(json(answer.body)).data;
      if (updated?.pid !== pid || updated.status.id !== status) {
        throw new RequestFailure(
          "unconfirmed_write",
          `${answer.route}: HTTP ${answer.status} does not confirm status ${status} for this patient; it may nevertheless have been stored`,
          answer.status,
        );
      }
      return updated;
    },
  };
}

/** Records with timestamps are put newest first; without them the backend's order stands. */
function newestFirst(vitals: Vital[]): Vital[] {
  if (!vitals.every((v) => v.timestamp !== undefined)) return vitals;
  return vitals.toSorted((a, b) => timestampMs(b.timestamp ?? "") - timestampMs(a.timestamp ?? ""));
}
