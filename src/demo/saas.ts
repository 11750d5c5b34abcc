// A small multi-tenant SaaS, as Recall meets them: a tenants root, tables keyed by
// identity and serial columns with foreign keys that cascade, a self-reference, a
// composite key, a global-unique email, updated_at triggers and a global table.
// The demo runs on it; tests and benchmarks use it as a realistic workload.

import type pg from 'pg';
import { recallContextSql } from '../capture/index.js';
import { prng } from './random.js';

/** The schema, in the public schema of an empty database. */
export const SAAS_SCHEMA = `
  CREATE TABLE plans (name text PRIMARY KEY, monthly_price numeric(10,2) NOT NULL);
  INSERT INTO plans VALUES ('free', 0), ('team', 49.00), ('enterprise', 990.00);
  CREATE TABLE tenants (id text PRIMARY KEY, name text NOT NULL, plan text NOT NULL REFERENCES plans,
                        created_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                      tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
                      email text NOT NULL UNIQUE, name text NOT NULL,
                      updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE projects (id serial PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
                         name text NOT NULL, UNIQUE (tenant_id, name));
  CREATE TABLE issues (id bigserial PRIMARY KEY, tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
                       project_id int NOT NULL REFERENCES projects ON DELETE CASCADE,
                       parent_id bigint REFERENCES issues ON DELETE CASCADE,
                       assignee_id bigint REFERENCES users ON DELETE SET NULL,
                       title text NOT NULL, status text NOT NULL DEFAULT 'open', labels text[] NOT NULL DEFAULT '{}',
                       updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE memberships (tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
                            project_id int NOT NULL REFERENCES projects ON DELETE CASCADE,
                            user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,
                            role text NOT NULL, PRIMARY KEY (tenant_id, project_id, user_id));
  CREATE INDEX ON users (tenant_id);
  CREATE INDEX ON projects (tenant_id);
  CREATE INDEX ON issues (tenant_id);
  CREATE INDEX ON issues (project_id);
  CREATE INDEX ON issues (parent_id);
  CREATE INDEX ON issues (assignee_id);
  CREATE INDEX ON memberships (project_id);
  CREATE INDEX ON memberships (user_id);
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
  CREATE TRIGGER users_touch BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
  CREATE TRIGGER issues_touch BEFORE INSERT OR UPDATE ON issues FOR EACH ROW EXECUTE FUNCTION touch();
`;

/** The tables that hold a tenant's rows, parents first. */
export const TENANT_TABLES = ['tenants', 'users', 'projects', 'issues', 'memberships'] as const;

/** Names of n tenants: t001, t002, … */
export function tenantNames(n: number, from = 1): string[] {
  return Array.from({ length: n }, (_, i) => `t${String(from + i).padStart(3, '0')}`);
}

/** How much each tenant starts with. */
export interface TenantSize {
  readonly users: number;
  readonly projects: number;
  readonly issuesPerProject: number;
}

export const SMALL_TENANT: TenantSize = { users: 3, projects: 2, issuesPerProject: 4 };

/** Signs up tenants with users, projects, issues (some with a parent) and memberships, in one statement per table. */
export async function signUp(db: pg.Client, tenants: readonly string[], size: TenantSize = SMALL_TENANT): Promise<void> {
  await db.query(
    `INSERT INTO public.tenants (id, name, plan) SELECT t, 'Tenant ' || t, (ARRAY['free','team','enterprise'])[1 + abs(hashtext(t)) % 3]
       FROM unnest($1::text[]) t`,
    [tenants],
  );
  await db.query(
    `INSERT INTO public.users (tenant_id, email, name)
     SELECT t, 'user' || u || '@' || t || '.example', 'User ' || u FROM unnest($1::text[]) t, generate_series(1, $2) u`,
    [tenants, size.users],
  );
  await db.query(
    `INSERT INTO public.projects (tenant_id, name) SELECT t, 'Project ' || p FROM unnest($1::text[]) t, generate_series(1, $2) p`,
    [tenants, size.projects],
  );
  await db.query(
    `INSERT INTO public.issues (tenant_id, project_id, assignee_id, title, labels)
     SELECT p.tenant_id, p.id, (SELECT min(u.id) FROM public.users u WHERE u.tenant_id = p.tenant_id),
            'Issue ' || i || ' of ' || p.name, ARRAY['bug', 'p' || (i % 3)]
       FROM public.projects p, generate_series(1, $2) i WHERE p.tenant_id = ANY($1)`,
    [tenants, size.issuesPerProject],
  );
  await db.query(
    `UPDATE public.issues c SET parent_id = (SELECT min(p.id) FROM public.issues p WHERE p.project_id = c.project_id)
      WHERE c.tenant_id = ANY($1) AND c.id <> (SELECT min(p.id) FROM public.issues p WHERE p.project_id = c.project_id)
        AND c.id % 2 = 0`,
    [tenants],
  );
  await db.query(
    `INSERT INTO public.memberships (tenant_id, project_id, user_id, role)
     SELECT p.tenant_id, p.id, u.id, CASE WHEN u.id % 2 = 0 THEN 'admin' ELSE 'member' END
       FROM public.projects p JOIN public.users u ON u.tenant_id = p.tenant_id WHERE p.tenant_id = ANY($1)`,
    [tenants],
  );
}

