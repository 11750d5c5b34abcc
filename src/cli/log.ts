// `recall log`: a tenant's changes, as JSON lines or one readable line each.

import { log, parsePoint } from '../timeline/index.js';
import { logLine, notePastVaultEnd, toJson, vaultOf, askSource, type CommonFlags } from './common.js';
import { printable } from './terminal-text.js';

export async function run(flags: CommonFlags & { tenant: string; since?: string; until?: string; table?: string }): Promise<number> {
  const since = flags.since === undefined ? undefined : parsePoint(flags.since);
  const until = flags.until === undefined ? undefined : parsePoint(flags.until);
  const vault = await vaultOf(flags);
  const future = await askSource(flags, vault);
  const changes = await log({
    vault,
    tenant: flags.tenant,
    future,
    note: logLine,
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(flags.table === undefined ? {} : { table: flags.table }),
  });
  notePastVaultEnd(vault, until);
  for (const change of changes) {
    if (flags.json) {
      process.stdout.write(`${toJson(change)}\n`);
    } else {
      const actor = typeof change.context?.actor === 'string' ? `  by ${change.context.actor}` : '';
      const line = `${change.commitTime}  lsn:${change.lsn}  txn ${change.xid}  ${change.op.padEnd(8)} ${change.table} ${JSON.stringify(change.key)}${actor}`;
      process.stdout.write(`${printable(line)}\n`);
    }
  }
  return 0;
}
