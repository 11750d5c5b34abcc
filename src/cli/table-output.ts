// Readable tables on a terminal: one block per group (table name), columns aligned.

/** Prints rows grouped under headings, with aligned columns; SQL NULL is shown as NULL. */
export function printTables(rows: readonly { group: string; row: Readonly<Record<string, string | null>> }[]): void {
  const groups = new Map<string, Readonly<Record<string, string | null>>[]>();
  for (const { group, row } of rows) groups.set(group, [...(groups.get(group) ?? []), row]);
  const out: string[] = [];
  for (const [group, members] of groups) {
    const columns = Object.keys(members[0] ?? {});
    const cells = members.map((row) => columns.map((column) => shorten(row[column] ?? 'NULL')));
    const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => (line[i] ?? '').length)));
    out.push(`${group} (${members.length} row${members.length === 1 ? '' : 's'})`);
    out.push(columns.map((column, i) => column.padEnd(widths[i] ?? 0)).join(' | '));
    out.push(widths.map((width) => '-'.repeat(width)).join('-+-'));
    for (const line of cells) out.push(line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | '));
    out.push('');
  }
  if (out.length === 0) out.push('(no rows)');
  process.stdout.write(`${out.join('\n')}\n`);
}

function shorten(value: string): string {
  const flat = value.replace(/\s+/g, ' ');
  return flat.length > 60 ? `${flat.slice(0, 57)}...` : flat;
}
