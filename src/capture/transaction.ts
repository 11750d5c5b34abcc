// One transaction as the stream delivers it: its commit position and widened xid, the
// context Recall's own message gave it, and its row messages turned into the vault's
// changes (the row as JSON bytes, its key, its tenant, the TOAST values left out).

import type { Lsn } from '../timeline/index.js';
import type { StagedChange } from '../vault/index.js';
import type { ColumnValue, Tuple } from './pgoutput.js';
import type { StreamRelation } from './relations.js';
import { rowJson } from './row-json.js';

export class StreamTransaction {
  /** The position of the next change within the transaction. */
  seq = 0;
  context: string | null = null;
  /** Changes staged before the context arrived (they get it by one UPDATE; later ones carry it when appended). */
  contextLate = false;

  constructor(
    readonly commitLsn: Lsn,
    readonly commitTime: bigint,
    readonly xid: bigint,
    /** Already in the vault (sent again after a crash): received and dropped. */
    readonly duplicate: boolean,
  ) {}

  /** Recall's own logical message: the actor and context of the whole transaction, whenever it came. */
  setContext(content: Buffer): void {
    this.context = normaliseContext(content);
    this.contextLate = this.seq > 0;
  }

  /**
   * A row message as the vault's change, and the columns whose TOASTed values it left
   * out (the flush completes them). A DELETE carries its whole row only under REPLICA
   * IDENTITY FULL (`whole`); else the flush takes the row from its previous version.
   * The change's row is a view of rowJson's buffer: it is staged before the next change is made.
   */
  change(
    op: 'insert' | 'update' | 'delete',
    relation: StreamRelation,
    tuple: Tuple,
    whole: boolean,
  ): { change: StagedChange; unchanged: string[] | undefined } {
    const tenantValue = relation.tenantIndex === undefined ? null : tuple.value(relation.tenantIndex);
    let row: Buffer | null = null;
    let unchanged: string[] | undefined;
    // A removed row with a value left out is looked up whole instead: a delete is completed from one version.
    if (op !== 'delete' || (whole && !tuple.hasUnchanged)) {
      row = rowJson(relation.jsonNames, tuple);
      if (tuple.hasUnchanged) unchanged = relation.columnNames.filter((_, i) => tuple.isUnchanged(i));
    }
    const change: StagedChange = {
      commitLsn: this.commitLsn,
      seq: this.seq++,
      commitTime: this.commitTime,
      xid: this.xid,
      table: relation.table,
      op,
      // A DELETE's tenant, when its key does not hold it, comes from the previous version at flush.
      tenant: typeof tenantValue === 'string' ? tenantValue : null,
      key: keyOf(relation, tuple),
      schemaId: relation.schemaId,
      row,
      context: this.context,
    };
    return { change, unchanged };
  }
}

/** A row's key as the vault stores it: the JSON array of its key columns' text. */
export function keyOf(relation: StreamRelation, tuple: Tuple): string {
  const indexes = relation.keyIndexes;
  let key = '[';
  for (let n = 0; n < indexes.length; n++) key += (n === 0 ? '' : ',') + jsonValue(tuple.value(indexes[n]!));
  return `${key}]`;
}

/** A column's value as JSON text: a string, or null (for NULL, and for a TOASTed value not sent). */
function jsonValue(value: ColumnValue): string {
  return typeof value === 'string' ? JSON.stringify(value) : 'null';
}

/** Context must be a JSON object; anything else is kept, wrapped, rather than lost. */
function normaliseContext(content: Buffer): string {
  const text = content.toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return JSON.stringify(parsed);
  } catch {
    // fall through: not JSON
  }
  return JSON.stringify({ message: text });
}
