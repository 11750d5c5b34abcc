// The `recall` schema on the source: where the freeze's guard function and the DDL
// hook live. Whichever role creates it (a superuser at init, or the first restore),
// every role may use what is in it, so a restore run by another role can attach the
// guard to its tables; only the owner can change what is in it.

import type pg from 'pg';
import { MissingPrivilegeError } from '../errors.js';
import { quoteIdentifier } from './table-name.js';

/** Creates the schema if it is missing; the owner makes its contents usable by every role. */
export async function ensureRecallSchema(client: pg.Client): Promise<void> {
  const owner = async () =>
    (
      await client.query<{ owner: string }>(
        `SELECT pg_has_role(nspowner, 'USAGE')::text AS owner FROM pg_namespace WHERE nspname = 'recall'`,
      )
    ).rows[0]?.owner;
  // CREATE SCHEMA IF NOT EXISTS takes CREATE on the database even when the schema is there already.
  if ((await owner()) === undefined) {
    try {
      await client.query('CREATE SCHEMA IF NOT EXISTS recall');
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error;
      const { rows } = await client.query<{ role: string; database: string }>(
        'SELECT current_user AS role, current_database() AS database',
      );
      const role = quoteIdentifier(rows[0]?.role ?? 'recall');
      const database = quoteIdentifier(rows[0]?.database ?? 'postgres');
      throw new MissingPrivilegeError(
        `the recall schema is missing, and role ${role} may not create it (no CREATE on database ${database})`,
        `GRANT CREATE ON DATABASE ${database} TO ${role}; (as a superuser), or run this command once as a superuser`,
        { cause: error },
      );
    }
  }
  if ((await owner()) === 'true') await client.query('GRANT USAGE ON SCHEMA recall TO PUBLIC');
}

/**
 * Creates or replaces a function in the `recall` schema unless it already has exactly
 * this body: another role may own it, and replacing it needs ownership.
 */
export async function ensureRecallFunction(client: pg.Client, name: string, body: string, definition: string): Promise<void> {
  const { rows } = await client.query<{ body: string }>(
    `SELECT p.prosrc AS body FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'recall' AND p.proname = $1`,
    [name],
  );
  if (rows.length === 1 && rows[0]?.body === body) return;
  await ensureRecallSchema(client);
  try {
    await client.query(definition);
  } catch (error) {
    if ((error as { code?: string }).code !== '42501') throw error;
    const { rows: who } = await client.query<{ role: string }>('SELECT current_user AS role');
    const role = quoteIdentifier(who[0]?.role ?? 'recall');
    throw new MissingPrivilegeError(
      `the function recall.${name} is missing or out of date, and role ${role} may not create functions in the recall schema`,
      `GRANT CREATE ON SCHEMA recall TO ${role}; (as a superuser), or run this command once as a superuser`,
      { cause: error },
    );
  }
}
