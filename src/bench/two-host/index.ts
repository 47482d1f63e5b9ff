/** The two-host mode as the CLI runs it: `serve` on the host that publishes, `drive` on the one that measures. */
export { runServe } from './serve.js';
export { runDrive, DEFAULT_DRIVE_CONCURRENCIES, type DriveOptions } from './drive.js';
export { TwoHostConfigError, type TwoHostCommonOptions } from './params.js';
