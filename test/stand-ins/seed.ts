// Patient data for the stand-in backend: a small demo seed shaped like the original database, and a
// deterministic generator for large runs. Every name here is made up.
import type { SeedPatient, Vital } from "./backend.ts";
import { hash32, prng } from "./server.ts";

export const DEMO_USER = { username: "demo", password: "demo-password" } as const;

type Row = [
  heart_rate: number,
  sao2: number,
  respiration: number,
  systolic: number,
  diastolic: number,
];
const v = ([heart_rate, sao2, respiration, systolic, diastolic]: Row): Vital => ({
  heart_rate,
  sao2,
  respiration,
  systolic,
  diastolic,
});

// [pid, first, last, age, gender, status, admit_time, vitals newest first]
type DemoRow = [number, string, string, number | null, string | null, number, string, Row[]];
// biome-ignore format: one patient per block reads like the database table
const DEMO: DemoRow[] = [
  // steady and Normal: the ML server agrees, the status stays 9
  [1, "Ava", "Lindqvist", 67, "Female", 9, "2026-11-20T08:14:03.512870", [
    [78, 97, 16, 122, 78], [76, 97, 15, 120, 77], [77, 98, 16, 121, 79], [75, 97, 16, 119, 76], [74, 98, 15, 118, 77],
  ]],
  // Normal but SpO2 sliding: the forecast (84) leaves the safe range, so it becomes Alert
  [2, "Marcus", "Okafor", 54, "Male", 9, "2026-11-21T00:00:00", [
    [104, 86, 22, 134, 84], [101, 88, 21, 131, 83], [99, 90, 20, 130, 82], [98, 92, 20, 128, 82], [96, 94, 19, 127, 81],
  ]],
  // Alert but recovering: the forecast is back in range, so it becomes Normal
  [3, "Priya", "Raman", null, "Female", 1, "2026-11-22T17:02:44.090211", [
    [88, 96, 18, 130, 82], [90, 95, 19, 134, 84], [92, 95, 20, 137, 85], [94, 94, 21, 140, 87], [96, 93, 22, 142, 88],
  ]],
  // Alert and still bradycardic: stays 1
  [4, "Tomasz", "Wierzbicki", 81, "Male", 1, "2026-11-18T03:41:09.775004", [
    [44, 91, 12, 92, 50], [46, 92, 12, 94, 52], [47, 91, 13, 95, 52], [48, 92, 12, 96, 54], [49, 92, 13, 97, 55],
  ]],
  // never observed, vitals fine: becomes Normal
  [5, "Noor", "Haddad", 38, null, 10, "2026-11-25T09:30:00", [
    [72, 99, 14, 116, 74], [70, 98, 14, 115, 73], [71, 99, 15, 117, 75], [73, 98, 14, 116, 74], [72, 99, 14, 115, 73],
  ]],
  // never observed, blood pressure climbing past 180: becomes Alert
  [6, "Elliot", "Brandvold", null, null, 10, "2026-11-25T22:12:57.300118", [
    [92, 95, 18, 178, 96], [90, 95, 18, 174, 95], [89, 96, 17, 170, 93], [88, 96, 17, 166, 92], [88, 96, 17, 164, 91],
  ]],
  // Normal with a longer history than the sweep asks for (limit 5)
  [7, "Ines", "Carvalho", 29, "Female", 9, "2026-11-19T12:00:00.000500", [
    [66, 98, 13, 112, 70], [65, 99, 13, 111, 70], [67, 98, 14, 113, 71], [66, 98, 13, 112, 70],
    [64, 99, 13, 110, 69], [65, 98, 14, 111, 70], [66, 99, 13, 112, 71],
  ]],
  // admitted minutes ago: only 2 vitals, so it cannot be predicted yet
  [8, "Kofi", "Mensah", 45, "Male", 10, "2026-11-26T11:45:21.686102", [
    [84, 97, 17, 125, 80], [83, 97, 16, 124, 79],
  ]],
];

/** A fresh copy of the demo seed (8 patients; pid 8 has only 2 vitals). */
export function demoPatients(): SeedPatient[] {
  return DEMO.map(([pid, firstname, lastname, age, gender, status, admit_time, rows]) => ({
    pid,
    firstname,
    lastname,
    age,
    gender,
    status,
    admit_time,
    vitals: rows.map(v),
  }));
}

export interface MakePatientsOptions {
  /** default 1 */
  seed?: number;
  /** pid of the first patient; default 1 */
  firstPid?: number;
  /** vitals per patient, at least 5; default 5 */
  vitalsPerPatient?: number;
  /** statuses to draw from; default [1, 9, 10] */
  statuses?: number[];
  /** share of patients whose SpO2 slides out of range (the stand-in ML says Alert); default 0.25 */
  alertShare?: number;
}

const FIRST = [
  "Ada",
  "Bram",
  "Cleo",
  "Dario",
  "Edda",
  "Femi",
  "Gus",
  "Hana",
  "Ivo",
  "Juno",
  "Kai",
  "Lena",
];
const LAST = [
  "Arnholt",
  "Bexley",
  "Cardoso",
  "Dunmore",
  "Eklund",
  "Fairweather",
  "Grau",
  "Holloway",
];

/**
 * n patients, deterministic for a seed. Vitals are generated on first access (from their own
 * per-patient PRNG stream), so 100,000 patients cost little until a test reads their vitals.
 */
export function makePatients(n: number, opts: MakePatientsOptions = {}): SeedPatient[] {
  const { seed = 1, firstPid = 1, statuses = [1, 9, 10], alertShare = 0.25 } = opts;
  const count = Math.max(5, opts.vitalsPerPatient ?? 5);
  const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const out: SeedPatient[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const pid = firstPid + i;
    const r = prng(hash32(seed, pid));
    const sliding = r() < alertShare;
    let vitals: Vital[] | undefined;
    out[i] = {
      pid,
      firstname: pick(r, FIRST),
      lastname: pick(r, LAST),
      age: r() < 0.1 ? null : 18 + Math.floor(r() * 80),
      gender: r() < 0.1 ? null : pick(r, ["Female", "Male"]),
      status: pick(r, statuses),
      get vitals() {
        vitals ??= makeVitals(prng(hash32(seed ^ 0x5bd1e995, pid)), count, sliding);
        return vitals;
      },
      set vitals(value) {
        vitals = value;
      },
    };
  }
  return out;
}

/** `count` records, newest first: in-range noise, or SpO2 falling 3 points per record. */
function makeVitals(r: () => number, count: number, sliding: boolean): Vital[] {
  const around = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const base: Row = [
    around(60, 100),
    around(94, 99),
    around(14, 20),
    around(100, 140),
    around(60, 90),
  ];
  const noise = () => around(-2, 2);
  const rows: Vital[] = [];
  for (let age = 0; age < count; age++) {
    const [hr, sao2, resp, sys, dia] = base;
    const drop = sliding ? 3 * (count - 1 - age) : 0;
    rows.push(
      v([
        hr + noise(),
        Math.max(50, sao2 - drop + (sliding ? 0 : around(-1, 0))),
        resp + noise(),
        sys + noise(),
        dia + noise(),
      ]),
    );
  }
  return rows;
}
