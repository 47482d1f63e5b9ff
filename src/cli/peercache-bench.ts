#!/usr/bin/env -S node --single-threaded-gc
/** The peercache-bench executable. */
import { finish, main } from './program.js';

await finish(await main(process.argv.slice(2)));
