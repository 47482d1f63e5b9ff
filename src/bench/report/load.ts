/** Reading report artifacts back (for `peercache-bench report`): one-line errors for bad input. */
import { readFile } from 'node:fs/promises';
import { REPORT_SCHEMA_ID, REPORT_SCHEMA_VERSION, type Report } from './types.js';
import { PeercacheError } from '../../errors.js';

/** A file that is not a readable peercache-bench report, or inputs that do not fit together. */
export class ReportInputError extends PeercacheError {
  override name = 'ReportInputError';
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_REPORT', message, options);
  }
}

export async function loadReport(path: string): Promise<Report> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ReportInputError(`${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ReportInputError(`${path}: not JSON (${(e as Error).message})`);
  }
  const r = data as Partial<Report> | null;
  if (!r || typeof r !== 'object' || r.schema !== REPORT_SCHEMA_ID || !Array.isArray(r.results) || !r.meta) {
    throw new ReportInputError(`${path}: not a peercache-bench report (schema "${REPORT_SCHEMA_ID}" expected)`);
  }
  if (r.schema_version !== REPORT_SCHEMA_VERSION) {
    throw new ReportInputError(`${path}: schema_version ${String(r.schema_version)}, this version reads ${REPORT_SCHEMA_VERSION}`);
  }
  return r as Report;
}

/** "field (a vs b)" for each of `fields` whose values differ between the two metas. */
export function differingFields(a: Record<string, unknown>, b: Record<string, unknown>, fields: readonly string[]): string[] {
  const show = (v: unknown) => (v === undefined ? 'absent' : JSON.stringify(v));
  return fields.filter((f) => JSON.stringify(a[f]) !== JSON.stringify(b[f])).map((f) => `${f} (${show(a[f])} vs ${show(b[f])})`);
}
