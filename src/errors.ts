/**
 * The errors peercache throws on purpose: each has a stable `code`. An error about options names
 * them as `{option}` placeholders in its template: the library's message says the option
 * (`maxBytes`), and the CLI — the one layer that knows flags — renders the same template with its
 * flags (`--max-bytes`). So no layer below cli/ gives flag advice.
 */
/**
 * Every code a peercache error carries, with what it means: one closed vocabulary for the library,
 * the transports (the native addon's codes included) and the directory. docs/errors.md lists them
 * (a test keeps the two equal). The sidecar's wire codes are their own list
 * (schema/sidecar-wire.json): they cross a process boundary.
 */
export const ERROR_CODES = {
  ERR_CONFIG: 'a bad option value or combination: nothing was opened or measured',
  ERR_INVALID_ARG: 'a bad argument to a call (a key, a range, an index, a size)',
  ERR_CLOSED: 'the store, transport, endpoint or directory client was closed',
  ERR_TIMEOUT: 'a deadline passed before the answer came',
  ERR_AUTH_REQUIRED: 'a directory on a non-loopback address needs a token (or insecure: true)',
  ERR_AUTH: 'the directory refused the token, certificate or password',
  ERR_ACCESS_DENIED: "a tenant's request touched keys outside its namespace",
  ERR_PROTOCOL_UNAVAILABLE: 'the protocol asked for cannot run on this host (no RDMA device, no UCX)',
  ERR_NO_NATIVE: 'the native addon could not be loaded',
  ERR_NO_UCX: 'the UCX library could not be loaded',
  ERR_UCX: 'UCX reported an error',
  ERR_MAP: 'memory could not be mapped or registered with the data plane',
  ERR_REGISTER: 'a region could not be registered with the data plane',
  ERR_ALLOC: 'memory for a published region could not be allocated',
  ERR_NOT_SHARED_MEMORY: 'a file given as a pool is not shared memory (memfd, tmpfs, hugetlbfs)',
  ERR_BAD_ADDRESS: "a peer's worker address is malformed or from another UCX",
  ERR_BAD_RKEY: "a peer's region descriptor or rkey is malformed or names memory it cannot have",
  ERR_OUT_OF_RANGE: 'a READ or WRITE outside the region it names',
  ERR_READ_ONLY: 'a WRITE into a region published read-only',
  ERR_CONNECT: 'a connection to a peer could not be made',
  ERR_TRANSFER: 'a READ or WRITE failed on its endpoint',
  ERR_DIRECTORY: 'a directory operation failed',
  ERR_DIRECTORY_PROTOCOL: 'the directory (or Redis) answered something malformed',
  ERR_CONNECTION_LOST: 'the connection to the directory was lost (it reconnects)',
  ERR_UNREACHABLE: 'the directory is known unreachable: calls fail fast until it answers again',
  ERR_REFUSED: 'the directory refused the request (a rule of membership or ownership)',
  ERR_TOO_MANY: 'more entries than a limit allows (a replica, a node)',
  ERR_OVERSIZED: 'a frame or answer larger than its limit',
  ERR_SHUTDOWN: 'the directory server is shutting down',
  ERR_REDIS: 'Redis reported an error',
  ERR_BAD_FRAME: 'a frame that cannot be read (version, kind, size, JSON, message shape)',
  ERR_PLOT_UNAVAILABLE: 'plots need the optional packages vega and vega-lite',
  ERR_CHILD_PROCESS: 'a process of the run (producer, drive process, Mooncake) failed to start or exited early',
  ERR_ABORTED: 'stopped by the user (Ctrl-C) or a signal',
  ERR_WORKERS: "a row's workers did not all connect or finish",
  ERR_REPORT: 'a report could not be named, written or read',
  ERR_USAGE: 'a bad command-line flag or argument (the CLI exits 2)',
  ERR_DIST_MISMATCH: "drive's settings differ from serve's (page size, layout, working set, protocol)",
  ERR_SERVE_UNAVAILABLE: 'no serve node answered at the discovery address in time',
  // The sidecar's error frames (schema/sidecar-wire.json): what a rank's adapter sees as SidecarError.code.
  ERR_BAD_REQUEST: 'the sidecar refused a request (a bad field, a range outside the pool, too many keys)',
  ERR_POOL_GONE: 'the pool a request names is not registered, or was dropped because its file shrank',
  ERR_TOO_LATE: 'the request reached the sidecar too close to its deadline: not started',
  ERR_REQUEST_FAILED: 'the sidecar failed a request for a reason of its own (logged there)',
  ERR_NO_HELLO: 'the first request on a sidecar connection was not hello',
  ERR_WRONG_PROTOCOL: 'hello named a protocol the sidecar does not speak',
  ERR_TOO_MANY_CONNECTIONS: 'the sidecar serves its limit of connections',
  ERR_SLOW_READER: 'a client left its answers unread past the limit',
  ERR_IDLE: 'a client said nothing within the deadline',
  ERR_BAD_LANE: 'a lane request the sidecar cannot read',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** True for a string that is one of the codes (native and wire codes are checked with it). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

const PLACEHOLDER = /\{([A-Za-z][A-Za-z0-9]*)\}/g;

/** The template with each `{option}` written by `name`. */
export function fillOptions(template: string, name: (option: string) => string): string {
  return template.replace(PLACEHOLDER, (_, option: string) => name(option));
}

export class PeercacheError extends Error {
  override name = 'PeercacheError';
  readonly code: ErrorCode;
  /** The message with `{option}` placeholders; `message` names the options as they are. */
  readonly template: string;

  constructor(code: ErrorCode, template: string, options?: ErrorOptions) {
    super(fillOptions(template, (option) => option), options);
    this.code = code;
    this.template = template;
  }

  /** The message with each option written as `name(option)` says (the CLI: its flag). */
  render(name: (option: string) => string): string {
    return fillOptions(this.template, name);
  }
}

/** A bad option value or combination: nothing was measured or opened. The CLI exits 2. */
export class ConfigError extends PeercacheError {
  override name = 'ConfigError';
  constructor(template: string, options?: ErrorOptions) {
    super('ERR_CONFIG', template, options);
  }
}

/** Any error's text, with the options a PeercacheError names written by `name` (the CLI: its flags). */
export function errorText(err: unknown, name: (option: string) => string): string {
  return err instanceof PeercacheError ? err.render(name) : err instanceof Error ? err.message : String(err);
}

/** A bad argument to a call (a key, a range, an index, a size): ERR_INVALID_ARG. */
export class InvalidArgumentError extends PeercacheError {
  override name = 'InvalidArgumentError';
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_INVALID_ARG', message, options);
  }
}
