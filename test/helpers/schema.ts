/** Validates a report against schema/report.schema.json (ajv, draft 2020-12). */
import { readFileSync } from 'node:fs';
import Ajv2020Import from 'ajv/dist/2020.js';

// ajv is CommonJS: under ESM the default import may be the module object carrying `.default`.
type AjvCtor = typeof Ajv2020Import extends { default: infer C } ? C : typeof Ajv2020Import;
const Ajv2020 = ((Ajv2020Import as unknown as { default?: AjvCtor }).default ?? Ajv2020Import) as AjvCtor;
const schema: unknown = JSON.parse(readFileSync(new URL('../../schema/report.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true });
/** The compiled schema: true for a valid report. */
export const validate = ajv.compile(schema as object);

/** ajv's explanation of the last validate() call. */
export const errorsOf = (): string => ajv.errorsText(validate.errors);

/** Null when valid, else ajv's explanation. */
export function schemaErrors(report: unknown): string | null {
  return validate(report) ? null : errorsOf();
}
