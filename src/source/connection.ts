// How Recall reaches the source: one place that turns --source / RECALL_SOURCE /
// DATABASE_URL / libpq's PG* variables into a client configuration, pins the
// session settings that shape values' text form, and names connection failures.

import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { SourceAuthError, SourceUnreachableError, UsageError } from '../errors.js';

/**
 * Session settings that decide the text form of values. They are pinned on every
 * connection that reads row values, the walsender's included, so that a value read
 * from an image, from the stream and written back by a restore is the same text.
 */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
  lc_monetary: 'C',
  search_path: 'pg_catalog',
  client_encoding: 'UTF8',
};

/** The resolved connection to a source: a pg client configuration and a printable name. */
export interface SourceConfig {
  readonly client: pg.ClientConfig;
  /** user@host:port/database, never with the password. */
  readonly display: string;
}

/** Where the connection came from, in the order DESIGN.md gives. */
export function resolveSource(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): SourceConfig {
  const url = flag ?? env.RECALL_SOURCE ?? env.DATABASE_URL;
  let base: pg.ClientConfig;
  if (url !== undefined && url !== '') {
    let parsed;
    try {
      parsed = parseConnectionString(url, { useLibpqCompat: true });
    } catch (error) {
      throw new UsageError(
        `the source connection string is malformed: ${(error as Error).message}`,
        'give --source postgres://user@host:5432/database',
      );
    }
    base = {
      host: parsed.host ?? undefined,
      port: parsed.port ? Number(parsed.port) : undefined,
      user: parsed.user,
      password: parsed.password,
      database: parsed.database ?? undefined,
      ssl: parsed.ssl as pg.ClientConfig['ssl'],
      options: parsed.options,
    };
    if (Number.isNaN(base.port)) throw new UsageError(`the source port "${parsed.port}" is not a number`, 'fix the port in --source');
  } else {
    // No URL: node-postgres reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself,
    // but would give PGSSLMODE=require verify-full's meaning; libpq's comes from the parser.
    const sslmode = env.PGSSLMODE;
    base = sslmode
      ? {
          ssl: parseConnectionString(`postgres://?sslmode=${encodeURIComponent(sslmode)}`, { useLibpqCompat: true })
            .ssl as pg.ClientConfig['ssl'],
        }
      : {};
  }
  const host = base.host ?? env.PGHOST ?? 'localhost';
  const port = base.port ?? (env.PGPORT ? Number(env.PGPORT) : 5432);
  const user = base.user ?? env.PGUSER ?? env.USER ?? 'postgres';
  const database = base.database ?? env.PGDATABASE ?? user;
  const pinned = Object.entries(PINNED_SETTINGS)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  return {
    client: {
      ...base,
      options: [base.options, pinned].filter(Boolean).join(' '),
      application_name: 'recall',
      connectionTimeoutMillis: 10_000,
      // Every value arrives as PostgreSQL's own text: never parsed into JS types.
      types: { getTypeParser: () => (value: string) => value },
    },
    display: `${user}@${host}:${port}/${database}`,
  };
}

/** Opens a connection, turning the usual failures into errors a user can act on. */
export async function connectSource(source: SourceConfig, options: { replication?: boolean } = {}): Promise<pg.Client> {
  const client = new pg.Client(options.replication ? ({ ...source.client, replication: 'database' } as pg.ClientConfig) : source.client);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw describeConnectError(error, source);
  }
  return client;
}

/** Maps a driver error on connect to Recall's typed errors. */
export function describeConnectError(error: unknown, source: SourceConfig): Error {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  if (code === '28P01' || code === '28000') {
    return new SourceAuthError(
      `the source ${source.display} refused the login: ${message}`,
      'check the user and password in --source (or PGUSER/PGPASSWORD) and pg_hba.conf',
    );
  }
  if (code === '3D000') {
    return new SourceAuthError(`the source ${source.display} has no such database: ${message}`, 'check the database name in --source');
  }
  if (code === '57P03') {
    return new SourceUnreachableError(
      `the source ${source.display} is starting up or shutting down`,
      'wait for the server to accept connections, then retry',
    );
  }
  if (code === undefined || /^E[A-Z]+$/.test(code) || /timeout|terminated/i.test(message)) {
    return new SourceUnreachableError(
      `cannot reach the source ${source.display}: ${message}`,
      'check that the server is running and that host and port in --source are right',
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(message);
}
