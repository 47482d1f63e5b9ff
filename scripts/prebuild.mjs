#!/usr/bin/env node
// Builds prebuilds/linux-x64/peercache.node with prebuildify (N-API: one binary for every
// Node >= 20) and records the source hash and the glibc floor beside it.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nativeSourceFiles, nativeSourceHash, root } from './native-sources.mjs';

const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
execFileSync(process.execPath, [join(root, 'node_modules/prebuildify/bin.js'), '--napi', '--strip'], { cwd: root, stdio: 'inherit' });
const binary = join(dir, 'peercache.node');
const symbols = execFileSync('objdump', ['-T', binary], { encoding: 'utf8' });
const versions = (prefix) =>
  [...new Set([...symbols.matchAll(new RegExp(`\\(${prefix}_([0-9.]+)\\)`, 'g'))].map((m) => m[1]))].sort((a, b) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
const manifest = {
  sources_sha256: nativeSourceHash(),
  sources: nativeSourceFiles(),
  glibc_max: versions('GLIBC').at(-1) ?? null,
  glibcxx_max: versions('GLIBCXX').at(-1) ?? null,
  built_with: { node: process.version, napi: 8 },
};
writeFileSync(join(dir, 'peercache.sources.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`prebuild: ${binary}\n${JSON.stringify(manifest, null, 2)}`);
