// How Recall reaches the source: one place that turns --source / RECALL_SOURCE /
// DATABASE_URL / libpq's PG* variables into a client configuration, pins the
// session settings that shape values' text form, and names connection failures.

import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { SourceAuthError, SourceUnreachableError, UsageError } from '../errors.js';
import { isConnectionUrl, isKeywordValue, parseKeywordValue } from './conninfo.js';

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
  const text = flag ?? env.RECALL_SOURCE ?? env.DATABASE_URL;
  const base: pg.ClientConfig = text === undefined || text === '' ? {} : parseSource(text);
  // node-postgres reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and ~/.pgpass (or
  // PGPASSFILE) itself for what the string leaves out, but would give PGSSLMODE=require
  // verify-full's meaning; libpq's comes from the parser.
  const ssl = base.ssl ?? (env.PGSSLMODE ? sslOf({ sslmode: env.PGSSLMODE }) : undefined);
  const host = base.host ?? env.PGHOST ?? 'localhost';
  const port = base.port ?? (env.PGPORT ? Number(env.PGPORT) : 5432);
  const user = base.user ?? env.PGUSER ?? env.USER ?? 'postgres';
  const database = base.database ?? env.PGDATABASE ?? user;
  const pinned = Object.entries(PINNED_SETTINGS)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  return {
    client: {
      connectionTimeoutMillis: 10_000,
      ...base,
      ...(ssl === undefined ? {} : { ssl }),
      options: [base.options, pinned].filter(Boolean).join(' '),
      application_name: RECALL_APPLICATION,
      // Every value arrives as PostgreSQL's own text: never parsed into JS types.
      types: { getTypeParser: () => (value: string) => value },
    },
    display: `${user}@${host}:${port}/${database}`,
  };
}

/**
 * Reads a connection string as libpq does: a postgres:// or postgresql:// URL, or
 * key=value settings. Anything else is refused without being echoed, since a
 * mistyped URL (`postgres//user:secret@host`) would otherwise be read as a
 * database name and printed whole, password included.
 */
function parseSource(text: string): pg.ClientConfig {
  if (isKeywordValue(text)) return keywordSource(parseKeywordValue(text));
  if (!isConnectionUrl(text)) {
    throw new UsageError(
      'the source is neither a postgres:// URL nor key=value settings (it is not shown, since it may hold a password)',
      "give --source postgres://user@host:5432/database (user:password@host with a password), or 'host=… port=… dbname=… user=…'",
    );
  }
  // libpq reads an "@" after the host as part of the database name: almost always a
  // mistyped user:password@, whose password the server would then echo in its error.
  if (/^[a-z]+:\/\/[^/?#]*\/[^?#]*@/.test(text)) {
    throw new UsageError(
      'the source URL has an "@" after its host, where the database name goes (the URL is not shown, since it may hold a password)',
      'put the password before the host (postgres://user@host:5432/database, as user:password@host); percent-encode an @ inside a name as %40',
    );
  }
  let parsed;
  try {
    parsed = parseConnectionString(text, { useLibpqCompat: true });
  } catch (error) {
    // The parser's own message names no part of the input (it redacts it itself).
    throw new UsageError(
      `the source URL is malformed: ${(error as Error).message} (the URL is not shown, since it may hold a password)`,
      'give --source postgres://user@host:5432/database (user:password@host with a password), percent-encoding any of : / @ ? # in it',
    );
  }
  return {
    host: parsed.host || undefined,
    port: portOf(parsed.port ?? undefined),
    user: parsed.user || undefined,
    password: parsed.password || undefined,
    database: databaseOf(text),
    ssl: parsed.ssl as pg.ClientConfig['ssl'],
    options: parsed.options,
  };
}

/** A URL's database, percent-decoded as libpq does (the parser leaves %40 and %2F encoded). */
function databaseOf(url: string): string | undefined {
  const path = /^[a-z]+:\/\/[^/?#]*\/([^?#]*)/.exec(url)?.[1];
  if (path === undefined || path === '') return undefined;
  try {
    return decodeURIComponent(path);
  } catch {
    throw new UsageError('the database name in the source URL has a malformed %-escape', 'write a % in a name as %25');
  }
}

/** The key=value settings Recall honours; libpq's others would be silently different here. */
const HONOURED = new Set([
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'connect_timeout',
  'options',
  'application_name',
  'fallback_application_name',
  'sslmode',
  'sslcert',
  'sslkey',
  'sslrootcert',
]);

/** Key=value settings as a client configuration; an empty value means unset, as in libpq. */
function keywordSource(settings: ReadonlyMap<string, string>): pg.ClientConfig {
  const given = new Map([...settings].filter(([, value]) => value !== ''));
  for (const keyword of given.keys()) {
    if (!HONOURED.has(keyword)) {
      const instead = keyword === 'passfile' ? 'set PGPASSFILE instead' : 'remove it';
      throw new UsageError(`the source setting "${keyword}" is not supported by Recall`, instead);
    }
  }
  const timeout = given.get('connect_timeout');
  const ssl = sslOf(Object.fromEntries([...given].filter(([keyword]) => keyword.startsWith('ssl'))));
  return {
    // libpq connects to hostaddr, naming the server by host; node-postgres has only host.
    host: given.get('hostaddr') ?? given.get('host'),
    port: portOf(given.get('port')),
    user: given.get('user'),
    password: given.get('password'),
    database: given.get('dbname'),
    options: given.get('options'),
    ...(ssl === undefined ? {} : { ssl }),
    ...(timeout === undefined ? {} : { connectionTimeoutMillis: timeoutMillis(timeout) }),
  };
}

/** The port of a connection string, checked; never echoed, since a bare value can run on into the next setting. */
function portOf(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) {
    throw new UsageError('the source port is not a port number', 'fix the port in --source (1 to 65535)');
  }
  return Number(text);
}

/** connect_timeout in milliseconds: libpq's seconds, 0 for none, at least 2 s; never echoed, like the port. */
function timeoutMillis(text: string): number {
  if (!/^\d+$/.test(text))
    throw new UsageError('the source setting connect_timeout is not a whole number of seconds', 'e.g. connect_timeout=10');
  const seconds = Number(text);
  return seconds === 0 ? 0 : Math.max(seconds, 2) * 1000;
}

/** TLS settings with libpq's meaning of sslmode (node-postgres alone reads require as verify-full). */
function sslOf(settings: Readonly<Record<string, string>>): pg.ClientConfig['ssl'] {
  if (Object.keys(settings).length === 0) return undefined;
  try {
    return parseConnectionString(`postgres://?${new URLSearchParams(settings).toString()}`, { useLibpqCompat: true })
      .ssl as pg.ClientConfig['ssl'];
  } catch (error) {
    throw new UsageError(
      `the source's TLS settings are unusable: ${(error as Error).message}`,
      'check sslmode, sslcert, sslkey and sslrootcert',
    );
  }
}

/** Opens a connection, turning the usual failures into errors a user can act on. */
/** The application_name of every connection Recall opens: its own sessions tell themselves apart by it. */
export const RECALL_APPLICATION = 'recall';

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
