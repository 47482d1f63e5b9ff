/**
 * Writes a report as `<name>.json` + `<name>.md` without ever replacing an earlier run's files.
 *
 * - The name is claimed exclusively: `open(<name>.json, 'wx')` creates an empty placeholder, so two
 *   runs started in the same second get `<name>` and `<name>-1` instead of racing for one file.
 * - Each file is written atomically: a temp file in the same directory, fsync, rename over the
 *   final name, then an fsync of the directory. The .md is written first, so a non-empty .json
 *   means the pair is complete.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileTimestamp } from './format.js';
import { renderHlog } from './hlog.js';
import { renderJson, renderMarkdown, type RenderOptions } from './render.js';
import type { Report } from './types.js';
import { PeercacheError } from '../../errors.js';

export { toJsonSafe } from './format.js';

export type ArtifactKind = 'hicache' | 'hicache-dist' | 'micro' | 'compare' | 'mooncake';

export interface ArtifactNameInput {
  kind: ArtifactKind;
  /** hicache: latency|throughput|saturation|suite; hicache-dist: the op (get|exists). Required for both. */
  mode?: string;
  protocol: string;
  /** User suffix; sanitised with sanitizeTag. */
  tag?: string;
  /** The run's start (UTC in the name). */
  date: Date;
}

const SAFE_PART = /^[A-Za-z0-9._-]+$/;

/**
 * Makes a tag file-name safe: every run of characters outside [A-Za-z0-9._-] becomes one "-",
 * leading/trailing "-" and "." are dropped (no hidden files, no "..": the tag never leaves the
 * directory anyway since "/" is replaced). "" means no tag. The CLI rejects such tags up front
 * (parseTag); this is the writer's own guard.
 */
export function sanitizeTag(tag: string): string {
  return tag.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '');
}

function part(what: string, value: string | undefined): string {
  if (!value || !SAFE_PART.test(value)) throw new PeercacheError('ERR_REPORT', `artifactName: ${what} ${JSON.stringify(value)} must match [A-Za-z0-9._-]+`);
  return value;
}

/**
 * hicache-<mode>-<protocol>[-<tag>]-<ts> | hicache-dist-<op>-<protocol>[-<tag>]-<ts> |
 * micro-<protocol>[-<tag>]-<ts> | compare-… | mooncake-…, with ts = UTC %Y%m%d-%H%M%S.
 */
export function artifactName(input: ArtifactNameInput): string {
  const parts: string[] = [input.kind];
  if (input.kind === 'hicache' || input.kind === 'hicache-dist') parts.push(part('mode', input.mode));
  parts.push(part('protocol', input.protocol));
  const tag = sanitizeTag(input.tag ?? '');
  if (tag) parts.push(tag);
  if (Number.isNaN(input.date.getTime())) throw new PeercacheError('ERR_REPORT', 'artifactName: invalid date');
  parts.push(fileTimestamp(input.date));
  return parts.join('-');
}

export interface WriteOptions {
  outDir: string;
  /** From artifactName(); no extension. */
  name: string;
  /**
   * The Markdown body, or a function of the plot's file name (known only once the name is
   * claimed); default renderMarkdown(report, { ...render, plotFile }).
   */
  markdown?: string | ((files: { svg?: string }) => string);
  /** A plot to write beside the report as <name>.svg (and embed in the default Markdown). */
  svg?: string;
  render?: RenderOptions;
}

export interface WrittenPaths {
  json: string;
  md: string;
  svg?: string;
  /** <name>.hlog: the HdrHistogram interval log, when a row has intervals (--interval). */
  hlog?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** The output directory cannot be created or written; the message is one line naming the directory. */
export class OutDirError extends PeercacheError {
  override name = 'OutDirError';
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_REPORT', message, options);
  }
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EEXIST: 'already exists',
  EISDIR: 'is a directory',
};

/** A file-system error as a few words ("permission denied"), never a stack. */
export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code && ERRNO_TEXT[e.code]) ?? e.message ?? String(err);
}

/**
 * Makes sure `outDir` exists (creating the missing parts) and that files can be created in it,
 * by creating and removing a probe file. Called before measuring, so a bad --out-dir costs
 * nothing. Deliberately not `mkdir({ recursive: true })`: under /proc it loops forever (ENOENT on
 * the child, EEXIST on the parent, again and again). The folders it made are pushed to `created`
 * (outermost first), so a run that then fails can take them back (`removeCreatedDirs`).
 */
