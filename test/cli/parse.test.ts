import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  UsageError, parseConcurrencies, parseEnum, parseNameList, parseNonNegativeNumber, parsePositiveInt,
  parseSeconds, parseSize, parseSizeList, parseTag,
} from '../../src/cli/parse.js';

/** Asserts a UsageError, one line, starting with the flag, matching `re`. */
function bad(fn: () => unknown, flag: string, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UsageError);
    const err = e as UsageError;
    assert.is(err.name, 'UsageError');
    assert.ok(err.message.startsWith(`${flag}: `), err.message);
    assert.not.match(err.message, /\n/);
    assert.match(err.message, re);
    return;
  }
  assert.unreachable(`expected a UsageError for ${flag}`);
}

const C = '--concurrencies';

test('UsageError is an Error named UsageError', () => {
  const e = new UsageError('x: y');
  assert.instance(e, Error);
  assert.is(e.name, 'UsageError');
  assert.is(String(e), 'UsageError: x: y');
});

test('parseConcurrencies: plain lists', () => {
  assert.equal(parseConcurrencies(C, '1,2,4,8'), [1, 2, 4, 8]);
  assert.equal(parseConcurrencies(C, ' 1, 2 ,4 '), [1, 2, 4]);
  assert.equal(parseConcurrencies(C, '16'), [16]);
  assert.equal(parseConcurrencies(C, '8,1,4'), [8, 1, 4]);
});

