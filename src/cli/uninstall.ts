// `recall uninstall`: lists what Recall put into the source, then removes it (the
// slot first); the vault stays as it is.

import { findInstalled, removeInstalled, type Installed } from '../capture/index.js';
import { UsageError } from '../errors.js';
import { connectSource, readSourceIdentity } from '../source/index.js';
import { confirm } from './apply-plan.js';
import { logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';

export async function run(flags: CommandFlags & { dryRun?: boolean; yes?: boolean }): Promise<number> {
  if (!flags.dryRun && !flags.yes && !process.stdin.isTTY) {
    throw new UsageError('not asking for confirmation without a terminal', 'pass --yes to remove, or --dry-run to see the list only');
  }
  const vault = await vaultOf(flags);
  const tenancy = tenancyOf(flags);
  const client = await connectSource(sourceOf(flags));
  try {
    vault.assertSource(await readSourceIdentity(client));
    const installed = await findInstalled(client, vault);
    const items = describe(installed);
    if (flags.json && flags.dryRun) process.stdout.write(`${toJson({ installed })}\n`);
    else if (!flags.json) {
      process.stdout.write(
        items.length === 0
          ? 'nothing of Recall is in the source\n'
          : `${flags.dryRun ? 'would remove' : 'removing'}:\n${items.map((item) => `  ${item}\n`).join('')}`,
      );
    }
    if (flags.dryRun || items.length === 0) return 0;
    if (!flags.yes && !(await confirm('remove these from the source? The vault keeps its history, but capture cannot resume. [y/N] '))) {
      logLine('nothing removed');
      return 0;
    }
    const result = await removeInstalled(client, installed, tenancy);
    if (flags.json) process.stdout.write(`${toJson({ installed, ...result })}\n`);
    else {
      for (const what of result.kept) process.stdout.write(`kept: ${what}\n`);
      process.stdout.write(`removed ${result.removed.length} item(s); the vault ${vault.storage.location} is untouched\n`);
    }
    if (result.kept.length > 0) logLine('note: run `recall uninstall` again to remove what was kept');
    return 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One line per item, the slot first. */
function describe(installed: Installed): string[] {
  const lines: string[] = [];
  if (installed.slot !== null) {
    const held = installed.slot.walHeldBytes === null ? '' : ` (holds ${installed.slot.walHeldBytes} bytes of WAL on the source)`;
    lines.push(`replication slot ${installed.slot.name}${held}`);
  }
  if (installed.publication !== null) lines.push(`publication ${installed.publication}`);
  for (const table of installed.guards) lines.push(`guard trigger recall_guard on ${table}`);
  const shared = installed.otherSlots.length > 0 ? ` (kept: other vaults use it, slots ${installed.otherSlots.join(', ')})` : '';
  if (installed.ddlHook) lines.push(`DDL hook: event trigger recall_announce_layout${shared}`);
  if (installed.schema) lines.push(`schema recall and its functions${shared}`);
  return lines;
}
