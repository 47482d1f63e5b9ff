/**
 * --model presets: schema/models.json's dims give the page bytes SGLang's host pools hold per TP
 * rank (figures checked by hand from each model's config.json), and a sweep run with --model
 * moves pages of that size and records the model in its report.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelNames, modelPage } from '../../src/bench/models.js';
import { runCli } from '../helpers/cli.js';
import type { Report } from '../../src/bench/report/types.js';

test('page bytes per model, layout and TP rank', () => {
  // DeepSeek-V3 MLA: 64 tokens x 61 layers x (512 + 64) x 2 bytes, the same on every rank.
  assert.equal(modelPage('deepseek-v3', { tp: 1, tokensPerPage: 64 }), { model: 'deepseek-v3', layout: 'mla', pageBytes: 4_497_408, tp: 1, tokensPerPage: 64 });
  assert.is(modelPage('deepseek-v3', { tp: 8, tokensPerPage: 64 }).pageBytes, 4_497_408);
  // Llama-3-70B: 64 x 80 layers x 8 KV heads / tp x 128 x 2 per k (and per v).
  assert.is(modelPage('llama-3-70b', { tp: 1, tokensPerPage: 64 }).pageBytes, 10_485_760);
  assert.is(modelPage('llama-3-70b', { tp: 8, tokensPerPage: 64 }).pageBytes, 1_310_720);
  assert.is(modelPage('llama-3-70b', { tp: 8, tokensPerPage: 64 }).layout, 'mha');
  // Qwen3-235B: 4 KV heads; past tp 4 each rank keeps one (replicated).
  assert.is(modelPage('qwen3-235b', { tp: 1, tokensPerPage: 64 }).pageBytes, 6_160_384);
  assert.is(modelPage('qwen3-235b', { tp: 4, tokensPerPage: 64 }).pageBytes, 1_540_096);
  assert.is(modelPage('qwen3-235b', { tp: 8, tokensPerPage: 64 }).pageBytes, 1_540_096);
  assert.is(modelPage('llama-3-8b', { tp: 1, tokensPerPage: 32 }).pageBytes, 32 * 32 * 8 * 128 * 2);
  for (const name of modelNames()) assert.ok(modelPage(name, { tp: 1, tokensPerPage: 64 }).pageBytes % 4 === 0, name);
  assert.throws(() => modelPage('nope', { tp: 1, tokensPerPage: 64 }), /unknown model 'nope'/);
});

test('throughput --model llama-3-8b --tp 8: pages of that size (mha), the model in the report', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcb-model-'));
  try {
    const r = await runCli(['throughput', '--protocol', 'shm', '--model', 'llama-3-8b', '--tp', '8', '--op', 'get', '--concurrency', '1', '--batch-size', '2', '--working-set', '8', '--duration', '0.5', '--warmup', '0.2', '--out-dir', dir, '--json']);
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    const meta = report.meta as Record<string, unknown>;
    assert.is(meta.model, 'llama-3-8b');
    assert.is(meta.tp, 8);
    assert.is(meta.layout, 'mha');
    assert.is(meta.page_size, 64 * 32 * 1 * 128 * 2);
    assert.ok(report.results[0].ok, JSON.stringify(report.results[0]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
