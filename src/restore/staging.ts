// Staging: the target state copied into temporary tables on the source, one per
// table, next to the live rows it will be compared with. Rows arrive by COPY in
// PostgreSQL's text format (the vault's own), so every type parses back exactly,
// and the diff, the checks and the writes are set-based SQL that follows the tenant.

import { once } from 'node:events';
import type pg from 'pg';
import { TargetRejectedError } from '../errors.js';
import { from as copyFrom } from 'pg-copy-streams';
import { mismatchedIndexError, sqlIdentifier, type SourceTable } from '../source/index.js';
import type { StagedShape } from './copy-text.js';
import type { TargetPiece } from './target.js';

/**
 * Staged rows (alias n) of some groups: $1 the tenants (text[]), $2 whether the global
 * rows (group null) are among them.
 */
export const ofGroups = (n: string): string => `(${n}.${GROUP} = ANY($1::text[]) OR (${n}.${GROUP} IS NULL AND $2::boolean))`;

/** The parameters ofGroups expects, for a list of groups (null: the global rows). */
export const groupParams = (groups: Iterable<string | null>): [string[], boolean] => {
  const list = [...groups];
  return [list.filter((g): g is string => g !== null), list.includes(null)];
};

/** Flag columns of a staging table; the dots keep them apart from any user column. */
export const PRESENT = '"recall.present"';
export const GROUP = '"recall.group"';
export const SKIP = '"recall.skip"';
export const CONFLICT = '"recall.conflict"';
/** An undo's changed-after conflict, known from the vault before staging; kept apart so every other check still runs. */
export const LATER = '"recall.later"';

/** A table of the plan with its staging table and the SQL fragments that relate the two. */
export class StagedTable implements StagedShape {
  /** Columns the target provides values for (never generated ones), key columns included. */
  readonly columns: readonly string[];
  /** The provided columns that are not part of the key: what an update sets and verify compares. */
  readonly valueColumns: readonly string[];
  /** Rows staged so far: targets, and the live rows a restore deletes. */
  rows = 0;

  constructor(
    readonly table: SourceTable,
    /** Name of the staging table in pg_temp. */
    readonly staging: string,
    layoutColumns: readonly string[] | undefined,
  ) {
    const writable = table.columns.filter((column) => !column.generated).map((column) => column.name);
    const provided = new Set([...(layoutColumns ?? writable), ...table.key]);
    this.columns = writable.filter((name) => provided.has(name));
    this.valueColumns = this.columns.filter((name) => !table.key.includes(name));
  }

  get name(): string {
    return this.table.qualified;
  }

  get key(): readonly string[] {
    return this.table.key;
  }

  /** Whether rows are identified by all their columns (no primary key, no identity index). */
  get fullIdentity(): boolean {
    return this.table.primaryKey.length === 0 && !this.table.identityIndex;
  }

  /** Join condition between a live row (alias a) and a staged row (alias b) of the same key. */
  sameKey(a: string, b: string): string {
    return this.table.key
      .map((column) => {
        const c = sqlIdentifier(column);
        // Under full identity there may be no equality operator (json): compare the text.
        return this.fullIdentity ? `${a}.${c}::text IS NOT DISTINCT FROM ${b}.${c}::text` : `${a}.${c} = ${b}.${c}`;
      })
      .join(' AND ');
  }

  /**
   * Whether the live rows under the staged keys are found in one scan of the key
   * index, by an array of the keys, and met in a hash join (findingLiveRows): on a
   * single-column key of a type that hashes, in a table that is not partitioned (the
   * array, not a constant, would be searched in every partition's index), for up to
   * KEY_SCAN_LIMIT staged rows. From PostgreSQL 17 on, the scan reads each index page
   * once, where a probe per staged row descends the index for each (some 3 times
   * slower for a tenant's keys, which sit close together); before 17 it still
   * descends once per key, in key order.
   */
  get scansKeys(): boolean {
    const [key, ...more] = this.table.key;
    const type = this.table.columns.find((column) => column.name === key)?.typeOid;
    return (
      !this.fullIdentity &&
      more.length === 0 &&
      !this.table.partitioned &&
      type !== undefined &&
      HASHED_KEY_TYPES.has(type) &&
      this.rows <= KEY_SCAN_LIMIT
    );
  }

