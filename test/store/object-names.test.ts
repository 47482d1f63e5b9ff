/**
 * schema/object-names.json is how a page's objects are named, as data; python/tests/test_object_names.py
 * checks the SGLang adapter against the same file. Here: componentSuffixes and ObjectKeyNames (the
 * HiCache facade's naming) give every vector that applies to TypeScript, and the vectors that do not
 * are exactly those with the adapter's prefix (extra_backend_tag, model_name), which the facade does
 * not take. Change a name in the spec and both suites fail.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { componentSuffixes, ObjectKeyNames } from '../../src/store/keys.js';

interface Vector {
  name: string;
  applies_to: Array<'typescript' | 'python'>;
  input: {
    page_key: string;
    layout: 'mla' | 'mha';
    tp_rank: number;
    tp_size: number;
    pp_rank: number;
    pp_size: number;
    cp_rank: number;
    cp_size: number;
    extra_backend_tag?: string | number;
    model_name?: string;
  };
  object_names: string[];
}

const spec = JSON.parse(readFileSync(new URL('../../schema/object-names.json', import.meta.url), 'utf8')) as { vectors: Vector[] };
const ours = spec.vectors.filter((v) => v.applies_to.includes('typescript'));

test('the spec has vectors for TypeScript, MLA and MHA, with PP and CP', () => {
  assert.ok(ours.length >= 8);
  for (const layout of ['mla', 'mha']) assert.ok(ours.some((v) => v.input.layout === layout));
  assert.ok(ours.some((v) => v.input.pp_size > 1) && ours.some((v) => v.input.cp_size > 1));
});

for (const v of ours) {
  test(`object names: ${v.name}`, () => {
    const i = v.input;
    const suffixes = componentSuffixes({ layout: i.layout, tpRank: i.tp_rank, ppRank: i.pp_rank, ppSize: i.pp_size, cpRank: i.cp_rank, cpSize: i.cp_size });
    assert.equal(new ObjectKeyNames(suffixes).of([i.page_key]), v.object_names);
    // a batch of two pages: each page's objects in order
    assert.equal(new ObjectKeyNames(suffixes).of([i.page_key, i.page_key]), [...v.object_names, ...v.object_names]);
  });
}

test('vectors that leave TypeScript out are exactly the adapter-prefixed ones', () => {
  for (const v of spec.vectors) {
    const prefixed = v.input.extra_backend_tag !== undefined || v.input.model_name !== undefined;
    assert.is(v.applies_to.includes('typescript'), !prefixed, v.name);
    assert.ok(v.applies_to.includes('python'), v.name);
  }
});

test('without cpRank/cpSize the names are those of CP size 1', () => {
  assert.equal(componentSuffixes({ layout: 'mha', tpRank: 2, ppRank: 1, ppSize: 2 }), ['_2_1_k', '_2_1_v']);
  assert.equal(componentSuffixes({ layout: 'mla', tpRank: 0, ppRank: 0, ppSize: 1 }), ['__k']);
});

test.run();
