// Ground truth for the sample SaaS: every row of chosen tenants (or of everyone
// else, global tables included) as the server prints it, sorted, so two moments
// compare exactly.

import pg from 'pg';
import { TENANT_TABLES } from '../../src/demo/saas.js';

/** table → rows as text (row_to_json of each row), sorted. */
export type State = Record<string, string[]>;

/** The rows of the given tenants in every tenant table. */
export async function tenantState(db: pg.Client, tenants: readonly string[]): Promise<State> {
  return state(db, (column) => `${column} = ANY($1)`, [tenants], false);
}

/** Every row not of the given tenants, the global table included. */
export async function othersState(db: pg.Client, tenants: readonly string[]): Promise<State> {
  return state(db, (column) => `NOT (${column} = ANY($1))`, [tenants], true);
}

async function state(db: pg.Client, where: (column: string) => string, params: unknown[], global: boolean): Promise<State> {
  const out: State = {};
  for (const table of TENANT_TABLES) {
    const column = table === 'tenants' ? 'id' : 'tenant_id';
    const { rows } = await db.query<{ r: string }>(
      `SELECT row_to_json(t)::text AS r FROM public.${table} t WHERE ${where(column)} ORDER BY 1`,
      params,
    );
    out[table] = rows.map((row) => row.r);
  }
  if (global)
    out.plans = (await db.query<{ r: string }>('SELECT row_to_json(t)::text AS r FROM public.plans t ORDER BY 1')).rows.map((row) => row.r);
  return out;
}

/** Row counts per table of a state, for readable assertion messages. */
export function counts(s: State): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([table, rows]) => [table, rows.length]));
}
