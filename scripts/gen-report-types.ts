/**
 * `npm run gen:types`: writes src/bench/report/report.generated.ts, the report's TypeScript types,
 * from schema/report.schema.json (json-schema-to-typescript). The schema is the one spec a report
 * is checked against (by ajv in the tests, by any reader in any language), so the types follow it
 * and are never edited by hand; src/bench/report/types.ts adds the runtime-only names on top.
 *
 *   npm run gen:types              regenerate after editing the schema (commit both)
 *   npm run gen:types -- --check   exit 1 when the committed file differs from a fresh generation
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compile, type JSONSchema } from 'json-schema-to-typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
export const SCHEMA_PATH = `${root}schema/report.schema.json`;
export const GENERATED_PATH = `${root}src/bench/report/report.generated.ts`;

const BANNER = `/**
 * GENERATED from schema/report.schema.json by \`npm run gen:types\` (json-schema-to-typescript): do not edit.
 * Change the schema, then regenerate; test/bench/report-types.test.ts fails while the two differ.
 */`;

/** The generated module's text for the schema at `schemaPath`. */
export async function generateReportTypes(schemaPath = SCHEMA_PATH): Promise<string> {
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as JSONSchema;
  return compile(schema, 'Report', {
    bannerComment: BANNER,
    // The root is `Report` (its title is prose for humans); $defs keep their names (row → Row).
    customName: (s) => (s.$id === schema.$id ? 'Report' : undefined),
    // Objects the schema leaves open (meta) are opened in types.ts with a typed index signature.
    additionalProperties: false,
    unreachableDefinitions: true,
    style: { singleQuote: true, printWidth: 140, trailingComma: 'all' },
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const fresh = await generateReportTypes();
  if (process.argv.includes('--check')) {
    const committed = readFileSync(GENERATED_PATH, 'utf8');
    if (committed !== fresh) {
      console.error(`${GENERATED_PATH} differs from schema/report.schema.json: run \`npm run gen:types\` and commit it`);
      process.exit(1);
    }
    console.log('report types match the schema');
  } else {
    writeFileSync(GENERATED_PATH, fresh);
    console.log(`wrote ${GENERATED_PATH}`);
  }
}
