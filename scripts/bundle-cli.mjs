// Bundles the CLI into dist/bundle (after tsc has built dist/) so that `recall` starts
// in about half the time: Node 20 resolves, reads and compiles each module file on its
// own, and the CLI's tree is some 170 files (zod alone is 95). That was ~250 ms of
// every command's start, most of the gap between a short capture and pg_recvlogical.
// Commands stay separate chunks, loaded when run. Native and optional packages stay
// outside: DuckDB's bindings load a .node file, the AWS SDK loads only for s3:// vaults.

import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunks are named by content hash: the last build's would pile up beside the new ones.
rmSync('dist/bundle', { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@duckdb/node-bindings*', '@aws-sdk/*', 'pg-native', 'pg-cloudflare'],
  // CommonJS packages bundled into ESM still call require() for Node's own modules.
  banner: { js: "import { createRequire as __recallRequire } from 'node:module'; const require = __recallRequire(import.meta.url);" },
  logLevel: 'warning',
});
