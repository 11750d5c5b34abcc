// Which database this is: the cluster's system identifier plus the database name.
// A vault records it at init and refuses any other source afterwards.

import type pg from 'pg';
import { UsageError } from '../errors.js';

/** The identity of a source database and its server version. */
export interface SourceFacts {
  readonly systemId: string;
  readonly database: string;
  readonly serverVersion: number;
}

/** The oldest major Recall supports: the first whose pgoutput carries logical messages. */
export const MIN_SERVER_VERSION = 140000;

/** Reads the source's identity; refuses servers older than PostgreSQL 14. */
export async function readSourceIdentity(client: pg.Client): Promise<SourceFacts> {
  const { rows } = await client.query<{ version: string; database: string; system_id: string | null }>(
    `SELECT current_setting('server_version_num') AS version, current_database() AS database,
            (SELECT system_identifier::text FROM pg_control_system()) AS system_id`,
  );
  const row = rows[0];
  if (row === undefined) throw new Error('no answer to the identity query');
  const serverVersion = Number(row.version);
  if (serverVersion < MIN_SERVER_VERSION) {
    throw new UsageError(
      `the source runs PostgreSQL ${Math.floor(serverVersion / 10000)}; Recall needs PostgreSQL 14 or newer`,
      'upgrade the server (14 is the first whose logical decoding carries transaction context)',
    );
  }
  return { systemId: row.system_id ?? 'unknown', database: row.database, serverVersion };
}
