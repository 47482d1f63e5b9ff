/**
 * The layering of src/ (.dependency-cruiser.cjs says what and why): no import circle; cli ->
 * bench -> store -> transport, never back, the sidecar beside bench; the shared top-level modules
 * import no layer; another layer's sub-folder (store/directory/, bench/report/, ...) only through
 * its index.ts. dependency-cruiser reads the real imports (type-only and dynamic ones included);
 * a violation fails with the rule, the import and why. ~4 s.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type IForbiddenRuleType, type IViolation } from 'dependency-cruiser';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const root = fileURLToPath(new URL('..', import.meta.url));
const config = createRequire(import.meta.url)('../.dependency-cruiser.cjs') as { forbidden: IForbiddenRuleType[]; options: ICruiseOptions };

function describe(v: IViolation): string {
  const rule = config.forbidden.find((r) => r.name === v.rule.name);
  const path = v.cycle ? [v.from, ...v.cycle.map((c) => c.name)].join(' -> ') : `${v.from} -> ${v.to}`;
  return `${v.rule.name}: ${path}${rule?.comment ? ` (${rule.comment})` : ''}`;
}

test('src/ keeps its layers: no circle, no import up a layer, no reaching into another layer\'s folder', async () => {
  process.chdir(root); // the rules' paths are relative to the checkout
  const tsConfig = extractTSConfig('tsconfig.json');
  const result = await cruise(['src'], { ...config.options, validate: true, ruleSet: { forbidden: config.forbidden } }, undefined, { tsConfig });
  if (typeof result.output === 'string') throw new Error('dependency-cruiser returned text, not a cruise result');
  const { summary, modules } = result.output;
  // The cruise saw the real tree: every layer and its imports (a wrong option would find nothing to check).
  assert.ok(modules.length > 100, `only ${modules.length} modules cruised`);
  for (const layer of ['transport', 'store', 'bench', 'sidecar', 'cli']) assert.ok(modules.some((m) => m.source.startsWith(`src/${layer}/`)), `no module of src/${layer}/ cruised`);
  assert.ok((summary.totalDependenciesCruised ?? 0) > 400, `only ${summary.totalDependenciesCruised} imports cruised`);
  const found = summary.violations.map(describe);
  assert.ok(found.length === 0, `${found.length} layering violation(s):\n${found.join('\n')}`);
});

test.run();
