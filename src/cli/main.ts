#!/usr/bin/env -S node --single-threaded-gc
/** The peercache-bench executable. */
import { main } from './program.js';

process.exitCode = await main(process.argv.slice(2));
