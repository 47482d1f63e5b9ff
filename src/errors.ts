/**
 * The errors peercache throws on purpose: each has a stable `code`. An error about options names
 * them as `{option}` placeholders in its template: the library's message says the option
 * (`maxBytes`), and the CLI — the one layer that knows flags — renders the same template with its
 * flags (`--max-bytes`). So no layer below cli/ gives flag advice.
 */
export type ErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_TIMEOUT'
  | 'ERR_AUTH_REQUIRED'
  | 'ERR_PROTOCOL_UNAVAILABLE'
  | 'ERR_PLOT_UNAVAILABLE'
  // The transport's own (see transport/types.ts and native/): a stable code per failure.
  | (string & {});

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
