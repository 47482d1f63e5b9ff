/** What the CLI needs of the engine: a row's progress and control, the connection options, and the choices its flags offer. */
export type { RowProgress, RunControl } from './row.js';
export type { ConnectionOptions } from './connection.js';
export { VERIFY_MODES } from './pattern.js';
export { ARRIVAL_KINDS } from './arrival.js';
export { MIN_INTERVAL_S } from './intervals.js';
