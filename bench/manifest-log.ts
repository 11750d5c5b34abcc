// The manifest log benchmark (issue 13): the vault writer driven directly with
// synthetic commits (a layer added per commit, every tenth merging ten, so the live
// set stays small while the history grows), measured at 1,000, 10,000 and 100,000
// commits: the median commit time over the last window, the manifest bytes written
// per commit over it, and the time and bytes of opening the vault, each against the
// 1,000 figure of the same run (target: at most 1.5x). Run with
// `npm run bench:manifest-log`; BENCH_COMMITS=1000,10000 picks the sizes.

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openVault } from '../src/index.js';
import { fsStorage } from '../src/vault/fs-storage.js';
import { openManifest } from '../src/vault/manifest-log.js';
import { countingStorage, syntheticDraft } from '../test/harness/synthetic-commits.js';
import { median, runBench, timed, type BenchResult } from './common.js';

const SIZES = (process.env.BENCH_COMMITS ?? '1000,10000,100000').split(',').map(Number);
/** Commits timed at the end of each size, and opens timed there. */
const WINDOW = 500;
const OPENS = 9;

function manifestBytes(path: string): number {
  return readdirSync(path, { withFileTypes: true }).reduce((sum, entry) => {
    const child = join(path, entry.name);
    return sum + (entry.isDirectory() ? manifestBytes(child) : statSync(child).size);
  }, 0);
}

interface Figures {
  readonly commits: number;
  readonly commitMs: number;
  readonly bytesPerCommit: number;
  readonly openMs: number;
  readonly openBytes: number;
}

async function main(): Promise<readonly BenchResult[] | void> {
  const directory = mkdtempSync(join(tmpdir(), 'recall-bench-manifest-'));
  try {
    const vault = await openVault(directory);
    const figures: Figures[] = [];
    let done = 0;
    for (const size of SIZES) {
      while (done < size - WINDOW) await vault.commit(syntheticDraft(vault, ++done));
      const before = manifestBytes(join(directory, 'manifest'));
      const times: number[] = [];
      while (done < size) times.push((await timed(() => vault.commit(syntheticDraft(vault, ++done))))[1] * 1000);
      const bytesPerCommit = (manifestBytes(join(directory, 'manifest')) - before) / WINDOW;
      const opens: number[] = [];
      for (let i = 0; i < OPENS; i++) opens.push((await timed(() => openVault(directory)))[1] * 1000);
      const { storage, counts } = countingStorage(fsStorage(directory));
      await openManifest(storage);
      figures.push({ commits: size, commitMs: median(times), bytesPerCommit, openMs: median(opens), openBytes: counts.bytesRead });
      console.error(`manifest-log: ${size} commits done`);
    }
    const [anchor] = figures;
    if (anchor === undefined) return;
    const results: BenchResult[] = figures.flatMap((f) => {
      const row = (name: string, value: number, base: number, unit: string): BenchResult => ({
        name: `${name} at ${f.commits} commits`,
        value: `${value.toFixed(unit === 'ms' ? 2 : 0)} ${unit}`,
        anchor: `${base.toFixed(unit === 'ms' ? 2 : 0)} ${unit} at ${anchor.commits}`,
        ratio: `${(value / base).toFixed(2)}x`,
        target: '≤ 1.5x',
      });
      return [
        row('manifest commit time (median)', f.commitMs, anchor.commitMs, 'ms'),
        row('manifest bytes written per commit', f.bytesPerCommit, anchor.bytesPerCommit, 'B'),
        row('vault open time (median)', f.openMs, anchor.openMs, 'ms'),
        row('manifest bytes read on open', f.openBytes, anchor.openBytes, 'B'),
      ];
    });
    return results;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

await runBench(main);