  /**
   * Joins each staged row (n) to the live row of its key (l), if any; `l.ctid IS NULL`
   * when there is none. `looked` (SQL on alias s) says which staged rows' keys are
   * looked for: the same rows the query reads. Run the query through findingLiveRows.
   * Under full identity the same key can match several live rows, so one is taken.
   */
  liveRowJoin(n: string, l: string, looked: (s: string) => string): string {
    const sql = this.table.sql;
    if (this.fullIdentity) {
      return `LEFT JOIN LATERAL (SELECT x.*, x.ctid FROM ${sql} AS x WHERE ${this.sameKey('x', n)} LIMIT 1) AS ${l} ON true`;
    }
    if (!this.scansKeys) return `LEFT JOIN ${sql} AS ${l} ON ${this.sameKey(l, n)}`;
    const key = sqlIdentifier(this.table.key[0] as string);
    return `LEFT JOIN (SELECT x.ctid, x.* FROM ${sql} AS x
                        WHERE x.${key} = ANY(ARRAY(SELECT s.${key} FROM pg_temp.${this.staging} AS s WHERE ${looked('s')}))) AS ${l}
              ON ${this.sameKey(l, n)}`;
  }

  /**
   * Whether a live row (a) differs from a staged row (b) in any provided value, compared
   * as text. Rows whose values are identical byte for byte (record image equality, NULLs
   * equal) cannot differ as text, which spares most rows the output functions.
   */
  differs(a: string, b: string): string {
    if (this.valueColumns.length === 0) return 'false';
    const row = (alias: string): string => `ROW(${this.valueColumns.map((column) => `${alias}.${sqlIdentifier(column)}`).join(', ')})`;
    const asText = this.valueColumns
      .map((column) => `${a}.${sqlIdentifier(column)}::text IS DISTINCT FROM ${b}.${sqlIdentifier(column)}::text`)
      .join(' OR ');
    return `(NOT ${row(a)}::record *= ${row(b)}::record AND (${asText}))`;
  }

  /**
   * Whether a live row (alias a) belongs to the tenants in `tenants` (SQL for a text
   * array) or, where `global` (SQL for a boolean) holds, has no tenant: every row of
   * a global table. The tenant column is compared with an array of its own type, whose
   * size the planner sees, so it reads the tenants' rows by the column's index.
   */
  ofTenants(a: string, tenants: string, global: string): string {
    const column = this.table.tenantColumn;
    if (column === undefined) return global;
    const c = `${a}.${sqlIdentifier(column)}`;
    return `(${c} = ANY(CAST(${tenants} AS ${this.tenantType}[])) OR (${c} IS NULL AND ${global}))`;
  }

  /** The text form of a live row's tenant (alias a), or NULL for a global table. */
  tenantOf(a: string): string {
    return this.table.tenantColumn === undefined ? 'NULL::text' : `${a}.${sqlIdentifier(this.table.tenantColumn)}::text`;
  }

  /** A JSON object of a row's provided columns (alias a) as text values, for showing it in a plan. */
  rowJson(a: string): string {
    return `json_build_object(${this.columns.map((column) => `'${column.replaceAll("'", "''")}', ${a}.${sqlIdentifier(column)}::text`).join(', ')})`;
  }

  /** A JSON array of a row's key (alias a). */
  keyJson(a: string): string {
    return `json_build_array(${this.table.key.map((column) => `${a}.${sqlIdentifier(column)}::text`).join(', ')})::text`;
  }

  /** The type of the tenant column, for casting tenant ids given as text. */
  get tenantType(): string | undefined {
    return this.table.columns.find((column) => column.name === this.table.tenantColumn)?.type;
  }
}

/**
 * Most staged rows of a table whose keys are looked up in one scan: the array is held
 * in memory whole (2 MB of bigint keys, and an array may not pass 1 GB), and the
 * planner, which cannot see its size, sizes the hash join's table for a few rows.
 */
const KEY_SCAN_LIMIT = 250_000;

/**
 * Key types whose equality hashes, so the hash join is open to the planner: bool,
 * bytea, char, name, int8, int2, int4, text, oid, bpchar, varchar, date, timestamp,
 * timestamptz, numeric, uuid (by oid). Any other key, a domain included, is probed per row.
 */
const HASHED_KEY_TYPES: ReadonlySet<number> = new Set([16, 17, 18, 19, 20, 21, 23, 25, 26, 1042, 1043, 1082, 1114, 1184, 1700, 2950]);

