/**
 * `peercache/bench`: the benchmark engine as an API — `runSweep()` (what every sweep command runs),
 * its options, the report it returns, and the renderers and writer the CLI uses. The plot needs the
 * optional packages vega and vega-lite (ERR_PLOT_UNAVAILABLE without them).
 */
export { runSweep, SweepConfigError, DEFAULT_CONCURRENCIES, type SweepOptions, type HiCacheMode } from './sweep.js';
export type { ConnectionOptions } from './engine/connection.js';
export type { RunControl, RowProgress } from './engine/row.js';
export { SharedHistogram } from './histogram.js';
export { REPORT_SCHEMA_ID, REPORT_SCHEMA_VERSION, SMOKE_LABEL } from './report/types.js';
export type { Report, Row, Meta, MetaCore, Host, Tool, Manifest, Interval, RowOp, RowPhase, Mode, System, LatUnit } from './report/types.js';
export { renderConsole, renderMarkdown, renderJson, type RenderOptions } from './report/render.js';
export { plotReport, plotSpec, type PlotOptions, type PlotMarker } from './report/plot.js';
export { writeReport, prepareOutDir, artifactName, OutDirError, type WriteOptions, type WrittenPaths, type ArtifactKind } from './report/write.js';
export { loadReport, ReportInputError } from './report/load.js';
export { diffReports, renderDiffMarkdown } from './report/diff.js';
export { mergeReports } from './report/merge-runs.js';
