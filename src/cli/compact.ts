// `recall compact`: the merges and images capture makes in the background, on demand
// and without its CPU budget (after a bulk load, from cron, or beside `capture
// --until-caught-up`). Beside a running capture it commits through the same log and
// retries if it loses.

import {
  compact,
  compactionBacklog,
  describeResult,
  imagesDue,
  nextMerge,
  openDuckDB,
  type CompactionStep,
  type LayerEntry,
  type Vault,
} from '../vault/index.js';
import { logLine, toJson, vaultOf, type CommandFlags } from './common.js';

/** What a run did, as --json prints it. */
interface CompactSummary {
  merges: number;
  images: number;
  layersReplaced: number;
  layersWritten: number;
  bytesReplaced: number;
  bytesWritten: number;
  /** Merges still due when it stopped (none after --until-done). */
  backlog: { layers: number; bytes: number };
}

export async function run(flags: CommandFlags & { untilDone?: boolean; images?: boolean }): Promise<number> {
  const vault = await vaultOf(flags);
  vault.manifest; // refuses an uninitialised vault
  const summary = await compactVault(vault, { untilDone: flags.untilDone === true, images: flags.images === true });
  if (flags.json) process.stdout.write(`${toJson(summary)}\n`);
  else {
    const left =
      summary.backlog.layers === 0 ? 'nothing left to merge' : `${summary.backlog.layers} layers still due (run with --until-done)`;
    logLine(
      `compact: ${summary.merges} merges and ${summary.images} images, ${summary.layersReplaced} layers (${summary.bytesReplaced} bytes) replaced by ${summary.layersWritten} (${summary.bytesWritten} bytes); ${left}`,
    );
  }
  return 0;
}

/**
 * Runs the merges due now (each merge's outputs may make a merge of the next level due:
 * those wait for the next run), or with `untilDone` until none is due; then the images
 * due, or with `images` one of every bucket.
 */
async function compactVault(vault: Vault, options: { untilDone: boolean; images: boolean }): Promise<CompactSummary> {
  const summary: CompactSummary = {
    merges: 0,
    images: 0,
    layersReplaced: 0,
    layersWritten: 0,
    bytesReplaced: 0,
    bytesWritten: 0,
    backlog: { layers: 0, bytes: 0 },
  };
  const duck = await openDuckDB(await vault.storage.scratchDirectory());
  const bytes = (layers: readonly LayerEntry[]): number => layers.reduce((sum, layer) => sum + layer.bytes, 0);
  const run = async (step: CompactionStep): Promise<void> => {
    const result = await compact(vault, duck, step);
    if (!result.committed) return;
    summary[step.kind === 'merge' ? 'merges' : 'images'] += 1;
    summary.layersReplaced += result.replaced.length;
    summary.layersWritten += result.written.length;
    summary.bytesReplaced += bytes(result.replaced);
    summary.bytesWritten += bytes(result.written);
    logLine(`compact: ${describeResult(step, result)}`);
  };
  try {
    const due = new Set(options.untilDone ? [] : vault.manifest.layers.map((layer) => layer.path));
    for (;;) {
      const step = nextMerge(await vault.refresh());
      if (step === undefined || (!options.untilDone && !step.inputs.every((layer) => due.has(layer.path)))) break;
      await run(step);
    }
    for (const step of imagesDue(await vault.refresh(), options.images)) await run(step);
    summary.backlog = compactionBacklog(vault.manifest);
    return summary;
  } finally {
    duck.closeSync();
  }
}
