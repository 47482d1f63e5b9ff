/**
 * The code maps match the tree: every path README.md's and docs/development.md's code-map tables
 * name exists, and every folder of src/ (and python/'s package, schema/, benchmarks/) has a row in
 * docs/development.md's map, so a folder cannot be added, moved or renamed without its line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../../', import.meta.url).pathname;

interface MapRow {
  /** The `paths` its first cell names (`a/`, `b.ts`), relative to the repository root, without a trailing slash. */
  paths: string[];
  /** The whole row: a folder named in its text (`tcp/`) is covered by it. */
  line: string;
}

/** The rows of the table under `heading` (or the file's first "what lives there" table). */
function mapRows(file: string, heading: string | null): MapRow[] {
  const text = readFileSync(join(root, file), 'utf8');
  const from = heading === null ? text.indexOf('| folder | what lives there |') : text.indexOf(`\n${heading}\n`);
  assert.ok(from >= 0, `${file}: no code map (${heading ?? 'folder table'})`);
  const rows: MapRow[] = [];
  let inTable = false;
  for (const line of text.slice(from).split('\n').slice(1)) {
    if (line.startsWith('|')) {
      inTable = true;
      const cell = line.split('|')[1].trim();
      if (cell !== 'folder' && !/^-+$/.test(cell)) rows.push({ paths: [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1].replace(/\/$/, '')), line });
    } else if (inTable) break;
  }
  assert.ok(rows.length >= 5, `${file}: ${rows.length} code-map rows`);
  return rows;
}

const maps = {
  'README.md': mapRows('README.md', null),
  'docs/development.md': mapRows('docs/development.md', '## Code map'),
};

test('every path a code map names exists', () => {
  const missing: string[] = [];
  for (const [file, rows] of Object.entries(maps)) {
    for (const p of rows.flatMap((r) => r.paths)) if (!existsSync(join(root, p))) missing.push(`${file}: ${p}`);
  }
  assert.equal(missing, []);
});

test("every source folder has a row in docs/development.md's code map", () => {
  const rows = maps['docs/development.md'];
  const folders: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(root, dir))) {
      if (!statSync(join(root, dir, name)).isDirectory()) continue;
      folders.push(`${dir}/${name}`);
      walk(`${dir}/${name}`);
    }
  };
  walk('src');
  // A folder is covered by its own row, or by its parent's row naming it (`tcp/` in transport's).
  const rowOf = (folder: string): MapRow | undefined => rows.find((r) => r.paths.includes(folder));
  const uncovered = folders.filter((f) => {
    if (rowOf(f)) return false;
    const slash = f.lastIndexOf('/');
    return !rowOf(f.slice(0, slash))?.line.includes(`\`${f.slice(slash + 1)}/\``);
  });
  assert.equal(uncovered, []);
  for (const top of ['native', 'python/peercache_sglang', 'schema', 'benchmarks', 'scripts', 'test']) assert.ok(rowOf(top), `no row for ${top}/`);
});

test.run();
