/**
 * `--model` presets: a published model's KV-cache geometry (schema/models.json, written once for
 * every consumer) turned into what a sweep needs, the page layout and the bytes of one object,
 * per TP rank and tokens per page.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';

export interface ModelGeometry {
  attention: 'mla' | 'mha';
  layers: number;
  dtypeBytes: number;
  /** MLA: the compressed latent and the decoupled RoPE key, per token and layer. */
  kvLoraRank?: number;
  qkRopeHeadDim?: number;
  /** MHA/GQA: KV heads of the whole model, and their dimension. */
  kvHeads?: number;
  headDim?: number;
  /** Where the figures come from. */
  from: string;
}

export interface ModelPage {
  model: string;
  layout: 'mla' | 'mha';
  /** Bytes of one object: the MLA page, or the k (and the v) of an MHA page, on one TP rank. */
  pageBytes: number;
  tp: number;
  tokensPerPage: number;
}

let table: Record<string, ModelGeometry> | null = null;

export function models(): Record<string, ModelGeometry> {
  if (table === null) {
    const raw = JSON.parse(readFileSync(new URL('../../schema/models.json', import.meta.url), 'utf8')) as Record<string, unknown>;
    table = Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('$'))) as Record<string, ModelGeometry>;
  }
  return table;
}

export const modelNames = (): string[] => Object.keys(models());

/** The page one TP rank of `model` stores; throws a RangeError naming the known models. */
export function modelPage(model: string, options: { tp: number; tokensPerPage: number }): ModelPage {
  const g = models()[model];
  if (g === undefined) throw new InvalidArgumentError(`unknown model '${model}': one of ${modelNames().join(', ')}`);
  const { tp, tokensPerPage } = options;
  if (!Number.isInteger(tp) || tp < 1) throw new InvalidArgumentError(`tp must be a positive integer, got ${tp}`);
  const perToken =
    g.attention === 'mla' ? (g.kvLoraRank! + g.qkRopeHeadDim!) * g.dtypeBytes : Math.max(1, Math.floor(g.kvHeads! / tp)) * g.headDim! * g.dtypeBytes;
  return { model, layout: g.attention, pageBytes: tokensPerPage * g.layers * perToken, tp, tokensPerPage };
}
