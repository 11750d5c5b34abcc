// A change: one committed row change, as the vault stores it. Image rows (the
// state at one LSN) use the same shape with op 'image', so reconstruction reads
// both kinds of layer with one query.

/** What happened to a row. 'image' is a row of an image layer, not a change. */
export type ChangeOp = 'image' | 'insert' | 'update' | 'delete' | 'truncate';

/** One row of a layer. Values are PostgreSQL's text, kept as JSON strings. */
export interface ChangeRecord {
  /** Commit LSN of the transaction (or the image's LSN). */
  readonly commitLsn: bigint;
  /** Position of the change inside its transaction. */
  readonly seq: number;
  /** Commit time, microseconds since the Unix epoch, UTC. */
  readonly commitTime: bigint;
  /** 64-bit transaction id; null for image rows. */
  readonly xid: bigint | null;
  /** Schema-qualified, quoted table name. */
  readonly table: string;
  readonly op: ChangeOp;
  /** Text form of the tenant id; null for global tables. */
  readonly tenant: string | null;
  /** JSON array of the primary key's text values. */
  readonly key: string;
  /** Schema version (manifest.schemas[].id) the row was written under. */
  readonly schemaId: number;
  /** JSON object column → text value or null: the row after the change (before it, for deletes). */
  readonly row: string | null;
  /** JSON transaction context (actor, request id…) or null. */
  readonly context: string | null;
}

/** A change as capture stages it: its row as the UTF-8 bytes of its JSON text (row-json.ts). */
export type StagedChange = Omit<ChangeRecord, 'row'> & { readonly row: Uint8Array | null };

/**
 * Column definitions of a layer file, in file order. Capture's staging table holds the
 * row as BLOB: the UTF-8 bytes of its JSON, which DuckDB's appender copies as they are.
 */
export function layerColumns(row: 'VARCHAR' | 'BLOB' = 'VARCHAR'): string {
  return `
  commit_lsn UBIGINT NOT NULL,
  seq UINTEGER NOT NULL,
  commit_time TIMESTAMP NOT NULL,
  xid UBIGINT,
  "table" VARCHAR NOT NULL,
  op VARCHAR NOT NULL,
  tenant VARCHAR,
  "key" VARCHAR NOT NULL,
  schema_id UINTEGER NOT NULL,
  "row" ${row},
  context VARCHAR`;
}

/** The same columns as a select list. */
export const LAYER_COLUMN_NAMES = 'commit_lsn, seq, commit_time, xid, "table", op, tenant, "key", schema_id, "row", context';

/** Order of rows inside a layer: a tenant's rows are contiguous, so row-group statistics skip the rest. */
export const LAYER_ORDER = 'tenant, "table", "key", commit_lsn, seq';
