/** The report as the CLI uses it: its types, rendering (console, Markdown, JSON, CSV, HdrHistogram log, plot), writing, loading, diff and merge. */
export type { Report, Row } from './types.js';
export { fixed, humanCount } from './format.js';
export { renderConsole, renderJson, renderMarkdown, gbpsCell, latencyPer } from './render.js';
export { plotReport } from './plot.js';
export { renderCsv, rowRecords } from './csv.js';
export { renderHlog } from './hlog.js';
export { artifactName, describeFsError, OutDirError, prepareOutDir, removeCreatedDirs, writeReport, type ArtifactKind, type WrittenPaths } from './write.js';
export { loadReport, ReportInputError } from './load.js';
export { diffRecords, diffReports, renderDiffMarkdown } from './diff.js';
export { mergeReports } from './merge-runs.js';
