/**
 * The wire contract (../shared/contract.md) as zod schemas: the one source of these types.
 * Unknown keys are stripped, so names, ages and the like never outlive parsing.
 */
import { z } from "zod";

/** Status ids in the backend's `status` table. */
export const STATUS = { alert: 1, normal: 9, unobserved: 10 } as const satisfies Record<
  string,
  number
>;

const Pid = z.number().int().positive();
const StatusId = z.number().int().positive();

/** `POST /api/login/` answer; only the token is kept. */
export const LoginResponse = z.object({ token: z.string().min(1) });

/** `POST /api/login/`'s 404 for an unknown user; any other 404 is not the backend speaking. */
export const UnknownUser = z.object({ detail: z.literal("Failed to find username") });

/** `GET /api/validate/` answers a bare user id. */
export const ValidateResponse = z.number().int();

/** One patient of `fetchAllPatients`, reduced to what a sweep needs. */
export const Patient = z.object({
  pid: Pid,
  status: z.object({ id: StatusId }),
});
export type Patient = z.infer<typeof Patient>;

/** Just enough of a record to name it in a report when the rest is unusable. */
export const PatientPid = z.object({ pid: Pid });

/** `fetchAllPatients` is an array; each record is validated on its own (see sweep). */
export const PatientList = z.array(z.unknown());

const VitalField = z.number().int();

/**
 * One vital record. `pid` and `timestamp` come from newer backend versions: used when present,
 * never required.
 */
export const Vital = z.object({
  heart_rate: VitalField,
  sao2: VitalField,
  respiration: VitalField,
  systolic: VitalField,
  diastolic: VitalField,
  pid: Pid.optional(),
  timestamp: z.iso.datetime({ local: true, offset: true }).optional(),
});
export type Vital = z.infer<typeof Vital>;

/**
 * A vital record's timestamp in epoch ms. A zone-less one (the backend writes naive UTC, like
 * admit_time) is UTC: Date.parse would read it in the machine's time zone. The schema allows only
 * `Z` or `+hh:mm`.
 */
export function timestampMs(timestamp: string): number {
  const zoned = /(?:Z|[+-]\d{2}:\d{2})$/.test(timestamp);
  return Date.parse(zoned ? timestamp : `${timestamp}Z`);
}

/** `fetchVitals?limit=5` answers at most five records. */
export const VitalList = z.array(Vital).max(5);

/** `POST /predict` answer: only Alert or Normal may come back, and only those are written. */
export const Prediction = z.object({
  status: z.object({ id: z.union([z.literal(STATUS.alert), z.literal(STATUS.normal)]) }),
});
export type Prediction = z.infer<typeof Prediction>;

/** `PUT updateStatus` answers the updated patient. */
export const UpdatedPatient = Patient;

/** `GET /health` answers JSON `true`. */
export const Health = z.literal(true);

/** The ML server's answer to the empty-list probe: 422 with a `detail`. */
export const ProbeRejection = z.object({ detail: z.unknown().refine((d) => d !== undefined) });

/**
 * One line naming the field paths and expected types that failed, never a received value.
 */
export function describeIssues(error: z.ZodError, limit = 3): string {
  const parts = error.issues.slice(0, limit).map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join(".") : "body";
    return issue.code === "invalid_type"
      ? `${path}: expected ${issue.expected}`
      : `${path}: ${issue.code}`;
  });
  const more = error.issues.length > limit ? ` (+${error.issues.length - limit} more)` : "";
  return parts.join("; ") + more;
}