export async function prepareOutDir(outDir: string, created: string[] = []): Promise<string> {
  const dir = resolve(outDir);
  const missing: string[] = [];
  for (let cur = dir; ; ) {
    let isDir: boolean;
    try {
      isDir = (await stat(cur)).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new OutDirError(`${cur}: ${describeFsError(e)}`);
      missing.unshift(cur);
      const up = dirname(cur);
      if (up === cur) throw new OutDirError(`${dir}: ${describeFsError(e)}`);
      cur = up;
      continue;
    }
    if (!isDir) throw new OutDirError(`${cur} is a file, not a directory`);
    break;
  }
  for (const d of missing) {
    try {
      await mkdir(d);
      created.push(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(d).then((s) => s.isDirectory(), () => false))) continue;
      throw new OutDirError(`cannot create ${d}: ${describeFsError(e)}`);
    }
  }
  const probe = join(dir, `.peercache-write-test.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(probe, 'wx', 0o644);
    await fh.close();
  } catch (e) {
    throw new OutDirError(`cannot create files in ${dir}: ${describeFsError(e)}`);
  }
  await rm(probe, { force: true });
  return dir;
}

/**
 * Removes the folders `prepareOutDir` made, innermost first, where they are still empty: a run
 * that wrote nothing leaves no trace. Anything else there (a file someone put in) is kept.
 */
export async function removeCreatedDirs(created: readonly string[]): Promise<void> {
  for (const d of [...created].reverse()) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (or gone): its parents are not empty either
    }
  }
}

/** Writes `data` to `path` via a synced temp file in the same directory and a rename. */
async function writeAtomic(dir: string, path: string, data: string): Promise<void> {
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.${process.pid}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the renames durable; some filesystems refuse fsync on a directory, which is harmless here.
  try {
    const fh = await open(dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

/** Claims `<base>.json` exclusively, trying <base>, <base>-1, <base>-2, … */
async function claim(outDir: string, name: string): Promise<string> {
  for (let i = 0; i < 10_000; i++) {
    const base = join(outDir, i === 0 ? name : `${name}-${i}`);
    if (await exists(`${base}.md`)) continue; // a stray .md of an earlier run is never replaced either
    try {
      const fh = await open(`${base}.json`, 'wx', 0o644);
      await fh.close();
      return base;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
  }
  throw new PeercacheError('ERR_REPORT', `writeReport: no free name for ${name} in ${outDir}`);
}

/** Creates outDir, picks a free name, writes <name>.svg and <name>.hlog (if any), <name>.md, <name>.json; returns their paths. */
export async function writeReport(report: Report, options: WriteOptions): Promise<WrittenPaths> {
  if (!SAFE_PART.test(options.name)) throw new PeercacheError('ERR_REPORT', `writeReport: name ${JSON.stringify(options.name)} must match [A-Za-z0-9._-]+`);
  const json = renderJson(report);
  const hlog = renderHlog(report);
  await prepareOutDir(options.outDir);
  const base = await claim(options.outDir, options.name);
  const paths: WrittenPaths = { json: `${base}.json`, md: `${base}.md`, ...(options.svg ? { svg: `${base}.svg` } : {}), ...(hlog !== null ? { hlog: `${base}.hlog` } : {}) };
  const plotFile = paths.svg ? basename(paths.svg) : undefined;
  const md =
    typeof options.markdown === 'function'
      ? options.markdown({ svg: plotFile })
      : (options.markdown ?? renderMarkdown(report, { ...options.render, plotFile }));
  try {
    if (paths.svg && options.svg) await writeAtomic(options.outDir, paths.svg, options.svg);
    if (paths.hlog && hlog !== null) await writeAtomic(options.outDir, paths.hlog, hlog);
    await writeAtomic(options.outDir, paths.md, md);
    await writeAtomic(options.outDir, paths.json, json);
  } catch (e) {
    // Give the name back; the placeholder is ours and still empty (or half-claimed).
    await rm(paths.json, { force: true });
    await rm(paths.md, { force: true });
    if (paths.svg) await rm(paths.svg, { force: true });
    if (paths.hlog) await rm(paths.hlog, { force: true });
    throw e;
  }
  await syncDir(options.outDir);
  return paths;
}