/**
 * Runs `work`, whose joins find live rows of `staged`'s table by key, with nested
 * loops only: PostgreSQL's cost model, which assumes pages must be read from disk,
 * prefers hashing the whole live table to probing its key index once per staged row,
 * and a restore's cost must follow the tenant, not the table. Under full identity
 * there is no key index to probe, so the planner keeps its choice.
 */
export async function probingKeys<T>(client: pg.Client, staged: StagedTable, work: () => Promise<T>): Promise<T> {
  return staged.fullIdentity ? work() : planningWith(client, ['enable_hashjoin', 'enable_mergejoin'], work);
}

/**
 * Runs `work`, whose query joins staged rows to live ones by liveRowJoin. When the
 * keys are scanned, the live rows under them come out of one scan and meet the staged
 * rows in a hash join: a nested loop would scan them again for every staged row,
 * since the planner does not know how many keys the array holds. Bitmap scans are
 * off too: a plain index scan marks the index entries of dead rows it meets (a
 * deleted tenant's), so the inserts after it do not visit those rows again. Otherwise the
 * query probes the key index per row, as probingKeys says.
 */
export async function findingLiveRows<T>(client: pg.Client, staged: StagedTable, work: () => Promise<T>): Promise<T> {
  return staged.scansKeys
    ? planningWith(client, ['enable_nestloop', 'enable_mergejoin', 'enable_bitmapscan'], work)
    : probingKeys(client, staged, work);
}

/** Runs `work` with the given planner methods off, in one round trip each way. */
async function planningWith<T>(client: pg.Client, off: readonly string[], work: () => Promise<T>): Promise<T> {
  await client.query(off.map((setting) => `SET ${setting} = off`).join('; '));
  try {
    return await work();
  } finally {
    // In a failed transaction this fails too, and its rollback undoes the SETs anyway.
    await client.query(off.map((setting) => `RESET ${setting}`).join('; ')).catch(() => undefined);
  }
}

/** Creates the empty staging tables, each shaped like its table's provided columns, in one round trip. */
export async function createStaging(client: pg.Client, tables: readonly StagedTable[]): Promise<void> {
  // Typed like the table (domains and their checks included), so COPY parses each value with its own type.
  const statements = tables.map(
    (staged) => `DROP TABLE IF EXISTS pg_temp.${staged.staging};
      CREATE TEMP TABLE ${staged.staging} AS SELECT ${staged.columns.map(sqlIdentifier).join(', ')} FROM ${staged.table.sql} WITH NO DATA;
      ALTER TABLE pg_temp.${staged.staging}
        ADD COLUMN ${PRESENT} boolean NOT NULL DEFAULT true, ADD COLUMN ${GROUP} text,
        ADD COLUMN ${SKIP} boolean NOT NULL DEFAULT false, ADD COLUMN ${CONFLICT} text, ADD COLUMN ${LATER} text`,
  );
  if (statements.length > 0) await client.query(statements.join(';\n'));
}

/**
 * Indexes the key (joins use it) and, when the share holds several groups, the group
 * (each batch of apply selects its tenants' rows by it); stages the live rows a
 * restore replaces; and gathers statistics once all rows are in.
 */
export async function finishStaging(
  client: pg.Client,
  staged: StagedTable,
  share: StagingShare,
  options: { readonly stageLive: boolean },
): Promise<void> {
  await client.query(`CREATE INDEX ON pg_temp.${staged.staging} (${staged.table.key.map(sqlIdentifier).join(', ')})`);
  if (share.tenants === 'all' || share.tenants.length + (share.global ? 1 : 0) > 1) {
    await client.query(`CREATE INDEX ON pg_temp.${staged.staging} (${GROUP})`);
  }
  if (options.stageLive) await stageLiveRows(client, staged, share);
  // Statistics for the columns joins and filters use (the key, the flags), from a
  // small sample: the planner needs their sizes and spread, not the values' own.
  await client.query(`SET default_statistics_target = ${STATISTICS_TARGET}`);
  try {
    await client.query(`ANALYZE pg_temp.${staged.staging} (${[...staged.table.key.map(sqlIdentifier), PRESENT, GROUP, SKIP].join(', ')})`);
  } finally {
    await client.query('RESET default_statistics_target');
  }
}

/** Statistics target for staging tables: a sample of 3,000 rows. */
const STATISTICS_TARGET = 10;

