/**
 * The peercache-bench program: dispatches subcommands (citty, loaded lazily), rejects unknown
 * flags (citty accepts them silently), and turns errors into one line and an exit code:
 * 2 for usage errors, 1 for failures. Never process.exit here: tests and the bin share it.
 */
import { runCommand, type ArgsDef, type CommandDef, type CommandMeta } from 'citty';
import { packageVersion } from '../version.js';
import { UsageError } from './parse.js';
import type { CommandResult } from './shared.js';

type Loader = () => Promise<CommandDef<ArgsDef>>;

/** Commands load on use, so `--help` and one command do not load every module. */
function lazy(file: string, exported: string): Loader {
  return async () => {
    const mod = (await import(new URL(`./commands/${file}.js`, import.meta.url).href)) as Record<string, CommandDef<ArgsDef>>;
    return mod[exported];
  };
}

const commands: Record<string, { summary: string; load: Loader }> = {
  latency: { summary: 'single in-flight op tail (concurrency 1, batch 1): per-page latency of get, set, exists', load: lazy('hicache', 'latency') },
  throughput: { summary: 'sustained throughput and tail at one concurrency', load: lazy('hicache', 'throughput') },
  saturation: { summary: 'throughput/latency curve over a concurrency sweep, and the PEAK', load: lazy('hicache', 'saturation') },
  suite: { summary: 'the full baseline: latency + get/set/exists saturation', load: lazy('hicache', 'suite') },
  micro: { summary: 'the bare data-plane READ (and the store get path) between two processes', load: lazy('micro', 'default') },
  mooncake: { summary: "wraps Mooncake's official transfer_engine_bench", load: lazy('mooncake', 'default') },
  compare: { summary: 'peercache micro vs Mooncake at matched block sizes', load: lazy('compare', 'default') },
  serve: { summary: 'two hosts: publish a working set and wait for drivers', load: lazy('two-host', 'serve') },
  drive: { summary: 'two hosts: sweep get/exists against a serve node', load: lazy('two-host', 'drive') },
  report: { summary: 'render, diff (a.json b.json) or --merge saved JSON reports: Markdown, CSV, JSON, plot', load: lazy('report', 'default') },
  doctor: { summary: 'what this host can run: addon, UCX, transports, RDMA devices, each protocol', load: lazy('doctor', 'default') },
};

export interface ProgramIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const defaultIo: ProgramIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function rootUsage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    `peercache-bench ${packageVersion()}: publishable KV-page transfer benchmarks for disaggregated LLM serving`,
    '',
    'USAGE peercache-bench <command> [options]      (peercache-bench <command> --help for its options)',
    '',
    'COMMANDS',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Headline numbers need --protocol rdma on a host with an RDMA NIC; --protocol shm measures the same',
    'one-sided path between processes on one host; --protocol tcp is a smoke test, never publishable.',
    'Results: ./peercache-bench-results/<name>.{json,md,svg}; peercache-bench report renders, diffs or merges them. Start with: peercache-bench doctor',
    '',
  ].join('\n');
}

