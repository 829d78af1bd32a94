/**
 * A validator for the part of JSON Schema (draft 2020-12) that report.schema.json uses, so that a
 * test checks real reports against the committed file itself, with no validator dependency. A
 * keyword outside that part throws: the file cannot grow past what this checks without notice.
 */

export type JsonSchema = { [keyword: string]: unknown };

/** Keywords that only describe; `format` is an annotation in 2020-12 (the patterns check). */
const ANNOTATIONS = new Set(["$schema", "$id", "title", "description", "format"]);
const CHECKED = new Set([
  "type",
  "const",
  "enum",
  "pattern",
  "minLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "anyOf",
]);

/** Every way `value` breaks `schema`, each as `path: problem`; empty when it conforms. */
export function validate(schema: JsonSchema, value: unknown, path = "$"): string[] {
  for (const keyword of Object.keys(schema)) {
    if (!ANNOTATIONS.has(keyword) && !CHECKED.has(keyword)) {
      throw new Error(`${path}: keyword ${keyword} is outside the subset this validator checks`);
    }
  }
  const problems: string[] = [];
  const fail = (problem: string) => problems.push(`${path}: ${problem}`);

  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t as string)))
      fail(`is not of type ${types.join(" or ")}`);
  }
  if ("const" in schema && value !== schema.const) fail(`is not ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === "string") {
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
      fail(`${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
    if (typeof schema.minLength === "number" && [...value].length < schema.minLength) {
      fail(`is shorter than ${schema.minLength}`);
    }
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum)
      fail(`is below ${schema.minimum}`);
    if (typeof schema.maximum === "number" && value > schema.maximum)
      fail(`is above ${schema.maximum}`);
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) {
      fail(`is not above ${schema.exclusiveMinimum}`);
    }
  }
  if (isObject(value)) {
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const name of (schema.required ?? []) as string[]) {
      if (!(name in value)) fail(`lacks ${name}`);
    }
    for (const [name, item] of Object.entries(value)) {
      const own = properties[name];
      if (own) problems.push(...validate(own, item, `${path}.${name}`));
      else if (schema.additionalProperties === false) fail(`has no property ${name}`);
      else if (isObject(schema.additionalProperties)) {
        problems.push(...validate(schema.additionalProperties, item, `${path}.${name}`));
      }
    }
  }
  if (Array.isArray(value) && isObject(schema.items)) {
    for (const [i, item] of value.entries()) {
      problems.push(...validate(schema.items as JsonSchema, item, `${path}[${i}]`));
    }
  }
  if (Array.isArray(schema.anyOf)) {
    const branches = (schema.anyOf as JsonSchema[]).map((s) => validate(s, value, path));
    if (!branches.some((b) => b.length === 0)) {
      fail(`matches none of anyOf (${branches.map((b) => b.join("; ")).join(" | ")})`);
    }
  }
  return problems;
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return isObject(value);
    case "string":
    case "boolean":
      return typeof value === type;
    default:
      throw new Error(`type ${type} is outside the subset this validator checks`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
