#!/usr/bin/env node
// The `recall` command: a thin launcher for the compiled CLI (built by `npm install`).
import { main } from '../dist/cli/main.js';

// A reader that stops early (`recall log … | head`) closes the pipe: that ends the output, not in a crash.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2));
