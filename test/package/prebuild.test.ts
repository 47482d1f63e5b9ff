/** The committed prebuild: built from the committed sources, loadable on glibc 2.28, installable without a compiler. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// @ts-expect-error plain .mjs helper shared with scripts/prebuild.mjs
import { nativeSourceHash } from '../../scripts/native-sources.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const prebuildDir = join(root, 'prebuilds', 'linux-x64');
const binary = join(prebuildDir, 'peercache.node');

function maxVersion(symbols: string, prefix: string): string {
  const versions = [...symbols.matchAll(new RegExp(`\\(${prefix}_([0-9.]+)\\)`, 'g'))].map((m) => m[1]);
  return versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1) ?? '0';
}

function versionAtMost(v: string, limit: string): boolean {
  return v.localeCompare(limit, 'en', { numeric: true }) <= 0;
}

test('the committed prebuild was built from the committed native/ and binding.gyp', () => {
  const manifest = JSON.parse(readFileSync(join(prebuildDir, 'peercache.sources.json'), 'utf8')) as { sources_sha256: string };
  assert.is(
    manifest.sources_sha256,
    nativeSourceHash() as string,
    'prebuilds/linux-x64 is stale: run `npm run build:prebuild` and commit prebuilds/',
  );
});

test('the prebuild runs on glibc 2.28 / libstdc++ of GCC 8 (RHEL 8, Ubuntu 20.04, Debian 10)', () => {
  const symbols = execFileSync('objdump', ['-T', binary], { encoding: 'utf8' });
  const glibc = maxVersion(symbols, 'GLIBC');
  const glibcxx = maxVersion(symbols, 'GLIBCXX');
  assert.ok(versionAtMost(glibc, '2.28'), `needs GLIBC_${glibc}`);
  assert.ok(versionAtMost(glibcxx, '3.4.25'), `needs GLIBCXX_${glibcxx}`);
  // No hard dependency on UCX or RDMA libraries: they are dlopen()ed at run time.
  const needed = execFileSync('objdump', ['-p', binary], { encoding: 'utf8' });
  assert.not.match(needed, /NEEDED\s+lib(ucp|ucs|uct|ibverbs|rdmacm)/);
});

test('npm pack, then a store-only install (no optional packages) with no compiler on PATH: load the addon, move bytes over shm, reports without vega', () => {
  const work = mkdtempSync(join(tmpdir(), 'peercache-install-'));
  try {
    const pack = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    const tarball = join(work, pack.trim().split('\n').at(-1)!);
    assert.ok(existsSync(tarball), `npm pack produced ${tarball}`);
    // A PATH with node, npm and sh (npm runs scripts through it) only: no cc, gcc, g++, make, python3.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const npmCli = join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    symlinkSync(npmCli, join(bin, 'npm'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const app = join(work, 'app');
    mkdirSync(app);
    const env = { HOME: process.env.HOME ?? work, PATH: bin, npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? work, '.npm') };
    for (const tool of ['cc', 'gcc', 'g++', 'make', 'python3']) {
      assert.ok(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status !== 0, `${tool} must not be on the install PATH`);
    }
    const install = spawnSync(join(bin, 'npm'), ['install', tarball, '--omit=optional', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, env, encoding: 'utf8' });
    assert.is(install.status, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
    const installed = join(app, 'node_modules', 'peercache');
    assert.not.ok(existsSync(join(installed, 'build')), 'nothing was compiled at install');
    assert.ok(readdirSync(join(installed, 'prebuilds', 'linux-x64')).includes('peercache.node'));
    // vega and vega-lite (~19 MB) are optional: a store-only install has neither.
    for (const plotPackage of ['vega', 'vega-lite']) assert.not.ok(existsSync(join(app, 'node_modules', plotPackage)), `${plotPackage} was installed`);
    const script = `
      import { UcxTransport, loadNative } from 'peercache/transport';
      import { PeerCacheStore } from 'peercache';
      if (typeof PeerCacheStore.open !== 'function') throw new Error('no store');
      const load = loadNative();
      if (!load.ok) throw new Error(load.error);
      if (!load.path.includes('prebuilds')) throw new Error('loaded ' + load.path);
      const a = UcxTransport.open({ protocol: 'shm' }), b = UcxTransport.open({ protocol: 'shm' });
      const region = a.allocate(1 << 20);
      region.bytes.fill(7);
      const ep = await b.connect(a.address());
      const dst = new Uint8Array(1 << 20);
      await ep.read(ep.attach(region.descriptor()), [b.register(dst)], new Float64Array([0, 0, 0, 1 << 20]), 1);
      if (!dst.every((x) => x === 7)) throw new Error('bytes differ');
      await a.close(); await b.close();
      console.log('moved', dst.length, 'bytes via', load.path);
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env, encoding: 'utf8' });
    assert.is(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /moved 1048576 bytes via .*prebuilds\/linux-x64\/peercache\.node/);
    // Without vega a report is still re-rendered: the Markdown is written, the plot is one warning line.
    const saved = join(work, 'run.json');
    copyFileSync(join(root, 'bench-results', 'hicache-suite-shm-20261125-014329.json'), saved);
    const rerender = spawnSync(process.execPath, [join(installed, 'dist', 'cli', 'peercache-bench.js'), 'report', saved, '--write'], { cwd: app, env, encoding: 'utf8' });
    assert.is(rerender.status, 0, `${rerender.stdout}\n${rerender.stderr}`);
    assert.match(rerender.stderr, /no plot: plots need the optional packages vega and vega-lite, which are not installed \(npm install vega vega-lite\)/);
    assert.not.match(rerender.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(existsSync(join(work, 'run.md')), 'the Markdown was written');
    assert.not.ok(existsSync(join(work, 'run.svg')), 'no SVG without vega');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
