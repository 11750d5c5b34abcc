// Tenancy: which column of each table names its tenant. By default `tenant_id`
// everywhere and a root table `tenants` keyed by the tenant id; `recall.yml`
// overrides the column, the root, and individual tables.

/** Per-table tenancy declared in recall.yml: a tenant column, or `global`. */
export type TableTenancy = { readonly column: string } | 'global';

/** Where a setting was written in recall.yml: its key as written and its line (1-based). */
export interface SettingOrigin {
  readonly key: string;
  readonly line: number;
}

/**
 * Which tenancy settings recall.yml wrote, and where, so that a check against the
 * source can name the key and line to fix. Absent for the defaults: a default that
 * the source does not match (no `tenants` table) is not a mistake, a written one is.
 */
export interface TenancyOrigin {
  readonly file: string;
  readonly column?: SettingOrigin;
  readonly root?: SettingOrigin;
  /** By formatted table name (public.issues). */
  readonly tables: Readonly<Record<string, SettingOrigin>>;
}

/** The tenancy rules in force. Table keys are formatted names (public.issues). */
export interface TenancyConfig {
  readonly column: string;
  readonly root: string;
  readonly tables: Readonly<Record<string, TableTenancy>>;
  readonly origin?: TenancyOrigin;
}

/** The tenancy Recall assumes when recall.yml says nothing. */
export const DEFAULT_TENANCY: TenancyConfig = Object.freeze({ column: 'tenant_id', root: 'public.tenants', tables: {} });

/** "recall.yml line 4: tenancy.root" for a written setting; the bare key without an origin. */
export function describeSetting(file: string | undefined, origin: SettingOrigin | undefined, fallbackKey: string): string {
  return origin === undefined || file === undefined ? fallbackKey : `${file} line ${origin.line}: ${origin.key}`;
}