/** One transaction of ordinary work for a tenant: an issue opened, edited, closed or deleted, a user renamed, a plan changed. */
export async function work(db: pg.Client, tenant: string, random: () => number): Promise<void> {
  const roll = random();
  await db.query('BEGIN');
  try {
    await db.query(...recallContextSql({ actor: 'app', tenant }));
    if (roll < 0.35) {
      await db.query(
        `INSERT INTO public.issues (tenant_id, project_id, title)
         SELECT tenant_id, id, 'New issue ' || $2 FROM public.projects WHERE tenant_id = $1 ORDER BY id LIMIT 1`,
        [tenant, Math.floor(random() * 1e6)],
      );
    } else if (roll < 0.65) {
      await db.query(
        `UPDATE public.issues SET status = (ARRAY['open','doing','done'])[1 + $2::int % 3], title = title || '.'
          WHERE id = (SELECT id FROM public.issues WHERE tenant_id = $1 ORDER BY id OFFSET $3 LIMIT 1)`,
        [tenant, Math.floor(random() * 3), Math.floor(random() * 8)],
      );
    } else if (roll < 0.8) {
      await db.query(
        `DELETE FROM public.issues WHERE id = (SELECT max(id) FROM public.issues WHERE tenant_id = $1 AND parent_id IS NULL)`,
        [tenant],
      );
    } else if (roll < 0.95) {
      await db.query(`UPDATE public.users SET name = 'Renamed ' || $2 WHERE id = (SELECT min(id) FROM public.users WHERE tenant_id = $1)`, [
        tenant,
        Math.floor(random() * 1e6),
      ]);
    } else {
      await db.query(`UPDATE public.tenants SET plan = (ARRAY['free','team','enterprise'])[1 + $2::int % 3] WHERE id = $1`, [
        tenant,
        Math.floor(random() * 3),
      ]);
    }
    await db.query('COMMIT');
  } catch (error) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The mistake: a cleanup script that hard-deletes tenants, a batch per transaction, each tagged with its actor. */
export async function cleanupScript(
  db: pg.Client,
  tenants: readonly string[],
  batch: number,
  options: { actor?: string; pauseMs?: number } = {},
): Promise<bigint[]> {
  const actor = options.actor ?? 'cleanup-script';
  const xids: bigint[] = [];
  for (let i = 0; i < tenants.length; i += batch) {
    if (i > 0 && options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    await db.query('BEGIN');
    await db.query(...recallContextSql({ actor, ticket: 'OPS-1234' }));
    await db.query('DELETE FROM public.tenants WHERE id = ANY($1)', [tenants.slice(i, i + batch)]);
    const { rows } = await db.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    await db.query('COMMIT');
    xids.push(BigInt(rows[0]?.xid ?? '0'));
  }
  return xids;
}

/** Keeps tenants working (one transaction at a time, in turn) until stopped; resolves to the number of transactions. */
export function keepWorking(db: pg.Client, tenants: readonly string[], seed: number): { stop(): Promise<number> } {
  const random = prng(seed);
  let running = true;
  let count = 0;
  const loop = (async () => {
    while (running) {
      await work(db, tenants[Math.floor(random() * tenants.length)] as string, random);
      count++;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return count;
    },
  };
}

/** table → rows as JSON text, sorted: a state two moments can be compared by. */
export type SaasState = Record<string, string[]>;

/** The rows of the given tenants in every tenant table. */
export async function tenantState(db: pg.Client, tenants: readonly string[]): Promise<SaasState> {
  return state(db, (column) => `${column} = ANY($1)`, [tenants], false);
}

/** Every row not of the given tenants, the global plans table included. */
export async function othersState(db: pg.Client, tenants: readonly string[]): Promise<SaasState> {
  return state(db, (column) => `NOT (${column} = ANY($1))`, [tenants], true);
}

async function state(db: pg.Client, where: (column: string) => string, params: unknown[], global: boolean): Promise<SaasState> {
  const out: SaasState = {};
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

/** Rows in a state. */
export function rowCount(s: SaasState): number {
  return Object.values(s).reduce((sum, rows) => sum + rows.length, 0);
}
