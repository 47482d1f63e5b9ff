/**
 * The benchmark report model. Its shapes are generated from `schema/report.schema.json`
 * (schema_version 1) into report.generated.ts by `npm run gen:types`, never written by hand; this
 * file names them and adds what only TypeScript needs: the constants, the named unions, and meta's
 * open part typed as JSON. Row keeps the original PeerCache `BenchResult` field names and order (so
 * existing tooling keeps reading it), then appends typed fields. Every latency is in µs and is
 * `null`, never NaN, when there was no sample; rates are decimal (10^9 bytes = 1 GB).
 */
import type { Protocol } from '../../transport/types.js';
import type { Layout } from '../../store/host-pool.js';
import type * as Generated from './report.generated.js';

export const REPORT_SCHEMA_ID = 'peercache-bench/report' as const;
export const REPORT_SCHEMA_VERSION = 1 as const;
export const TOOL_NAME = 'peercache-bench' as const;
/** Carried by the banner, the Markdown header and every row note of a smoke (tcp) run. */
export const SMOKE_LABEL = 'smoke — not publishable';

export type { Row, Interval, Host, Manifest } from './report.generated.js';
type Row = Generated.Row;

export type System = Row['system'];
/** "" for rows that are not one HiCache operation (e.g. Mooncake's transfer-engine). */
export type RowOp = Row['op'];
/** Where a row sits in a run: the latency baseline, a point of a sweep, or a single measurement. */
export type RowPhase = Row['phase'];
/** What one latency sample times: a whole batch call, one page (batch 1), one transport read, or one prefetch request. */
export type LatUnit = Row['lat_unit'];
export type Mode = MetaCore['mode'];
export type { Layout };

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type Tool = Generated.Report['tool'];

/** The run's named parameters, as the schema lists them (Meta adds the open part). */
export type MetaCore = Generated.Meta;

/**
 * The run's parameters. Open: subcommands add their own keys (the schema allows any), typed here
 * as JSON values so that nothing a JSON file cannot hold is put in.
 */
export interface Meta extends MetaCore {
  [key: string]: JsonValue | undefined;
}

export interface Report extends Omit<Generated.Report, 'meta'> {
  meta: Meta;
}

// The schema's enums and consts and the code's own names for them must agree: a change on one side
// alone fails the typecheck here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type ReportSchemaAgreement = [
  Holds<Same<Row['protocol'], Protocol>>,
  Holds<Same<MetaCore['protocol'], Protocol>>,
  Holds<Same<NonNullable<MetaCore['layout']>, Layout>>,
  Holds<Same<Report['schema'], typeof REPORT_SCHEMA_ID>>,
  Holds<Same<Report['schema_version'], typeof REPORT_SCHEMA_VERSION>>,
  Holds<Same<Tool['name'], typeof TOOL_NAME>>,
];
