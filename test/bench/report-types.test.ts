/**
 * The report's TypeScript types are generated from schema/report.schema.json (`npm run gen:types`):
 * the committed file must be what a fresh generation writes, so the schema and the types cannot
 * drift apart; and reports the bench wrote validate against that schema.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_PATH, SCHEMA_PATH, generateReportTypes } from '../../scripts/gen-report-types.js';
import { schemaErrors } from '../helpers/schema.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('src/bench/report/report.generated.ts is what `npm run gen:types` writes from the schema', async () => {
  const committed = readFileSync(GENERATED_PATH, 'utf8');
  const fresh = await generateReportTypes();
  assert.ok(committed === fresh, 'report.generated.ts differs from schema/report.schema.json: run `npm run gen:types` and commit it');
});

test('a schema change changes the generated types, and --check names the file and exits 1', async () => {
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { $defs: { row: { properties: Record<string, { enum?: string[] }> } } };
  schema.$defs.row.properties.arrival.enum = ['closed', 'constant'];
  const dir = mkdtempSync(join(tmpdir(), 'peercache-report-types-'));
  try {
    const edited = join(dir, 'report.schema.json');
    writeFileSync(edited, JSON.stringify(schema));
    const fresh = await generateReportTypes(edited);
    assert.ok(fresh.includes(`arrival: 'closed' | 'constant';`), 'the edited enum reaches the types');
    assert.is.not(fresh, readFileSync(GENERATED_PATH, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const check = spawnSync('npm', ['run', '--silent', 'gen:types', '--', '--check'], { cwd: root, encoding: 'utf8' });
  assert.is(check.status, 0, check.stderr);
  assert.match(check.stdout, 'report types match the schema');
});

test('reports the bench wrote (committed in bench-results/) validate against the schema', () => {
  for (const name of ['hicache-suite-shm-deepseek-v3-20261207-033926.json', 'hicache-suite-shm-llama-3-70b-tp8-20261207-034425.json']) {
    const report: unknown = JSON.parse(readFileSync(join(root, 'bench-results', name), 'utf8'));
    assert.is(schemaErrors(report), null, name);
  }
});

test('a protocol outside rdma/shm/tcp is rejected (the schema enum is the type Protocol)', () => {
  const report = JSON.parse(readFileSync(join(root, 'bench-results', 'hicache-suite-shm-deepseek-v3-20261207-033926.json'), 'utf8')) as {
    results: { protocol: string }[];
  };
  report.results[0].protocol = 'ib';
  assert.match(schemaErrors(report) ?? '', 'protocol');
});

test.run();
