// A plan as a person reads it: what is selected, per table how many rows are
// inserted, updated and deleted, per tenant when there are few, and every conflict
// with both versions (up to a limit; --json has them all).

import { writesOf, type Conflict, type Plan } from '../restore/index.js';
import { printable } from './terminal-text.js';

/** Tenants listed one by one before the plan summarises them. */
const LISTED_TENANTS = 20;
/** Conflicts shown in full before the rest are counted. */
const LISTED_CONFLICTS = 20;

/** The plan as lines of text. */
export function formatPlan(plan: Plan): string {
  const lines: string[] = [`plan ${plan.id} (content ${plan.digest}): ${describeSelection(plan)} (vault through lsn:${plan.vaultLsn})`];
  const perTable = new Map<string, { insert: number; update: number; delete: number }>();
  const active = plan.groups.filter((group) => !group.skipped);
  for (const group of active) {
    for (const step of group.tables) {
      const sum = perTable.get(step.table) ?? { insert: 0, update: 0, delete: 0 };
      perTable.set(step.table, { insert: sum.insert + step.insert, update: sum.update + step.update, delete: sum.delete + step.delete });
    }
  }
  for (const [table, n] of perTable) if (n.insert + n.update + n.delete === 0) perTable.delete(table);
  if (perTable.size === 0) {
    lines.push('  nothing to write: the rows already equal the target');
  } else {
    const rows = [...perTable]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([table, n]) => [printable(table), ...[n.insert, n.update, n.delete].map(String)]);
    lines.push(...aligned([['table', 'insert', 'update', 'delete'], ...rows]).map((line) => `  ${line}`));
  }
  const tenants = active.filter((group) => writesOf(group) > 0);
  const named = tenants.slice(0, LISTED_TENANTS).map((group) => {
    const n = writesOf(group);
    return `${group.tenant ?? '(global tables)'} (${n} row${n === 1 ? '' : 's'})`;
  });
  if (tenants.length > 0) {
    const more = tenants.length > LISTED_TENANTS ? `, and ${tenants.length - LISTED_TENANTS} more` : '';
    const noun = tenants.some((group) => group.tenant === null) ? 'group' : 'tenant';
    lines.push(`  ${tenants.length} ${noun}${tenants.length === 1 ? '' : 's'}: ${named.join(', ')}${more}`);
  }
  const skipped = plan.groups.filter((group) => group.skipped).map((group) => group.tenant ?? '(global tables)');
  if (skipped.length > 0) lines.push(`  skipped (--on-conflict skip): ${skipped.join(', ')}`);
  const conflicts = plan.groups.flatMap((group) => group.conflicts);
  if (conflicts.length > 0) {
    lines.push(`  ${plan.totals.conflicts} conflict${plan.totals.conflicts === 1 ? '' : 's'}, ${plan.unresolved} unresolved:`);
    for (const conflict of conflicts.slice(0, LISTED_CONFLICTS)) lines.push(...formatConflict(conflict));
    if (conflicts.length > LISTED_CONFLICTS) lines.push(`    … ${conflicts.length - LISTED_CONFLICTS} more (see --json)`);
  }
  // Tenant ids, actors, table names and conflicting values come from users: one line each, whatever they hold.
  return `${lines.map(printable).join('\n')}\n`;
}

function describeSelection(plan: Plan): string {
  const s = plan.selection;
  if (s.kind === 'restore') {
    const who = s.tenants === 'all' ? 'the whole database' : `tenant${s.tenants.length === 1 ? '' : 's'} ${s.tenants.join(', ')}`;
    return `restore ${who} to ${s.point} (lsn:${s.lsn})`;
  }
  const txns = `${s.xids.length} transaction${s.xids.length === 1 ? '' : 's'}`;
  return `undo ${txns}${s.actor === undefined ? '' : ` of actor ${s.actor}`} (${s.xids.slice(0, 10).join(', ')}${s.xids.length > 10 ? ', …' : ''})`;
}

function formatConflict(conflict: Conflict): string[] {
  const where = `${conflict.table} key ${JSON.stringify(conflict.key)}${conflict.tenant === null ? '' : ` (tenant ${conflict.tenant})`}`;
  const resolved = conflict.resolution === undefined ? 'unresolved' : `resolved: ${conflict.resolution}`;
  return [
    `    ${conflict.kind} ${where}: ${conflict.detail} [${resolved}]`,
    `      ours:   ${conflict.ours === null ? '(row deleted)' : JSON.stringify(conflict.ours)}`,
    `      theirs: ${conflict.theirs === null ? '(no row)' : JSON.stringify(conflict.theirs)}`,
  ];
}

function aligned(rows: readonly (readonly string[])[]): string[] {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '));
}
