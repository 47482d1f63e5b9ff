/** Validates a report against schema/report.schema.json (ajv, draft 2020-12). */
import { readFileSync } from 'node:fs';
import Ajv2020Import from 'ajv/dist/2020.js';

type AjvCtor = typeof Ajv2020Import extends { default: infer C } ? C : typeof Ajv2020Import;
const Ajv2020 = ((Ajv2020Import as unknown as { default?: AjvCtor }).default ?? Ajv2020Import) as AjvCtor;
const schema: unknown = JSON.parse(readFileSync(new URL('../../schema/report.schema.json', import.meta.url), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true });
const validate = ajv.compile(schema as object);

/** Null when valid, else ajv's explanation. */
export function schemaErrors(report: unknown): string | null {
  return validate(report) ? null : ajv.errorsText(validate.errors);
}
