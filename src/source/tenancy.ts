// Tenancy: which column of each table names its tenant. By default `tenant_id`
// everywhere and a root table `tenants` keyed by the tenant id; `recall.yml`
// overrides the column, the root, and individual tables.

import { UsageError } from '../errors.js';
import { loadConfigDocument } from './config-file.js';
import { formatTableName, parseTableName } from './table-name.js';

/** Per-table tenancy declared in recall.yml: a tenant column, or `global`. */
export type TableTenancy = { readonly column: string } | 'global';

/** The tenancy rules in force. Table keys are formatted names (public.issues). */
export interface TenancyConfig {
  readonly column: string;
  readonly root: string;
  readonly tables: Readonly<Record<string, TableTenancy>>;
}

/** The tenancy Recall assumes when recall.yml says nothing. */
export const DEFAULT_TENANCY: TenancyConfig = Object.freeze({ column: 'tenant_id', root: 'public.tenants', tables: {} });

/** Reads recall.yml (or the given path); the defaults if it does not exist. */
export function loadTenancy(path = 'recall.yml', required = false): TenancyConfig {
  const document = loadConfigDocument(path, required);
  return document === undefined ? DEFAULT_TENANCY : parseTenancy(document, path);
}

/** Validates the `tenancy` section of a parsed recall.yml. */
export function parseTenancy(document: unknown, origin = 'recall.yml'): TenancyConfig {
  const tenancy = (document as { tenancy?: unknown } | null)?.tenancy;
  if (tenancy === undefined || tenancy === null) return DEFAULT_TENANCY;
  if (typeof tenancy !== 'object') throw new UsageError(`${origin}: tenancy must be a mapping`, 'see README.md, "recall.yml"');
  const section = tenancy as Record<string, unknown>;
  const column = section.column ?? DEFAULT_TENANCY.column;
  if (typeof column !== 'string' || column === '')
    throw new UsageError(`${origin}: tenancy.column must be a column name`, 'e.g. column: tenant_id');
  const rootText = section.root ?? DEFAULT_TENANCY.root;
  if (typeof rootText !== 'string') throw new UsageError(`${origin}: tenancy.root must be a table name`, 'e.g. root: public.tenants');
  const tables: Record<string, TableTenancy> = {};
  const declared = section.tables ?? {};
  if (typeof declared !== 'object' || declared === null)
    throw new UsageError(`${origin}: tenancy.tables must be a mapping`, 'see README.md, "recall.yml"');
  for (const [name, value] of Object.entries(declared)) {
    const key = formatTableName(parseTableName(name));
    if (value === 'global') tables[key] = 'global';
    else if (typeof value === 'string' && value !== '') tables[key] = { column: value };
    else if (typeof value === 'object' && value !== null && typeof (value as { column?: unknown }).column === 'string') {
      tables[key] = { column: (value as { column: string }).column };
    } else {
      throw new UsageError(`${origin}: tenancy.tables.${name} must be "global" or { column: NAME }`, 'see README.md, "recall.yml"');
    }
  }
  const root = formatTableName(parseTableName(rootText));
  return Object.freeze({ column, root, tables: Object.freeze(tables) });
}
