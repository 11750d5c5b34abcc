// `recall gc`: deletes layer files no live manifest version references, once past the
// grace period (replaced by compaction, or left by a crash before their commit).
// --dry-run lists them; a live layer is never touched.

import { formatDuration } from '../duration.js';
import { collectGarbage, DEFAULT_GC_GRACE_MS, planGc } from '../vault/index.js';
import { durationSetting, logLine, toJson, vaultOf, type CommandFlags } from './common.js';
import { printable } from './terminal-text.js';

export async function run(flags: CommandFlags & { dryRun?: boolean; gcGrace?: string }): Promise<number> {
  const graceMs = durationSetting(flags.gcGrace, '--gc-grace', 'RECALL_GC_GRACE') ?? DEFAULT_GC_GRACE_MS;
  const vault = await vaultOf(flags);
  vault.manifest; // refuses an uninitialised vault
  const plan = await planGc(vault, graceMs, flags.settings.retention);
  if (flags.dryRun !== true) await collectGarbage(vault, plan);
  const bytes = plan.due.reduce((sum, file) => sum + file.bytes, 0);
  if (flags.json) {
    process.stdout.write(
      `${toJson({ dryRun: flags.dryRun === true, graceMs, deleted: flags.dryRun === true ? [] : plan.due, due: plan.due, waiting: plan.waiting.length, live: plan.live, manifestPruned: plan.manifest ?? null })}\n`,
    );
    return 0;
  }
  if (flags.dryRun === true) {
    for (const file of plan.due)
      process.stdout.write(`${printable(`${file.path}  ${file.bytes} bytes  ${file.reason} since ${file.since}`)}\n`);
    if (plan.manifest !== undefined)
      process.stdout.write(`manifest versions ${plan.manifest.from}–${plan.manifest.to - 1}  older than the retention horizon\n`);
  }
  logLine(
    `gc: ${flags.dryRun === true ? 'would delete' : 'deleted'} ${plan.due.length} files (${bytes} bytes)${plan.manifest === undefined ? '' : ` and manifest versions ${plan.manifest.from}–${plan.manifest.to - 1}`}; ${plan.waiting.length} within the ${formatDuration(graceMs)} grace period kept; ${plan.live} live layers`,
  );
  return 0;
}
