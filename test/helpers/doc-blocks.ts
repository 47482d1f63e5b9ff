/**
 * The fenced blocks of README.md and docs/*.md, with the `<!-- docs-test: … -->` annotation that says
 * how test/docs/*.test.ts runs each one. The convention is documented in test/docs/commands.test.ts
 * and docs/development.md ("Documentation tests").
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Languages whose blocks are commands (run by commands.test.ts) or library code (typescript.test.ts). */
export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);
export const TS_LANGS = new Set(['ts', 'typescript']);

export type Mode = 'checkout' | 'host' | 'ci' | 'skip' | 'ts' | 'redis-fleet';

export interface Annotation {
  mode: Mode;
  /** host=A|B */
  host?: 'A' | 'B';
  /** Started and left running (until the end of its file) once its output matches `ready`. */
  background: boolean;
  ready?: RegExp;
  /** needs=rdma: where no RDMA device exists, the block must fail with the documented clear error. */
  needsRdma: boolean;
  /** needs=rdma,mem=65g: bytes of available memory the block needs (a big --global-segment); 0: none. */
  needsMemBytes: number;
  /** skip="why": not run here; the reason is required. */
  reason?: string;
}

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  /** The block's text, its fence's indentation removed. */
  code: string;
  /** The raw annotation text (null: none). */
  rawAnnotation: string | null;
  annotation: Annotation | null;
  /** Why the annotation is invalid (null: valid or absent). */
  annotationError: string | null;
}

/** README.md first, then docs/*.md in name order: the order a reader follows, and the order blocks run. */
export function docFiles(root = repoRoot): string[] {
  let docs: string[] = [];
  try {
    docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`);
  } catch {
    docs = [];
  }
  return ['README.md', ...docs];
}

/** key=value, key="quoted value", or a bare word, separated by spaces. */
function tokens(s: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (const m of s.matchAll(/([\w-]+)(?:=(?:"((?:[^"\\]|\\.)*)"|(\S+)))?/g)) {
    out.set(m[1], m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3] !== undefined ? m[3] : true);
  }
  return out;
}

export function parseAnnotation(raw: string, lang: string): { annotation: Annotation | null; error: string | null } {
  const t = tokens(raw);
  const known = new Set(['checkout', 'ci', 'skip', 'host', 'background', 'ready', 'needs', 'redis-fleet']);
  for (const k of t.keys()) if (!known.has(k)) return { annotation: null, error: `unknown word '${k}'` };
  const a: Annotation = { mode: 'checkout', background: t.has('background'), needsRdma: false, needsMemBytes: 0 };
  const modes = ['checkout', 'ci', 'skip', 'host', 'redis-fleet'].filter((m) => t.has(m));
  if (modes.length !== 1) return { annotation: null, error: `exactly one of checkout, host=A|B, ci, skip="why", redis-fleet (got ${modes.join(', ') || 'none'})` };
  a.mode = modes[0] as Mode;
  if (a.mode === 'skip') {
    const why = t.get('skip');
    if (typeof why !== 'string' || why.trim().length < 20) return { annotation: null, error: 'skip needs a reason: skip="why this cannot run here, and what checks it instead"' };
    a.reason = why;
  }
  if (a.mode === 'host') {
    const h = t.get('host');
    if (h !== 'A' && h !== 'B') return { annotation: null, error: 'host=A or host=B' };
    a.host = h;
  }
  const needs = t.get('needs');
  if (needs !== undefined) {
    for (const need of String(needs).split(',')) {
      const mem = /^mem=(\d+)([kmg])$/.exec(need);
      if (need === 'rdma') a.needsRdma = true;
      else if (mem) a.needsMemBytes = Number(mem[1]) * 1024 ** ' kmg'.indexOf(mem[2]);
      else return { annotation: null, error: `needs=${needs}: a comma list of rdma and mem=<size>[k|m|g]` };
    }
  }
  const ready = t.get('ready');
  if (a.background) {
    if (a.mode !== 'host') return { annotation: null, error: 'background runs on a host (host=A|B)' };
    if (typeof ready !== 'string') return { annotation: null, error: 'background needs ready="a regular expression its output matches when it is up"' };
    a.ready = new RegExp(ready);
  } else if (ready !== undefined) return { annotation: null, error: 'ready= only with background' };
  const shell = SHELL_LANGS.has(lang);
  if (a.mode === 'redis-fleet' && !TS_LANGS.has(lang)) return { annotation: null, error: 'redis-fleet is for a ts block' };
  if (a.mode !== 'redis-fleet' && a.mode !== 'skip' && !shell) return { annotation: null, error: `${a.mode} is for a shell block` };
  return { annotation: a, error: null };
}

export function parseBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^`]*$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    let j = i + 1;
    while (j < lines.length && lines[j].trim() !== fence) j++;
    const code = lines
      .slice(i + 1, j)
      .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart()))
      .join('\n');
    // The annotation is the line right above the fence (blank lines between are allowed).
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const m = k >= 0 ? /^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$/.exec(lines[k]) : null;
    const rawAnnotation = m ? m[1] : null;
    const parsed = rawAnnotation === null ? { annotation: null, error: null } : parseAnnotation(rawAnnotation, lang);
    blocks.push({ file, line: i + 1, lang, code: code + '\n', rawAnnotation, annotation: parsed.annotation, annotationError: parsed.error });
    i = j;
  }
  return blocks;
}

export function allBlocks(root = repoRoot): DocBlock[] {
  return docFiles(root).flatMap((f) => parseBlocks(f, readFileSync(join(root, f), 'utf8')));
}

export const where = (b: DocBlock): string => `${b.file}:${b.line}`;
