// `recall report --from-verify`: a verify's differences (its --json output) told per
// tenant: for each table the rows the database lost, the rows it holds that the
// history never had, and the rows changed with the columns that changed.

import { UsageError } from '../errors.js';
import { z } from 'zod';

/** What one tenant lost or gained in one table, by verify's account. */
export interface TableLoss {
  readonly table: string;
  /** Rows in the history, gone from the database. */
  readonly missing: number;
  /** Rows in the database the history never had. */
  readonly extra: number;
  /** Rows whose values differ, and the columns that do. */
  readonly changed: number;
  readonly columns: readonly string[];
}

export interface TenantLoss {
  readonly tenant: string | null;
  readonly tables: readonly TableLoss[];
}

export interface LossReport {
  /** The snapshots verify compared at, as LSNs. */
  readonly at: readonly string[];
  readonly tenants: readonly TenantLoss[];
  /** Differences verify counted without listing them: not in this report. */
  readonly unlisted: number;
}

const VerifyOutput = z.object({
  batches: z.array(z.object({ lsn: z.string() })),
  differences: z.array(
    z.object({
      kind: z.enum(['missing-live', 'extra-live', 'differs']),
      table: z.string(),
      tenant: z.string().nullable(),
      columns: z.array(z.string()).optional(),
    }),
  ),
  unlisted: z.number(),
});

/** Reads `recall verify --json` output (`origin` names where it came from) into a per-tenant report. */
export function reportFromVerify(text: string, origin: string): LossReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${origin} is not JSON`, 'give the output of `recall verify --json` (a file, or - for stdin)');
  }
  const result = VerifyOutput.safeParse(parsed);
  if (!result.success) {
    throw new UsageError(
      `${origin} is not the output of \`recall verify --json\``,
      'run `recall verify --json > verify.json`, then `recall report --from-verify verify.json`',
    );
  }
  const byTenant = new Map<string, Map<string, { missing: number; extra: number; changed: number; columns: string[] }>>();
  for (const difference of result.data.differences) {
    const tenantKey = JSON.stringify(difference.tenant);
    const tables = byTenant.get(tenantKey) ?? new Map();
    byTenant.set(tenantKey, tables);
    const table = tables.get(difference.table) ?? { missing: 0, extra: 0, changed: 0, columns: [] };
    tables.set(difference.table, table);
    if (difference.kind === 'missing-live') table.missing++;
    else if (difference.kind === 'extra-live') table.extra++;
    else {
      table.changed++;
      for (const column of difference.columns ?? []) if (!table.columns.includes(column)) table.columns.push(column);
    }
  }
  return {
    at: result.data.batches.map((batch) => batch.lsn),
    unlisted: result.data.unlisted,
    tenants: [...byTenant].map(([tenantKey, tables]) => ({
      tenant: JSON.parse(tenantKey) as string | null,
      tables: [...tables].map(([table, counts]) => ({ table, ...counts })),
    })),
  };
}