/** The rows a session stages: those of the listed tenants, or of every tenant, with or without the global tables. */
export interface StagingShare {
  readonly tenants: readonly string[] | 'all';
  readonly global: boolean;
}

/** Copies one table's target rows into its staging table; returns how many. */
export async function copyTargets(
  client: pg.Client,
  staged: StagedTable,
  pieces: AsyncIterable<TargetPiece>,
  onPiece: (rows: number) => void = () => undefined,
): Promise<number> {
  const stream = client.query(
    copyFrom(`COPY pg_temp.${staged.staging} (${[...staged.columns.map(sqlIdentifier), PRESENT, GROUP, LATER].join(', ')}) FROM STDIN`),
  );
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  // PostgreSQL may reject a row while the next piece is being read: awaited below, never unhandled.
  done.catch(() => undefined);
  let count = 0;
  try {
    const reading = pieces[Symbol.asyncIterator]();
    for (let next = await reading.next(); next.done !== true;) {
      const piece = next.value;
      const drained = stream.write(piece.text) ? undefined : Promise.race([once(stream, 'drain'), done]);
      // The next piece is read (and rendered) while PostgreSQL parses this one.
      const following = reading.next();
      following.catch(() => undefined);
      await drained;
      count += piece.rows;
      onPiece(piece.rows);
      next = await following;
    }
  } catch (error) {
    stream.destroy(error as Error);
    await done.catch(() => undefined);
    throw rejected(staged, error);
  }
  stream.end();
  await done.catch((error: unknown) => {
    throw rejected(staged, error);
  });
  staged.rows += count;
  return count;
}

/**
 * A data or constraint error of the staging COPY, said as what it is: the table as it
 * is now (a domain's check, a type's range) refuses a row it held at the point.
 */
function rejected(staged: StagedTable, error: unknown): unknown {
  const code = (error as { code?: string }).code ?? '';
  if (!code.startsWith('22') && !code.startsWith('23')) return error;
  return new TargetRejectedError(
    `${staged.name} as it is now refuses a row the plan would write: ${(error as Error).message}; nothing was written`,
    'the table or a type it uses changed since the point: restore to a later point, or let the table take the old values again',
    { cause: error },
  );
}

/**
 * Stages the live rows in scope that the target does not hold: each is staged
 * absent, so apply deletes it. The key index keeps this a join, not a scan per row.
 */
async function stageLiveRows(client: pg.Client, staged: StagedTable, scope: StagingShare): Promise<void> {
  const key = staged.table.key.map(sqlIdentifier);
  if (staged.table.tenantColumn === undefined && !scope.global) return;
  const inScope = scope.tenants === 'all' ? 'true' : staged.ofTenants('l', '$1::text[]', String(scope.global));
  const { rowCount } = await client.query(
    `INSERT INTO pg_temp.${staged.staging} (${key.join(', ')}, ${PRESENT}, ${GROUP})
     SELECT ${key.map((c) => `l.${c}`).join(', ')}, false, ${staged.tenantOf('l')} FROM ${staged.table.sql} AS l
      WHERE ${inScope} AND NOT EXISTS (SELECT 1 FROM pg_temp.${staged.staging} AS n WHERE ${staged.sameKey('l', 'n')})`,
    inScope === 'true' ? [] : [scope.tenants],
  );
  staged.rows += rowCount ?? 0;
  if (inScope === 'true') return;
  // The tenant was read from each row, not from the index that found it: a damaged index
  // can return another tenant's row at a TID it reused, and a restore never touches one.
  // Compared as the selection compared them, by the column's type (citext, numeric): only another tenant is damage.
  const type = staged.table.columns.find((column) => column.name === staged.table.tenantColumn)?.type ?? 'text';
  const { rows } = await client.query<{ tenant: string | null }>(
    `SELECT DISTINCT ${GROUP} AS tenant FROM pg_temp.${staged.staging}
      WHERE NOT ${PRESENT} AND NOT (${GROUP}::${type} = ANY($1::text[]::${type}[]) OR ($2::boolean AND ${GROUP} IS NULL)) LIMIT 5`,
    [scope.tenants, scope.global],
  );
  if (rows.length > 0) {
    throw mismatchedIndexError(
      staged.name,
      `rows of tenant(s) ${rows.map((row) => row.tenant ?? '(none)').join(', ')} when asked for others`,
    );
  }
}
