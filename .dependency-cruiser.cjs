/**
 * The layering of src/, checked by test/layering.test.ts (part of `npm test`) and by hand with
 * `npx depcruise src`. Data flows cli -> bench -> store -> transport -> native, never back;
 * the sidecar sits beside bench (it uses the store, never the benchmarks or the CLI).
 *
 * What counts as a folder's internals: the files in a layer's sub-folders (store/directory/,
 * bench/report/, transport/tcp/, ...). A module outside such a folder enters it only through its
 * index.ts, which names what the folder offers. A layer's own top-level files are its modules for
 * the layers above (store may import transport/types.ts directly); the package's entry points
 * (src/index.ts, and src/bench/index.ts, src/transport/index.ts: `peercache/bench`,
 * `peercache/transport`) name their exports one by one from wherever they live.
 *
 * Type-only imports count too (tsPreCompilationDeps): a circle of types is still a circle.
 */
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

const LAYERS = ['transport', 'store', 'bench', 'sidecar', 'cli'];

/** Sub-folders of the layers (src/<layer>/<sub>/), found on disk, so a new folder is covered without editing this file. */
function subFolders() {
  const out = [];
  for (const layer of LAYERS) {
    const dir = join(__dirname, 'src', layer);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) if (statSync(join(dir, name)).isDirectory()) out.push(`src/${layer}/${name}`);
  }
  return out;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const layerRule = (layer, forbidden, why) => ({
  name: `${layer}-not-up`,
  comment: why,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${forbidden.join('|')})/` },
});

const ENTRY_POINTS = '^src/(index|bench/index|transport/index)\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import circle in src/ (type-only and dynamic imports included).',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    layerRule('transport', ['store', 'bench', 'cli', 'sidecar'], 'The transport is the bottom layer: it knows nothing of the store, the benchmarks, the CLI or the sidecar.'),
    layerRule('store', ['bench', 'cli', 'sidecar'], 'The store sits on the transport only.'),
    layerRule('bench', ['cli', 'sidecar'], 'The benchmarks use the store and the transport, never the CLI or the sidecar.'),
    layerRule('sidecar', ['bench', 'cli'], 'The sidecar serves the store to SGLang; it uses no benchmark code and no CLI code.'),
    {
      name: 'shared-modules-import-no-layer',
      comment: 'The shared top-level modules (errors, log, version, tls, framing) sit under every layer: they import none.',
      severity: 'error',
      from: { path: '^src/[^/]+\\.ts$', pathNot: '^src/index\\.ts$' },
      to: { path: `^src/(${LAYERS.join('|')})/` },
    },
    {
      name: 'src-imports-no-tests-or-scripts',
      comment: 'The package does not depend on its tests, benchmarks or tooling.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|benchmarks|scripts)/' },
    },
    ...subFolders().map((folder) => ({
      name: `into-${folder.slice(4).replace(/\//g, '-')}-via-index`,
      comment: `${folder}/ is internal to its layer: from another layer, import ${folder}/index.ts (${existsSync(join(__dirname, folder, 'index.ts')) ? 'it exists' : 'create it, naming what the folder offers'}).`,
      severity: 'error',
      from: { path: '^src/', pathNot: [`^${escape(folder.split('/').slice(0, 2).join('/'))}/`, ENTRY_POINTS] },
      to: { path: `^${escape(folder)}/`, pathNot: `^${escape(folder)}/index\\.ts$` },
    })),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js'] },
    moduleSystems: ['es6', 'cjs'],
  },
};
