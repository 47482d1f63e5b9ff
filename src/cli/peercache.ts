#!/usr/bin/env node
/** The peercache executable: long-running services (the benchmarks are peercache-bench). */
import { packageVersion } from '../version.js';
import { finish, lazyCommand, runProgram, type ProgramSpec } from './program.js';

const spec: ProgramSpec = {
  bin: 'peercache',
  commands: {
    node: { summary: 'the sidecar: the store node SGLang ranks of this host use (Unix socket; python/ adapter)', load: lazyCommand('sidecar', 'default') },
    directory: { summary: 'the directory on its own (tenants, TLS); nodes join it with --discovery-addr', load: lazyCommand('directory', 'default') },
  },
  usage: () =>
    [
      `peercache ${packageVersion()}: KV-cache store for disaggregated LLM serving`,
      '',
      'USAGE peercache <command> [options]      (peercache <command> --help for its options)',
      '',
      'COMMANDS',
      '  node       the sidecar: the store node SGLang ranks of this host use (Unix socket; python/ adapter)',
      '  directory  the directory on its own (tenants, TLS); nodes join it with --discovery-addr',
      '',
    ].join('\n'),
};

await finish(await runProgram(spec, process.argv.slice(2)));
