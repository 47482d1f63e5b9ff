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

/** The first-column cells of the table under `heading` (or the file's first "what lives there" table). */
function mapRows(file: string, heading: string | null): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const from = heading === null ? text.indexOf('| folder | what lives there |') : text.indexOf(`\n${heading}\n`);
  assert.ok(from >= 0, `${file}: no code map (${heading ?? 'folder table'})`);
  const rows: string[] = [];
  let inTable = false;
  for (const line of text.slice(from).split('\n').slice(1)) {
    if (line.startsWith('|')) {
      inTable = true;
      const cell = line.split('|')[1].trim();
      if (cell !== 'folder' && !/^-+$/.test(cell)) rows.push(cell);
    } else if (inTable) break;
  }
  assert.ok(rows.length >= 5, `${file}: ${rows.length} code-map rows`);
  return rows;
}

/** The `paths` a cell names (`a/`, `b.ts`), relative to the repository root. */
const pathsOf = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

const maps = {
  'README.md': mapRows('README.md', null),
  'docs/development.md': mapRows('docs/development.md', '## Code map'),
};

test('every path a code map names exists', () => {
  const missing: string[] = [];
  for (const [file, rows] of Object.entries(maps)) {
    for (const p of rows.flatMap(pathsOf)) if (!existsSync(join(root, p))) missing.push(`${file}: ${p}`);
  }
  assert.equal(missing, []);
});

test("every source folder has a row in docs/development.md's code map", () => {
  const named = new Set(maps['docs/development.md'].flatMap(pathsOf).map((p) => p.replace(/\/$/, '')));
  const folders: string[] = [];
  const walk = (dir: string): void => {
    folders.push(dir);
    for (const name of readdirSync(join(root, dir))) {
      if (statSync(join(root, dir, name)).isDirectory()) walk(`${dir}/${name}`);
    }
  };
  for (const name of readdirSync(join(root, 'src'))) if (statSync(join(root, 'src', name)).isDirectory()) walk(`src/${name}`);
  // A folder is covered by its own row, or by its parent's row naming it (`tcp/` in transport's).
  const rowOf = (folder: string): string | undefined =>
    maps['docs/development.md'].find((cell) => pathsOf(cell).some((p) => p.replace(/\/$/, '') === folder));
  const devLines = readFileSync(join(root, 'docs/development.md'), 'utf8').split('\n');
  const uncovered = folders.filter((f) => {
    if (named.has(f)) return false;
    const parentRow = rowOf(f.slice(0, f.lastIndexOf('/')));
    const leaf = f.slice(f.lastIndexOf('/') + 1);
    return parentRow === undefined || !devLines.some((l) => l.startsWith(`| ${parentRow} |`) && l.includes(`\`${leaf}/\``));
  });
  assert.equal(uncovered, []);
  for (const top of ['native', 'python/peercache_sglang', 'schema', 'benchmarks', 'scripts', 'test']) assert.ok(named.has(top), `no row for ${top}/`);
});

test.run();