/** A plain, aligned help text (citty's colours codes even when stdout is not a terminal). */
async function renderHelp(bin: string, name: string, command: CommandDef<ArgsDef>, args: ArgsDef): Promise<string> {
  const meta = (typeof command.meta === 'function' ? await (command.meta as () => CommandMeta | Promise<CommandMeta>)() : await command.meta) ?? {};
  const rows = Object.entries(args).map(([flag, def]) => {
    const hint = def.type === 'boolean' ? '' : ` <${'valueHint' in def && def.valueHint ? def.valueHint : flag.replace(/^.*-/, '')}>`;
    // A description that already explains its default (e.g. "(default: any)") is not given a second one.
    const dflt =
      def.default === undefined || def.default === '' || def.type === 'boolean' || /\(default:/.test(def.description ?? '') ? '' : ` (default: ${String(def.default)})`;
    const choices = 'options' in def && def.options ? ` [${def.options.join('|')}]` : '';
    return [`--${flag}${hint}`, `${def.description ?? ''}${choices}${dflt}`] as const;
  });
  const width = Math.min(34, Math.max(...rows.map(([f]) => f.length)));
  const lines = [`${bin} ${name}: ${meta.description ?? ''}`, '', `USAGE ${bin} ${name} [options]`, '', 'OPTIONS'];
  for (const [flag, text] of rows) {
    lines.push(flag.length > width ? `  ${flag}\n  ${' '.repeat(width)}  ${text}` : `  ${flag.padEnd(width)}  ${text}`);
  }
  return lines.join('\n') + '\n';
}

/** Names a command accepts: --flag, --no-flag for booleans, camelCase twins, aliases. */
function acceptedFlags(args: ArgsDef): Set<string> {
  const names = new Set<string>(['help', 'h']);
  for (const [name, def] of Object.entries(args)) {
    const camel = name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    for (const n of [name, camel]) {
      names.add(n);
      if (def.type === 'boolean') names.add(`no-${n}`);
    }
    const aliases = 'alias' in def && def.alias ? ([] as string[]).concat(def.alias) : [];
    for (const a of aliases) names.add(a);
  }
  return names;
}

/** Commands that take arguments besides flags (report's files); any other command refuses them. */
const TAKES_OPERANDS = new Set(['report']);

function checkFlags(name: string, args: ArgsDef, rawArgs: string[]): void {
  const accepted = acceptedFlags(args);
  let valueNext = false;
  for (const token of rawArgs) {
    if (token === '--') break;
    if (valueNext) {
      valueNext = false;
      continue;
    }
    const m = /^--?([^=]+)/.exec(token);
    if (!m || /^-\d/.test(token)) {
      // A word that is no flag's value was silently ignored (exit 0): now a usage error.
      if (!TAKES_OPERANDS.has(name)) throw new UsageError(`unexpected argument '${token}' for '${name}' (it takes only --options)`);
      continue;
    }
    const flag = m[1];
    if (!accepted.has(flag)) {
      const known = [...accepted].filter((a) => a.length > 1 && !/[A-Z]/.test(a));
      const near = known.find((k) => k.startsWith(flag.slice(0, 4)) || flag.startsWith(k.slice(0, 4)));
      throw new UsageError(`unknown option ${token.split('=')[0]} for '${name}'${near ? ` (did you mean --${near}?)` : ''}`);
    }
    const def = args[flag] ?? args[flag.replace(/^no-/, '')] ?? Object.values(args).find((d) => 'alias' in d && d.alias && ([] as string[]).concat(d.alias).includes(flag));
    if (def && def.type !== 'boolean' && !token.includes('=')) {
      const next = rawArgs[rawArgs.indexOf(token) + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`option ${token} needs a value`);
      valueNext = true;
    }
  }
}

/** A program: its executable's name, its commands and its usage text. */
export interface ProgramSpec {
  bin: string;
  commands: Record<string, { summary: string; load: Loader }>;
  usage: () => string;
}

const benchProgram: ProgramSpec = { bin: 'peercache-bench', commands, usage: rootUsage };

export async function main(argv: string[], io: ProgramIo = defaultIo): Promise<number> {
  return runProgram(benchProgram, argv, io);
}

/** Loads a command of src/cli/commands/ on use (for other programs' specs). */
export const lazyCommand = lazy;

export async function runProgram(spec: ProgramSpec, argv: string[], io: ProgramIo = defaultIo): Promise<number> {
  const { bin, commands } = spec;
  const name = argv.find((a) => !a.startsWith('-'));
  if (!name) {
    if (argv.includes('--version') || argv.includes('-v')) {
      io.out(`${packageVersion()}\n`);
      return 0;
    }
    // No command is a usage error (exit 2, usage on stderr); --help asks for it (exit 0, stdout).
    if (argv.includes('--help') || argv.includes('-h')) {
      io.out(spec.usage());
      return 0;
    }
    io.err(spec.usage());
    return 2;
  }
  const entry = commands[name];
  if (!entry) {
    io.err(`${bin}: unknown command '${name}'. Commands: ${Object.keys(commands).join(', ')}\n`);
    return 2;
  }
  const rawArgs = argv.filter((a, i) => i !== argv.indexOf(name));
  let command: CommandDef<ArgsDef>;
  try {
    command = await entry.load();
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      // Every command ships; a missing module is a broken install, not a missing feature.
      io.err(`${bin} ${name}: this install is incomplete (${(err as Error).message.split('\n')[0]}); reinstall peercache\n`);
      return 1;
    }
    throw err;
  }
  const argsDef = (typeof command.args === 'function' ? await (command.args as () => ArgsDef | Promise<ArgsDef>)() : await command.args) ?? {};
  if (rawArgs.includes('--help') || rawArgs.includes('-h')) {
    io.out(await renderHelp(bin, name, command, argsDef));
    return 0;
  }
  try {
    checkFlags(name, argsDef, rawArgs);
    const { result } = await runCommand(command, { rawArgs });
    return (result as CommandResult | undefined)?.exitCode ?? 0;
  } catch (err) {
    if (err instanceof UsageError || (err as Error).name === 'UsageError' || (err as Error).name === 'CLIError') {
      io.err(`${bin} ${name}: ${(err as Error).message}\nRun '${bin} ${name} --help' for the options.\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    io.err(`${bin} ${name}: ${e.message}\n`);
    if (process.env.PEERCACHE_DEBUG) io.err(`${e.stack}\n`);
    return 1;
  }
}

/**
 * The bins' last step. A command a signal stopped during start-up may leave an allocation running
 * on a libuv pool thread (UCX writing a POSIX segment it was told to stop making), and a normal
 * exit would wait for it: libuv joins its threads at exit (20 s for 3 GiB). Then the process dies
 * of that signal at once (the shell sees the same 130/143); what the allocation made is unlinked
 * already and the kernel frees the rest with the process.
 */
export async function finish(code: number): Promise<void> {
  const signal = code === 130 ? 'SIGINT' : code === 143 ? 'SIGTERM' : null;
  if (signal) {
    const { allocationsStillRunning } = await import('../transport/ucx.js');
    if (allocationsStillRunning()) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
  }
  process.exitCode = code;
}
