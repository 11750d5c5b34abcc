#!/usr/bin/env node
// The `recall` command: a thin launcher for the compiled CLI, bundled by `npm run build`
// (which `npm install` runs) for a fast start (scripts/bundle-cli.mjs).
import { main } from '../dist/bundle/main.mjs';

// A reader that stops early (`recall log … | head`) closes the pipe: that ends the output, not in a crash.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2));
