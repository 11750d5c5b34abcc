// `recall show`: a tenant's rows at a point, as JSON lines or readable tables.

import { show, parsePoint } from '../timeline/index.js';
import { notePastVaultEnd, toJson, vaultOf, askSource, type CommonFlags } from './common.js';
import { printTables } from './table-output.js';

export async function run(flags: CommonFlags & { tenant: string; at: string; table?: string }): Promise<number> {
  const at = parsePoint(flags.at);
  const vault = await vaultOf(flags);
  const future = await askSource(flags, vault);
  const rows = await show({ vault, tenant: flags.tenant, at, future, ...(flags.table === undefined ? {} : { table: flags.table }) });
  notePastVaultEnd(vault, at);
  if (flags.json) {
    for (const row of rows) process.stdout.write(`${toJson(row)}\n`);
  } else {
    printTables(rows.map((r) => ({ group: r.table, row: r.row })));
  }
  return 0;
}
