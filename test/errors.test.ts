/**
 * One error vocabulary: ERROR_CODES in src/errors.ts. The table in docs/errors.md, the codes the
 * native addon throws, the sidecar's error-frame codes (schema/sidecar-wire.json) and what the
 * TypeScript throws are all checked against it; the classes are exported and carry a code.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as api from '../src/index.js';
import { ERROR_CODES, InvalidArgumentError, PeercacheError } from '../src/errors.js';
import { SIDECAR_ERROR_CODES } from '../src/sidecar/protocol.js';
import { HostKVPool } from '../src/store/host-pool.js';
import { parseRedisUrl } from '../src/store/directory/url.js';

const root = new URL('../', import.meta.url).pathname;
const codes = new Set(Object.keys(ERROR_CODES));

test('docs/errors.md lists exactly the codes of ERROR_CODES', () => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  const listed = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.equal([...listed].sort(), [...codes].sort());
});

test('every code the native addon throws is in the vocabulary', () => {
  const thrown = new Set<string>();
  for (const f of readdirSync(join(root, 'native'))) {
    for (const m of readFileSync(join(root, 'native', f), 'utf8').matchAll(/"(ERR_[A-Z_]+)"/g)) thrown.add(m[1]);
  }
  assert.ok(thrown.size >= 10, `${thrown.size} codes found in native/`);
  assert.equal([...thrown].filter((c) => !codes.has(c)), []);
});

test("the sidecar's error-frame codes (the wire spec's) are in the vocabulary", () => {
  const spec = JSON.parse(readFileSync(join(root, 'schema/sidecar-wire.json'), 'utf8')) as { error_codes: Record<string, string> };
  const wire = Object.keys(spec.error_codes).filter((k) => k.startsWith('ERR_'));
  assert.equal([...SIDECAR_ERROR_CODES].filter((c) => !codes.has(c)), []);
  assert.equal(wire.filter((c) => !codes.has(c)), []);
});

test('every code written in src/ is in the vocabulary (a typo is a failure here, not a silent new code)', () => {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/'(ERR_[A-Z_]+)'/g)) found.add(m[1]);
    }
  };
  walk(join(root, 'src'));
  // Node's own codes that the code compares against (not ours).
  const node = new Set(['ERR_MODULE_NOT_FOUND']);
  assert.equal([...found].filter((c) => !codes.has(c) && !node.has(c)), []);
});

test('the error classes are exported and carry a code; a bad argument is ERR_INVALID_ARG, not a bare RangeError', () => {
  for (const name of ['PeercacheError', 'ConfigError', 'InvalidArgumentError', 'StoreConfigError', 'DirectoryError', 'TransportError', 'WireError', 'SweepConfigError'] as const) {
    assert.type((api as Record<string, unknown>)[name], 'function', name);
  }
  const caught = (fn: () => unknown): PeercacheError => {
    try {
      fn();
    } catch (err) {
      assert.instance(err, PeercacheError);
      return err as PeercacheError;
    }
    throw new Error('expected a throw');
  };
  const e1 = caught(() => new HostKVPool({ layout: 'mla', pageBytes: 0, pages: 1, tokensPerPage: 64 }));
  assert.instance(e1, InvalidArgumentError);
  assert.is(e1.code, 'ERR_INVALID_ARG');
  assert.is(caught(() => parseRedisUrl('redis://h:1/db0')).code, 'ERR_INVALID_ARG');
  assert.ok(Object.values(ERROR_CODES).every((d) => d.length > 10), 'every code says what it means');
});

test.run();