test('parseConcurrencies: progressions', () => {
  assert.equal(parseConcurrencies(C, '1,2,4,...,64'), [1, 2, 4, 8, 16, 32, 64]);
  assert.equal(parseConcurrencies(C, '1,2,3,...,8'), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(parseConcurrencies(C, '2,4,6,...,16'), [2, 4, 6, 8, 10, 12, 14, 16]);
  assert.equal(parseConcurrencies(C, '1,2,4,..,16'), [1, 2, 4, 8, 16]);
  assert.equal(parseConcurrencies(C, '1,2,4,…,16'), [1, 2, 4, 8, 16]);
  assert.equal(parseConcurrencies(C, '1,3,9,...,81'), [1, 3, 9, 27, 81]);
  // Two terms, only one reading lands on the last term.
  assert.equal(parseConcurrencies(C, '2,4,...,10'), [2, 4, 6, 8, 10]);
  assert.equal(parseConcurrencies(C, '1,2,...,5'), [1, 2, 3, 4, 5]);
  assert.equal(parseConcurrencies(C, '1,2,4,...,8'), [1, 2, 4, 8]);
});

test('parseConcurrencies: bad input names the flag', () => {
  bad(() => parseConcurrencies(C, '1,2,x'), C, /^--concurrencies: "1,2,x" is not a list of positive integers$/);
  bad(() => parseConcurrencies(C, ''), C, /is empty/);
  bad(() => parseConcurrencies(C, '  '), C, /is empty/);
  bad(() => parseConcurrencies(C, '1,,2'), C, /empty entry/);
  bad(() => parseConcurrencies(C, '1,2,'), C, /empty entry/);
  bad(() => parseConcurrencies(C, '0,1'), C, /0 is not positive/);
  bad(() => parseConcurrencies(C, '-1,2'), C, /not a list of positive integers/);
  bad(() => parseConcurrencies(C, '1.5,2'), C, /not a list of positive integers/);
  bad(() => parseConcurrencies(C, '1,2,2'), C, /lists 2 twice/);
  bad(() => parseConcurrencies(C, '1,...,8'), C, /ambiguous: give at least 2 terms/);
  bad(() => parseConcurrencies(C, '...,8'), C, /ambiguous/);
  bad(() => parseConcurrencies(C, '1,2,...,8'), C, /ambiguous: write a third term \(1,2,3,\.\.\.,8 or 1,2,4,\.\.\.,8\)/);
  bad(() => parseConcurrencies(C, '1,2,5,...,20'), C, /neither arithmetic .* nor geometric/);
  bad(() => parseConcurrencies(C, '4,6,9,...,81'), C, /neither arithmetic/); // ratio 1.5 is not an integer
  bad(() => parseConcurrencies(C, '1,2,4,...,60'), C, /reaches 60 exactly \(×2 gives \.\.\.,32,64\)$/);
  bad(() => parseConcurrencies(C, '2,4,6,...,15'), C, /reaches 15 exactly \(\+2 gives \.\.\.,14,16\)$/);
  bad(() => parseConcurrencies(C, '1,2,4,...'), C, /misplaced/);
  bad(() => parseConcurrencies(C, '1,2,...,...,8'), C, /misplaced/);
  bad(() => parseConcurrencies(C, '1,2,4,...,8,16'), C, /misplaced/);
  bad(() => parseConcurrencies(C, '1,2,4,...,4'), C, /not beyond 4/);
  bad(() => parseConcurrencies(C, '8,4,2,...,1'), C, /not beyond 2/);
  bad(() => parseConcurrencies(C, '1,2,8192'), C, /8192; concurrency is at most 4096/);
  bad(() => parseConcurrencies(C, '1,2,...,4097'), C, /at most 4096/);
  bad(() => parseConcurrencies(C, '1,2,3,...,2000'), C, /2000 entries; at most 1024/);
  bad(() => parseConcurrencies('--conc', '1\n2'), '--conc', /"1\\n2"/);
});

test('parseConcurrencies: limits are configurable', () => {
  bad(() => parseConcurrencies(C, '1,2,4,8', { maxEntries: 3 }), C, /at most 3/);
  bad(() => parseConcurrencies(C, '1,64', { maxValue: 32 }), C, /at most 32/);
});

test('parseSize', () => {
  const F = '--page-size';
  assert.is(parseSize(F, '131072'), 131072);
  assert.is(parseSize(F, '4k'), 4096);
  assert.is(parseSize(F, '4KB'), 4096);
  assert.is(parseSize(F, '128Kb'), 131072);
  assert.is(parseSize(F, '1m'), 1 << 20);
  assert.is(parseSize(F, '1MB'), 1 << 20);
  assert.is(parseSize(F, '1.5m'), 1572864);
  assert.is(parseSize(F, '2g'), 2 * 1024 ** 3);
  assert.is(parseSize(F, '1gb'), 1024 ** 3);
  assert.is(parseSize(F, '64KiB'), 65536);
  assert.is(parseSize(F, '0.5k'), 512);
  assert.is(parseSize(F, '2.0'), 2);
  bad(() => parseSize(F, '1.3k'), F, /^--page-size: "1\.3k" is not a whole number of bytes$/);
  bad(() => parseSize(F, '1.5'), F, /whole number/);
  bad(() => parseSize(F, '0'), F, /more than 0/);
  bad(() => parseSize(F, '0k'), F, /more than 0/);
  bad(() => parseSize(F, '-4k'), F, /is not a size/);
  bad(() => parseSize(F, '4x'), F, /is not a size/);
  bad(() => parseSize(F, ''), F, /is not a size/);
  bad(() => parseSize(F, 'k'), F, /is not a size/);
  bad(() => parseSize(F, '4t'), F, /is not a size/);
  bad(() => parseSize(F, '99999999999g'), F, /too large/);
});

test('parseSizeList', () => {
  const F = '--block-sizes';
  assert.equal(parseSizeList(F, '4k,16k,64k,256k,1m'), [4096, 16384, 65536, 262144, 1048576]);
  assert.equal(parseSizeList(F, '4096, 65536 ,1048576'), [4096, 65536, 1048576]);
  bad(() => parseSizeList(F, '4k,16x'), F, /^--block-sizes: "4k,16x" is not a list of sizes: "16x" is not a size/);
  bad(() => parseSizeList(F, '4k,,1m'), F, /empty entry/);
  bad(() => parseSizeList(F, ''), F, /is empty/);
  bad(() => parseSizeList(F, '4k,4096'), F, /lists 4096 bytes twice/);
  bad(() => parseSizeList(F, '4k,0'), F, /more than 0 bytes/);
});

test('parsePositiveInt', () => {
  const F = '--batch-size';
  assert.is(parsePositiveInt(F, '32'), 32);
  assert.is(parsePositiveInt(F, ' 7 '), 7);
  assert.is(parsePositiveInt('--gid-index', '0', { min: 0 }), 0);
  assert.is(parsePositiveInt(F, '64', { max: 64 }), 64);
  bad(() => parsePositiveInt(F, '0'), F, /^--batch-size: "0" is not a positive integer$/);
  bad(() => parsePositiveInt(F, '-3'), F, /is not a positive integer/);
  bad(() => parsePositiveInt(F, '3.5'), F, /is not a positive integer/);
  bad(() => parsePositiveInt(F, '1e3'), F, /is not a positive integer/);
  bad(() => parsePositiveInt(F, ''), F, /is not a positive integer/);
  bad(() => parsePositiveInt(F, 'ten'), F, /is not a positive integer/);
  bad(() => parsePositiveInt(F, '65', { max: 64 }), F, /must be at most 64/);
  bad(() => parsePositiveInt(F, '3', { min: 4 }), F, /must be at least 4/);
  bad(() => parsePositiveInt('--gid-index', '-1', { min: 0 }), '--gid-index', /not a non-negative integer/);
  bad(() => parsePositiveInt(F, '99999999999999999999'), F, /too large/);
});

test('parseNonNegativeNumber', () => {
  const F = '--dir-cache-ttl';
  assert.is(parseNonNegativeNumber(F, '0'), 0);
  assert.is(parseNonNegativeNumber(F, '2.5'), 2.5);
  assert.is(parseNonNegativeNumber(F, '.5'), 0.5);
  assert.is(parseNonNegativeNumber(F, '1e-3'), 0.001);
  bad(() => parseNonNegativeNumber(F, '-1'), F, /^--dir-cache-ttl: "-1" is not a non-negative number$/);
  bad(() => parseNonNegativeNumber(F, 'NaN'), F, /not a non-negative number/);
  bad(() => parseNonNegativeNumber(F, 'Infinity'), F, /not a non-negative number/);
  bad(() => parseNonNegativeNumber(F, '1e999'), F, /not a non-negative number/);
  bad(() => parseNonNegativeNumber(F, ''), F, /not a non-negative number/);
  bad(() => parseNonNegativeNumber(F, '5', { max: 4 }), F, /at most 4/);
});

test('parseSeconds', () => {
  const F = '--duration';
  assert.is(parseSeconds(F, '10'), 10);
  assert.is(parseSeconds(F, '2.5'), 2.5);
  assert.is(parseSeconds(F, '10s'), 10);
  assert.is(parseSeconds(F, '500ms'), 0.5);
  assert.is(parseSeconds(F, '0.1'), 0.1);
  bad(() => parseSeconds(F, '0'), F, /^--duration: "0" must be more than 0 seconds$/);
  bad(() => parseSeconds(F, '0ms'), F, /more than 0/);
  bad(() => parseSeconds(F, '-1'), F, /not a duration/);
  bad(() => parseSeconds(F, 'abc'), F, /not a duration/);
  bad(() => parseSeconds(F, ''), F, /not a duration/);
  bad(() => parseSeconds(F, 's'), F, /not a duration/);
  bad(() => parseSeconds(F, '10m'), F, /not a duration/);
  bad(() => parseSeconds(F, '7200', { max: 3600 }), F, /at most 3600 seconds/);
});

test('parseEnum', () => {
  const F = '--protocol';
  const choices = ['rdma', 'shm', 'tcp'] as const;
  const p: 'rdma' | 'shm' | 'tcp' = parseEnum(F, 'shm', choices);
  assert.is(p, 'shm');
  assert.is(parseEnum(F, ' TCP ', choices), 'tcp');
  bad(() => parseEnum(F, 'ib', choices), F, /^--protocol: "ib" is not one of rdma, shm, tcp$/);
  bad(() => parseEnum(F, '', choices), F, /is not one of/);
});

test('parseNameList and parseTag', () => {
  assert.equal(parseNameList('--devices', 'mlx5_0,mlx5_1'), ['mlx5_0', 'mlx5_1']);
  bad(() => parseNameList('--devices', 'mlx5_0,mlx5_0'), '--devices', /twice/);
  bad(() => parseNameList('--devices', 'mlx5_0,'), '--devices', /empty entry/);
  bad(() => parseNameList('--devices', 'a b'), '--devices', /whitespace/);
  assert.is(parseTag('--tag', 'rdma_v1.2-x'), 'rdma_v1.2-x');
  bad(() => parseTag('--tag', 'a/b'), '--tag', /not a valid tag/);
  bad(() => parseTag('--tag', '.hidden'), '--tag', /not a valid tag/);
  bad(() => parseTag('--tag', ''), '--tag', /not a valid tag/);
  bad(() => parseTag('--tag', 'x'.repeat(65)), '--tag', /not a valid tag/);
});

test.run();
