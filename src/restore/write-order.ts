// The order a restore writes tables in: parents before children for inserts, the
// reverse for deletes, following the foreign-key graph. Self-references and cycles
// cannot be ordered; they are broken by name, which is safe because apply writes
// with foreign-key triggers off and checks every reference itself (plan and verify).

import type { ForeignKey } from '../source/index.js';

/** Tables ordered parents first (Kahn's algorithm; a cycle is entered at its smallest name). */
export function parentsFirst(tables: readonly string[], foreignKeys: readonly ForeignKey[]): string[] {
  const inPlan = new Set(tables);
  const parents = new Map<string, Set<string>>(tables.map((table) => [table, new Set<string>()]));
  for (const key of foreignKeys) {
    if (key.child !== key.parent && inPlan.has(key.child) && inPlan.has(key.parent)) parents.get(key.child)?.add(key.parent);
  }
  const ordered: string[] = [];
  const remaining = new Set([...tables].sort());
  while (remaining.size > 0) {
    const ready = [...remaining].filter((table) => [...(parents.get(table) ?? [])].every((parent) => !remaining.has(parent)));
    for (const table of ready.length > 0 ? ready : [[...remaining][0] as string]) {
      ordered.push(table);
      remaining.delete(table);
    }
  }
  return ordered;
}
