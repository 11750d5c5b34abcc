// Whether recall.yml's tenancy fits the source: every table it names exists, every
// column it names is in its table, and a root or default column it sets is there.
// Run wherever the catalog is read, so a typo stops a command before any work.

import { ConfigError, type ConfigProblem } from '../errors.js';
import type { SourceTable } from './catalog.js';
import { closest } from './config-file.js';
import { describeSetting, type TenancyConfig } from './tenancy.js';

/** Each way the tenancy written in recall.yml does not fit the source's tables, with its fix. */
export function tenancyProblems(tables: readonly SourceTable[], tenancy: TenancyConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const file = tenancy.origin?.file;
  const byName = new Map(tables.map((table) => [table.qualified, table]));
  const names = [...byName.keys()];
  const suggestion = (name: string, among: readonly string[]): string => {
    const near = closest(name, among);
    return near === undefined ? '' : ` (did you mean ${near}?)`;
  };
  for (const [name, declared] of Object.entries(tenancy.tables)) {
    const where = describeSetting(file, tenancy.origin?.tables[name], `tenancy.tables.${name}`);
    const table = byName.get(name);
    if (table === undefined) {
      problems.push({
        problem: `${where} names table ${name}, which does not exist in the source${suggestion(name, names)}`,
        fix: 'write the table as schema.table, as it is in the source, or remove the line',
      });
    } else if (declared !== 'global' && !table.columns.some((column) => column.name === declared.column)) {
      // `globl` for `global` reads as a column name: the missing column is where the typo shows.
      const meantGlobal = closest(declared.column, ['global']) !== undefined;
      problems.push({
        problem: `${where} says ${name} is tenant-scoped by column "${declared.column}", but ${name} has no such column${meantGlobal ? ' (did you mean global?)' : ''}`,
        fix: `write global for a table of no tenant, or one of its columns: ${listed(table.columns.map((column) => column.name))}`,
      });
    }
  }
  const rootOrigin = tenancy.origin?.root;
  const rootTable = byName.get(tenancy.root);
  const rootWhere = describeSetting(file, rootOrigin, 'tenancy.root');
  if (rootTable === undefined && rootOrigin !== undefined) {
    problems.push({
      problem: `${rootWhere} names table ${tenancy.root}, which does not exist in the source${suggestion(tenancy.root, names)}`,
      fix: 'name the table whose primary key is the tenant id, as schema.table',
    });
  } else if (rootTable !== undefined && rootTable.primaryKey.length !== 1) {
    problems.push({
      problem: `${rootWhere}: the tenant root table ${tenancy.root} needs a one-column primary key (the tenant id)`,
      fix: 'set tenancy.root in recall.yml to the table whose key is the tenant id',
    });
  }
  // A column no table has makes every table left to the default rule global: a typo, unless
  // no such table exists yet (a database with only its root table).
  const columnOrigin = tenancy.origin?.column;
  const byDefault = tables.filter((table) => table.qualified !== tenancy.root && tenancy.tables[table.qualified] === undefined);
  if (
    columnOrigin !== undefined &&
    byDefault.length > 0 &&
    !tables.some((table) => table.columns.some((column) => column.name === tenancy.column))
  ) {
    const columns = [...new Set(tables.flatMap((table) => table.columns.map((column) => column.name)))];
    problems.push({
      problem: `${describeSetting(file, columnOrigin, 'tenancy.column')} is "${tenancy.column}", but no table of the source has that column${suggestion(tenancy.column, columns)}`,
      fix: `name the column your tenant tables have (such as tenant_id), or declare ${listed(byDefault.map((table) => table.qualified))} global under tenancy.tables`,
    });
  }
  return problems;
}

/** A list for a message: the first few names, and how many more. */
function listed(names: readonly string[]): string {
  const shown = names.slice(0, 6).join(', ');
  return names.length > 6 ? `${shown} and ${names.length - 6} more` : shown;
}

/** Refuses, with every problem at once, a tenancy that does not fit the source (exit 2, before any work). */
export function assertTenancyFits(tables: readonly SourceTable[], tenancy: TenancyConfig): void {
  const problems = tenancyProblems(tables, tenancy);
  if (problems.length > 0) throw new ConfigError(tenancy.origin?.file ?? 'recall.yml', problems);
}
