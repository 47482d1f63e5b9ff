/** A live progress line on a TTY (stderr); silent when stderr is not a terminal. */
import type { RowProgress } from '../bench/engine/row.js';

const human = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : n.toFixed(0));

export function progressLine(p: RowProgress): string {
  const stage = p.stage === 'starting' ? 'connecting' : p.stage === 'warmup' ? 'warming up' : p.stage === 'measure' ? 'measuring' : 'done';
  const rate = p.stage === 'measure' ? `  ${human(p.pagesPerS)} pages/s${p.gbps > 0 ? `  ${p.gbps.toFixed(2)} GB/s` : ''}` : '';
  return `[row ${p.row + 1}/${p.rows}] ${p.op} x${p.threads}  ${stage}  ${p.elapsedS.toFixed(1)} s, ${p.remainingS.toFixed(1)} s left${rate}`;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): { update(p: RowProgress): void; clear(): void } {
  const tty = stream.isTTY === true;
  let shown = false;
  return {
    update(p) {
      if (!tty) return;
      stream.write(`\r\x1b[2K${progressLine(p)}`);
      shown = true;
    },
    clear() {
      if (tty && shown) stream.write('\r\x1b[2K');
      shown = false;
    },
  };
}

/** ANSI styling only on a terminal and only when NO_COLOR is unset or empty (no-color.org). */
export function colorFor(isTty: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTty && !env.NO_COLOR;
}
