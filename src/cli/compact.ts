// `recall compact`: the merges and images capture makes in the background, on demand
// and without its CPU budget (after a bulk load, from cron, or beside `capture
// --until-caught-up`). Beside a running capture it commits through the same log and
// retries if it loses.

import {
  compact,
  compactionBacklog,
  describeResult,
  foldDue,
  imagesDue,
  nextMerge,
  openDuckDB,
  type CompactionStep,
  type LayerEntry,
  type Retention,
  type Vault,
} from '../vault/index.js';
import { logLine, toJson, vaultOf, type CommandFlags } from './common.js';

/** What a run did, as --json prints it. */
interface CompactSummary {
  merges: number;
  /** Bucket images written, at the vault's end or at the retention horizon. */
  images: number;
  /** Folds of the history past the retention horizon (0 or 1). */
  folds: number;
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
  const summary = await compactVault(vault, {
    untilDone: flags.untilDone === true,
    images: flags.images === true,
    retention: flags.settings.retention,
  });
  if (flags.json) process.stdout.write(`${toJson(summary)}\n`);
  else {
    const left =
      summary.backlog.layers === 0 ? 'nothing left to merge' : `${summary.backlog.layers} layers still due (run with --until-done)`;
    logLine(
      `compact: ${summary.merges} merges, ${summary.images} images${summary.folds > 0 ? ', history folded to the retention horizon' : ''}; ${summary.layersReplaced} layers (${summary.bytesReplaced} bytes) replaced by ${summary.layersWritten} (${summary.bytesWritten} bytes); ${left}`,
    );
  }
  return 0;
}

/**
 * Runs the merges due now (each merge's outputs may make a merge of the next level due:
 * those wait for the next run), or with `untilDone` until none is due; then a fold past
 * the retention horizon, if one is due; then the images due, or with `images` one of
 * every bucket that changed.
 */
async function compactVault(
  vault: Vault,
  options: { untilDone: boolean; images: boolean; retention: Retention | undefined },
): Promise<CompactSummary> {
  const summary: CompactSummary = {
    merges: 0,
    images: 0,
    folds: 0,
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
    if (step.kind === 'merge') summary.merges += 1;
    else summary.images += result.written.length;
    if (step.kind === 'fold') summary.folds += 1;
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
    const fold = options.retention === undefined ? undefined : foldDue(await vault.refresh(), options.retention);
    if (fold !== undefined) await run(fold);
    const images = imagesDue(await vault.refresh(), options.images);
    if (images !== undefined) await run(images);
    summary.backlog = compactionBacklog(vault.manifest);
    return summary;
  } finally {
    duck.closeSync();
  }
}
