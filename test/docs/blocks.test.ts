/**
 * The documentation's shape, checked without running anything (fast): every command block says how
 * test/docs/commands.test.ts runs it (the convention is at the top of that file), the `ci` blocks are
 * what .ci/run really runs, skipped blocks say why, the SGLang launch line names a backend class that
 * imports, every relative link and anchor resolves, and the README stays a front door.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { allBlocks, docFiles, repoRoot, SHELL_LANGS, TS_LANGS, where } from '../helpers/doc-blocks.js';

const blocks = allBlocks();
const read = (f: string) => readFileSync(join(repoRoot, f), 'utf8');

test('every command block has a valid docs-test annotation', () => {
  const missing = blocks.filter((b) => SHELL_LANGS.has(b.lang) && !b.rawAnnotation).map(where);
  assert.equal(missing, [], `command blocks without <!-- docs-test: … --> on the line above (see test/docs/commands.test.ts): ${missing.join(', ')}`);
  const bad = blocks.filter((b) => b.annotationError).map((b) => `${where(b)}: ${b.annotationError}`);
  assert.equal(bad, []);
  const untyped = blocks.filter((b) => b.lang === '' && /^\s*(npm|npx|node|peercache|python3|pip|sudo|apt-get) /m.test(b.code)).map(where);
  assert.equal(untyped, [], `blocks with commands but no language (use \`\`\`sh): ${untyped.join(', ')}`);
});

test('the parser sees the blocks: the quick start, the two-host pair, the sidecar check, skips with reasons', () => {
  const quick = blocks.find((b) => b.file === 'README.md' && b.annotation?.mode === 'checkout');
  assert.ok(quick && /peercache-bench suite/.test(quick.code), 'README quick start');
  assert.ok(blocks.some((b) => b.annotation?.host === 'A' && /serve/.test(b.code) && !b.annotation.needsRdma), 'a serve on host A that runs here');
  assert.ok(blocks.some((b) => b.annotation?.host === 'B' && /drive/.test(b.code) && !b.annotation.needsRdma), 'a drive on host B that runs here');
  assert.ok(blocks.some((b) => b.annotation?.mode === 'host' && /peercache_sglang/.test(b.code)), 'the sidecar check');
  for (const b of blocks.filter((x) => x.annotation?.mode === 'skip')) assert.ok(b.annotation!.reason!.length >= 20, where(b));
});

// Flags that change only what npm prints, not what it does.
const QUIET = /\s(--silent|-s|--no-audit|--no-fund|--quiet|-q)(?=\s|$)/g;
const normalizeNpm = (line: string) => line.replace(QUIET, '').replace(/\s+/g, ' ').trim();
/** `cmd` as a whole command in a shell line (not a prefix of a longer one: build vs build:native). */
const runs = (line: string, cmd: string) => new RegExp(`(^|[\\s;&|(])${cmd.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=$|[\\s;&|)>])`).test(line);

test('ci blocks: .ci/run runs each of their commands', () => {
  const ci = read('.ci/run')
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .map(normalizeNpm);
  const ciBlocks = blocks.filter((b) => b.annotation?.mode === 'ci');
  assert.ok(ciBlocks.length >= 1);
  for (const b of ciBlocks) {
    for (const raw of b.code.split('\n')) {
      const cmd = normalizeNpm(raw.replace(/#.*$/, ''));
      if (!cmd) continue;
      assert.ok(ci.some((l) => runs(l, cmd)), `${where(b)}: .ci/run does not run '${cmd}'`);
    }
  }
});

test('ci blocks fail when .ci/run does not run the command (the check can fail)', () => {
  const line = normalizeNpm('npm ci --no-audit --no-fund && npm run --silent build || fail');
  assert.ok(runs(line, 'npm ci'));
  assert.ok(runs(line, 'npm run build'));
  assert.not.ok(runs(line, 'npm run build:native'));
  assert.not.ok(runs(normalizeNpm('npm run --silent build:native'), 'npm run build'));
});

test('the SGLang launch line names a backend class that imports (SGLang itself is not installed here)', () => {
  const launch = blocks.find((b) => /sglang\.launch_server/.test(b.code));
  assert.ok(launch, 'docs/sglang.md has the launch line');
  const json = /--hicache-storage-backend-extra-config '([^']+)'/.exec(launch!.code)?.[1];
  assert.ok(json, 'the extra config is one quoted JSON');
  const config = JSON.parse(json!) as { module_path: string; class_name: string; backend_name: string };
  const py = spawnSync('python3', ['-c', `import importlib; m = importlib.import_module(${JSON.stringify(config.module_path)}); print(getattr(m, ${JSON.stringify(config.class_name)}).__name__)`], {
    cwd: join(repoRoot, 'python'),
    encoding: 'utf8',
  });
  assert.is(py.status, 0, py.stderr);
  assert.is(py.stdout.trim(), config.class_name);
  assert.match(launch!.code, /--hicache-storage-backend dynamic/);
});

function slug(heading: string): string {
  // GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\- _]/gu, '').replace(/ /g, '-');
}

function anchors(file: string): Set<string> {
  const text = read(file).replace(/^\s*(```|~~~)[^]*?^\s*\1\s*$/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])));
}

test('every relative link and anchor in README.md, CHANGELOG.md and docs/ resolves', () => {
  const files = [...docFiles(), 'CHANGELOG.md'];
  const broken: string[] = [];
  for (const f of files) {
    const text = read(f).replace(/^\s*(```|~~~)[^]*?^\s*\1\s*$/gm, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const url = m[1];
      if (/^[a-z]+:/.test(url)) continue;
      const [path, frag] = url.split('#');
      const target = path ? normalize(join(dirname(f), path)) : f;
      if (!existsSync(join(repoRoot, target))) broken.push(`${f}: ${url} (no ${target})`);
      else if (frag && target.endsWith('.md') && !anchors(target).has(frag)) broken.push(`${f}: ${url} (no heading #${frag} in ${target})`);
    }
  }
  assert.equal(broken, []);
});

test('the README is a front door: at most 200 lines, linking every docs/ page', () => {
  const readme = read('README.md');
  const lines = readme.split('\n').length;
  assert.ok(lines <= 200, `README.md has ${lines} lines`);
  for (const f of docFiles().filter((x) => x.startsWith('docs/'))) assert.ok(readme.includes(`](${f}`), `README links ${f}`);
  assert.ok(readme.includes('](CHANGELOG.md)'), 'README links CHANGELOG.md');
});

test("the docs' apt-get checker passes installed packages, refuses unknown ones, and installs nothing", () => {
  const checker = join(repoRoot, 'test/fixtures/docs-bin/apt-get');
  const ok = spawnSync(checker, ['install', '-y', 'libucx0'], { encoding: 'utf8' });
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /libucx0 is already installed/);
  const bad = spawnSync(checker, ['install', '-y', 'libucx0', 'peercache-no-such-package'], { encoding: 'utf8' });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /Unable to locate package peercache-no-such-package/);
  assert.is(spawnSync(checker, ['update'], { encoding: 'utf8' }).status, 0);
  assert.is.not(spawnSync(checker, ['remove', 'libucx0'], { encoding: 'utf8' }).status, 0);
});

test('ts blocks are library examples (run by typescript.test.ts), shell blocks commands', () => {
  assert.ok(blocks.some((b) => TS_LANGS.has(b.lang)));
});

test.run();
