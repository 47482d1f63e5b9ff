/**
 * Loads the prebuilt N-API addon (node-gyp-build: build/Release, then prebuilds/<platform>-<arch>)
 * and declares its surface. The only module that touches the binary; it never throws at import:
 * a missing or broken binary becomes `NativeUnavailable`, so the package still loads (TCP only).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PeercacheError } from '../errors.js';

export interface UcxStatus {
  available: boolean;
  library: string | null;
  version: string | null;
  error: string | null;
}

export interface NativeContext {
  readonly protocol: string;
  readonly tls: string;
  readonly devices: string;
  /** A published region; peers may only READ it unless `remoteWritable`. */
  allocate(bytes: number, remoteWritable?: boolean): NativeRegion;
  /** allocate() on a libuv pool thread (the event loop stays free). */
  allocateAsync(bytes: number, remoteWritable?: boolean): Promise<NativeRegion>;
  /** `length` past the view: only inside one mapShared mapping (its first window as the view). */
  register(view: Uint8Array, length?: number): NativeRegion;
  close(): void;
}

export interface NativeRegion {
  readonly address: number;
  readonly length: number;
  readonly published: boolean;
  readonly freed: boolean;
  /** Present on published regions only: the whole region, or `windows` when it is over 4 GiB. */
  readonly buffer?: ArrayBuffer;
  readonly windows?: ArrayBuffer[];
  descriptor(): Uint8Array;
  free(): void;
}

export interface NativeRemote {
  readonly base: number;
  readonly length: number;
}

export interface NativeEndpoint {
  attach(descriptor: Uint8Array): NativeRemote;
  read(remote: NativeRemote, locals: NativeRegion[], ops: Float64Array, count: number, fenceAt: number, timeoutMs: number): Promise<void>;
  readSync(remote: NativeRemote, locals: NativeRegion[], ops: Float64Array, count: number, fenceAt: number, timeoutMs: number): void;
  write(remote: NativeRemote, locals: NativeRegion[], ops: Float64Array, count: number, fenceAt: number, timeoutMs: number): Promise<void>;
  writeSync(remote: NativeRemote, locals: NativeRegion[], ops: Float64Array, count: number, fenceAt: number, timeoutMs: number): void;
  info(): string;
  close(): void;
  readonly failure: string | null;
  readonly closed: boolean;
}

export interface NativeWorker {
  address(): Uint8Array;
  connect(address: Uint8Array, options?: { peerErrors?: boolean }): NativeEndpoint;
  close(): void;
  readonly pending: number;
}

export interface NativeBinding {
  readonly abiVersion: number;
  ucx(): UcxStatus;
  describeHost(): string;
  addressOf(view: ArrayBufferView): number;
  /** Maps a file (e.g. /proc/<pid>/fd/<n> of a memfd) MAP_SHARED read-write; unmapped when the buffer is collected. */
  /** One buffer up to 4 GiB; over that, [its first window] (sharedMappingWindow makes the others). */
  mapShared(path: string, length: number): ArrayBuffer | ArrayBuffer[];
  /** Window `index` of the mapShared mapping whose first window is `first`. */
  sharedMappingWindow(first: ArrayBuffer, index: number): ArrayBuffer;
  /** Bytes between the starts of mapShared's windows (a mapping over 4 GiB comes as an array of them). */
  sharedWindowStride: number;
  /** Whether the file under a mapShared buffer shrank: a page past its end was touched (and replaced by anonymous memory), or (checkFile) it is now shorter than the mapping. */
  sharedMappingShrunk(buffer: ArrayBuffer, checkFile: boolean): boolean;
  Context: new (options: { protocol: string; devices?: readonly string[]; ibPort?: number; gidIndex?: number; tls?: string }) => NativeContext;
  Worker: new (context: NativeContext) => NativeWorker;
}

export const EXPECTED_ABI_VERSION = 5;

export type NativeLoad =
  | { ok: true; binding: NativeBinding; path: string }
  | { ok: false; error: string };

export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

let cached: NativeLoad | undefined;

export function loadNative(): NativeLoad {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
    const path = nodeGypBuild.resolve(packageRoot);
    const binding = require(path) as NativeBinding;
    if (binding.abiVersion !== EXPECTED_ABI_VERSION) {
      cached = {
        ok: false,
        error: `the native addon at ${path} has interface version ${binding.abiVersion}, this package needs ${EXPECTED_ABI_VERSION}: rebuild it (npm run build:native) or reinstall peercache`,
      };
    } else {
      cached = { ok: true, binding, path };
    }
  } catch (err) {
    cached = { ok: false, error: `the peercache native addon could not be loaded: ${(err as Error).message.split('\n')[0]}` };
  }
  return cached;
}

/** The binding, or an Error that says why it is unavailable. */
export function requireNative(): NativeBinding {
  const load = loadNative();
  if (!load.ok) throw new PeercacheError('ERR_NO_NATIVE', load.error);
  return load.binding;
}
