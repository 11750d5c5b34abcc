// Readable tables on a terminal: one block per group (table name), columns aligned,
// every name and value made printable before it is measured.

import { printable } from './terminal-text.js';

/** Prints rows grouped under headings, with aligned columns; SQL NULL is shown as NULL. */
export function printTables(rows: readonly { group: string; row: Readonly<Record<string, string | null>> }[]): void {
  const groups = new Map<string, Readonly<Record<string, string | null>>[]>();
  for (const { group, row } of rows) groups.set(group, [...(groups.get(group) ?? []), row]);
  const out: string[] = [];
  for (const [group, members] of groups) {
    const keys = Object.keys(members[0] ?? {});
    const columns = keys.map(printable);
    const cells = members.map((row) => keys.map((column) => shorten(printable(row[column] ?? 'NULL'))));
    const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => (line[i] ?? '').length)));
    out.push(`${printable(group)} (${members.length} row${members.length === 1 ? '' : 's'})`);
    out.push(columns.map((column, i) => column.padEnd(widths[i] ?? 0)).join(' | '));
    out.push(widths.map((width) => '-'.repeat(width)).join('-+-'));
    for (const line of cells) out.push(line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | '));
    out.push('');
  }
  if (out.length === 0) out.push('(no rows)');
  process.stdout.write(`${out.join('\n')}\n`);
}

function shorten(value: string): string {
  return value.length > 60 ? `${value.slice(0, 57)}...` : value;
}
