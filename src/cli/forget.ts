// `recall forget`: erases one tenant's history (GDPR erasure). Shows the layers it will
// rewrite, asks (or takes --yes), then rewrites them without the tenant's rows and
// deletes the old files at once. The source is not touched: later changes of the
// tenant are captured as usual.

import { UsageError } from '../errors.js';
import { erase, openDuckDB, planErasure } from '../vault/index.js';
import { confirm } from './apply-plan.js';
import { logLine, toJson, vaultOf, type CommandFlags } from './common.js';
import { printable } from './terminal-text.js';

export async function run(flags: CommandFlags & { tenant: string; dryRun?: boolean; yes?: boolean }): Promise<number> {
  if (flags.dryRun !== true && flags.yes !== true && !process.stdin.isTTY) {
    throw new UsageError(
      'not asking for confirmation without a terminal',
      'pass --yes to erase, or --dry-run to see what it would rewrite',
    );
  }
  const vault = await vaultOf(flags);
  vault.manifest; // refuses an uninitialised vault
  const duck = await openDuckDB(await vault.storage.scratchDirectory());
  try {
    const plan = await planErasure(vault, duck, flags.tenant);
    const rows = plan.layers.reduce((sum, { rows: n }) => sum + n, 0);
    const bytes = plan.layers.reduce((sum, { layer }) => sum + layer.bytes, 0);
    const summary = `${plan.layers.length} layers (${bytes} bytes) hold ${rows} rows of tenant "${flags.tenant}"; ${plan.retired.length} replaced files waiting for gc go too`;
    if (!flags.json) {
      for (const { layer, rows: n } of plan.layers)
        process.stderr.write(`${printable(`${layer.path}  ${n} of ${layer.rows} rows  ${layer.bytes} bytes`)}\n`);
    }
    if (flags.dryRun === true) {
      if (flags.json)
        process.stdout.write(
          `${toJson({ tenant: flags.tenant, dryRun: true, rows, layers: plan.layers.map(({ layer, rows: n }) => ({ path: layer.path, rows: n, ofRows: layer.rows, bytes: layer.bytes })), retired: plan.retired.length })}\n`,
        );
      else logLine(`forget: would erase: ${summary}`);
      return 0;
    }
    if (flags.yes !== true && !(await confirm(`forget: ${summary}. Erase them for good? [y/N] `))) {
      logLine('forget: nothing erased');
      return 1;
    }
    const result = await erase(vault, duck, plan);
    if (flags.json) process.stdout.write(`${toJson({ tenant: flags.tenant, dryRun: false, ...result })}\n`);
    else
      logLine(
        `forget: erased ${result.rows} rows of tenant "${flags.tenant}": ${result.rewritten} layers rewritten, ${result.deleted} old files (${result.bytes} bytes) deleted`,
      );
    return 0;
  } finally {
    duck.closeSync();
  }
}
