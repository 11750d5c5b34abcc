// The tenant database the verify benchmarks share: accounts of about 250 B and events
// of about 150 B, 200 and 800 a tenant (1,001 rows a tenant with its own row).

/** Accounts a tenant has: ids 1 to this. */
export const ACCOUNTS = 200;
/** Rows a tenant contributes, over the three tables. */
export const ROWS_PER_TENANT = 1 + ACCOUNTS + 800;

/** The schema and rows of `tenants` tenants, analysed. */
export const tenantsSchema = (tenants: number): string => `
  CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE accounts (tenant_id int NOT NULL REFERENCES tenants, id int NOT NULL, name text, email text, balance numeric(12,2),
                         created timestamptz, doc jsonb, PRIMARY KEY (tenant_id, id));
  CREATE TABLE events (tenant_id int NOT NULL REFERENCES tenants, id bigint NOT NULL, kind text, at timestamptz, payload text,
                       PRIMARY KEY (tenant_id, id));
  INSERT INTO tenants SELECT t, 'tenant ' || t FROM generate_series(1, ${tenants}) t;
  INSERT INTO accounts SELECT t, i, 'account ' || i, 'user' || i || '@t' || t || '.example', i * 1.5, now() - i * interval '1 minute',
                              jsonb_build_object('plan', 'pro', 'seats', i % 50, 'note', repeat('n', 40))
    FROM generate_series(1, ${tenants}) t, generate_series(1, ${ACCOUNTS}) i;
  INSERT INTO events SELECT t, i, CASE WHEN i % 3 = 0 THEN 'login' ELSE 'update' END, now() - i * interval '1 second', repeat(md5(i::text), 3)
    FROM generate_series(1, ${tenants}) t, generate_series(1, 800) i;
  ANALYZE;`;
