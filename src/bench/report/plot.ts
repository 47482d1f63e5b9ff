/** The sweep plot (filled in by the plotting step). */
import type { Report } from './types.js';

export async function plotReport(_report: Report): Promise<string | undefined> {
  return undefined;
}
