// `recall compact`: the merges capture runs in the background, on demand and without
// its CPU budget (after a bulk load, from cron, or beside a `capture --until-caught-up`).
// Beside a running capture it commits through the same log and retries if it loses.

import { compact, compactionBacklog, describeMerge, nextCompactionStep, openDuckDB, type Vault } from '../vault/index.js';
import { logLine, toJson, vaultOf, type CommandFlags } from './common.js';

/** What a run did, as --json prints it. */
interface CompactSummary {
  merges: number;
  layersReplaced: number;
  layersWritten: number;
  bytesReplaced: number;
  bytesWritten: number;
  /** Merges still due when it stopped (0 after --until-done). */
  backlog: { layers: number; bytes: number };
}

export async function run(flags: CommandFlags & { untilDone?: boolean }): Promise<number> {
  const vault = await vaultOf(flags);
  vault.manifest; // refuses an uninitialised vault
  const summary = await compactVault(vault, flags.untilDone === true);
  if (flags.json) process.stdout.write(`${toJson(summary)}\n`);
  else {
    const left =
      summary.backlog.layers === 0 ? 'nothing left to merge' : `${summary.backlog.layers} layers still due (run with --until-done)`;
    logLine(
      `compact: ${summary.merges} merges, ${summary.layersReplaced} layers (${summary.bytesReplaced} bytes) into ${summary.layersWritten} (${summary.bytesWritten} bytes); ${left}`,
    );
  }
  return 0;
}

/**
 * Runs the merges due now (each merge's outputs may make a merge of the next level due:
 * those wait for the next run), or with `untilDone` until none is due.
 */
async function compactVault(vault: Vault, untilDone: boolean): Promise<CompactSummary> {
  const summary: CompactSummary = {
    merges: 0,
    layersReplaced: 0,
    layersWritten: 0,
    bytesReplaced: 0,
    bytesWritten: 0,
    backlog: { layers: 0, bytes: 0 },
  };
  const duck = await openDuckDB(await vault.storage.scratchDirectory());
  try {
    const due = new Set(untilDone ? [] : vault.manifest.layers.map((layer) => layer.path));
    for (;;) {
      const step = nextCompactionStep(await vault.refresh());
      if (step === undefined || (!untilDone && !step.inputs.every((layer) => due.has(layer.path)))) break;
      const result = await compact(vault, duck, step);
      if (!result.committed) continue;
      const bytes = (layers: typeof result.written): number => layers.reduce((sum, layer) => sum + layer.bytes, 0);
      summary.merges += 1;
      summary.layersReplaced += result.replaced.length;
      summary.layersWritten += result.written.length;
      summary.bytesReplaced += bytes(result.replaced);
      summary.bytesWritten += bytes(result.written);
      logLine(`compact: level ${step.level} → ${step.level + 1}: ${describeMerge(result)}`);
    }
    summary.backlog = compactionBacklog(vault.manifest);
    return summary;
  } finally {
    duck.closeSync();
  }
}
