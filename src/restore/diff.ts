// The diff between the staged target and the live rows, and the conflicts that
// would stop it from being written as planned: a key or unique value another row
// holds, a foreign key that would dangle. Each check marks the staged rows it finds
// (a JSON document in "recall.conflict" with the live row in the way), so the plan
// lists every conflict with both versions and apply can leave resolved rows out.

import type pg from 'pg';
import { mismatchedIndexError, sqlIdentifier, sqlTableName, parseTableName, type Constraints } from '../source/index.js';
import type { Conflict, ConflictKind, ConflictResolution, Key, Row, TableSteps } from './plan.js';
import { CONFLICT, findingLiveRows, GROUP, groupParams, LATER, ofGroups, PRESENT, probingKeys, SKIP, type StagedTable } from './staging.js';

/** The staged tables of a plan by name, with the source's constraints. */
export interface StagedPlan {
  readonly tables: ReadonlyMap<string, StagedTable>;
  readonly constraints: Constraints;
}

/** Writes per group and table. */
export interface TableDiff extends TableSteps {
  readonly tenant: string | null;
}

const s = (staged: StagedTable): string => `pg_temp.${staged.staging}`;

/** A conflict document as stored in "recall.conflict". */
function conflictDoc(kind: ConflictKind, detail: string, theirs: string): string {
  return `json_build_object('kind', '${kind}', 'detail', ${detail}, 'theirs', ${theirs})::text`;
}

/** A live row (alias t) still there after apply: not replaced by a staged row that will be written. */
function remains(staged: StagedTable, t: string): string {
  return `NOT EXISTS (SELECT 1 FROM ${s(staged)} r WHERE ${staged.sameKey(t, 'r')} AND NOT r.${SKIP})`;
}

/**
 * Marks the staged rows (n) that `candidates` selects and, if `inWay` is given, that
 * have a row in their way: `inWay` (FROM … WHERE …, correlated to n) finds it and
 * `doc` describes it. The search stays in the WHERE clause, where PostgreSQL turns
 * it into a join; the document is built only for the few rows marked.
 */
async function mark(client: pg.Client, staged: StagedTable, check: { candidates: string; inWay?: string; doc: string }): Promise<number> {
  const { candidates, inWay, doc } = check;
  const result = await client.query(
    `UPDATE ${s(staged)} AS n SET ${CONFLICT} = ${inWay === undefined ? doc : `(SELECT ${doc} ${inWay} LIMIT 1)`}
      WHERE NOT n.${SKIP} AND n.${CONFLICT} IS NULL AND ${candidates} ${inWay === undefined ? '' : `AND EXISTS (SELECT 1 ${inWay})`}`,
  );
  return result.rowCount ?? 0;
}

/**
 * Finds every conflict not yet marked; returns how many it marked in each table that
 * has any. Keys held by another tenant are searched for only in the tables where
 * countWrites found some.
 */
async function markConflicts(client: pg.Client, plan: StagedPlan, counts: ReadonlyMap<string, TableCount>): Promise<Map<string, number>> {
  const marks = new Map<string, number>();
  for (const staged of plan.tables.values()) {
    let marked = 0;
    const t = staged.table;
    // A key now held by another tenant's row: writing ours would move that row.
    if (t.tenantColumn !== undefined && (counts.get(staged.name)?.held ?? 0) > 0) {
      marked += await probingKeys(client, staged, () =>
        mark(client, staged, {
          candidates: `n.${PRESENT}`,
          inWay: `FROM ${t.sql} l WHERE ${staged.sameKey('l', 'n')} AND ${staged.tenantOf('l')} IS DISTINCT FROM n.${GROUP}`,
          doc: conflictDoc('unique', `'the key is now held by a row of tenant ' || ${staged.tenantOf('l')}`, staged.rowJson('l')),
        }),
      );
    }
    for (const unique of plan.constraints.uniqueKeys.filter((u) => u.table === t.qualified)) {
      if (!unique.columns.every((column) => staged.columns.includes(column))) continue;
      const columns = unique.columns.map(sqlIdentifier);
      marked += await mark(client, staged, {
        candidates: [`n.${PRESENT}`, ...columns.map((c) => `n.${c} IS NOT NULL`)].join(' AND '),
        inWay: `FROM ${t.sql} l WHERE ${columns.map((c) => `l.${c} = n.${c}`).join(' AND ')} AND ${remains(staged, 'l')}`,
        doc: conflictDoc(
          'unique',
          `'${unique.name.replaceAll("'", "''")} (${unique.columns.join(', ').replaceAll("'", "''")}) is held by another row'`,
          staged.rowJson('l'),
        ),
      });
    }
    marked += await markForeignKeys(client, plan, staged);
    if (marked > 0) marks.set(staged.name, marked);
  }
  return marks;
}

/** Foreign keys from and to a staged table that would dangle after apply. */
async function markForeignKeys(client: pg.Client, plan: StagedPlan, staged: StagedTable): Promise<number> {
  let marked = 0;
  for (const key of plan.constraints.foreignKeys) {
    const parentSql = sqlTableName(parseTableName(key.parent));
    const parentStaged = plan.tables.get(key.parent);
    const childStaged = plan.tables.get(key.child);
    const match = (child: string, parent: string): string =>
      key.childColumns
        .map((c, i) => `${parent}.${sqlIdentifier(key.parentColumns[i] as string)} = ${child}.${sqlIdentifier(c)}`)
        .join(' AND ');
    const label = `'${key.name.replaceAll("'", "''")}: ' || '${key.child.replaceAll("'", "''")} → ${key.parent.replaceAll("'", "''")}'`;
    if (key.child === staged.name && key.childColumns.every((column) => staged.columns.includes(column))) {
      // Our row would reference a parent row that will not exist (none is kept, none is
      // written). A kept row of another tenant is a parent like any other (a remote order
      // line's stock row, a shared catalogue row), unless the target holds a row of a
      // different tenant under that key and leaves it out: --on-conflict theirs kept
      // another tenant's row there, and ours must not end up referencing it.
      const scopedParent =
        staged.table.tenantColumn !== undefined && parentStaged?.table.tenantColumn !== undefined ? parentStaged : undefined;
      const targetParent =
        parentStaged !== undefined && key.parentColumns.every((c) => parentStaged.columns.includes(c)) ? parentStaged : undefined;
      // The live parent row our row would reference, if it stays.
      const keptParent = `FROM ${parentSql} p WHERE ${match('n', 'p')}${parentStaged === undefined ? '' : ` AND ${remains(parentStaged, 'p')}`}`;
      // Where the target's values of the referenced columns are not staged (a generated
      // column, one added since), it cannot be searched: only our tenant's row is safe.
      const meant =
        scopedParent === undefined
          ? 'true'
          : targetParent === undefined
            ? `${scopedParent.tenantOf('p')} IS NOT DISTINCT FROM n.${GROUP}`
            : `NOT EXISTS (SELECT 1 FROM ${s(targetParent)} q WHERE q.${PRESENT} AND q.${SKIP} AND ${match('n', 'q')}
                 AND q.${GROUP} IS DISTINCT FROM ${scopedParent.tenantOf('p')})`;
      const parentKept = `EXISTS (SELECT 1 ${keptParent} AND ${meant})`;
      const otherTenant = scopedParent === undefined ? 'NULL::text' : `(SELECT ${scopedParent.tenantOf('p')} ${keptParent} LIMIT 1)`;
      const parentWritten =
        targetParent === undefined
          ? 'false'
          : `EXISTS (SELECT 1 FROM ${s(targetParent)} q WHERE q.${PRESENT} AND NOT q.${SKIP} AND ${match('n', 'q')})`;
      marked += await mark(client, staged, {
        candidates: [
          `n.${PRESENT}`,
          ...key.childColumns.map((c) => `n.${sqlIdentifier(c)} IS NOT NULL`),
          `NOT ${parentKept}`,
          `NOT ${parentWritten}`,
        ].join(' AND '),
        doc: conflictDoc(
          'foreign-key',
          `${label} || coalesce(': the referenced row belongs to tenant ' || ${otherTenant}, ': the referenced row would not exist')`,
          'NULL::json',
        ),
      });
    }
    if (key.parent === staged.name && key.parentColumns.every((column) => staged.columns.includes(column))) {
      // A row that stays would lose the parent row we delete or change.
      const childSql = sqlTableName(parseTableName(key.child));
      const sameValues = key.parentColumns.map((c) => `n.${sqlIdentifier(c)} IS NOT DISTINCT FROM l.${sqlIdentifier(c)}`).join(' AND ');
      marked += await mark(client, staged, {
        candidates: 'true',
        inWay: `FROM ${parentSql} l JOIN ${childSql} c ON ${match('c', 'l')}
          WHERE ${staged.sameKey('l', 'n')} AND NOT (n.${PRESENT} AND ${sameValues})
            ${childStaged === undefined ? '' : `AND ${remains(childStaged, 'c')}`}`,
        doc: conflictDoc(
          'foreign-key',
          `${label} || ': a row that stays references this row'`,
          `(SELECT json_object_agg(kv.key, kv.value) FROM json_each_text(row_to_json(c)) AS kv)`,
        ),
      });
    }
  }
  return marked;
}

/**
 * Resolves marked conflicts as --on-conflict says, leaving rows out of the writes:
 * `theirs` keeps each conflicting live row, `skip` leaves out every group with a
 * conflict, `ours` writes our version over rows changed later (the one kind it can
 * force; a value or reference held by another row stays a conflict). Leaving rows
 * out can expose new conflicts (a child whose parent is now kept out), so marking
 * and resolving repeat until nothing new appears (each round only adds skipped rows,
 * so it ends). Returns how many rows it left out (the counts change with them) and
 * the tables where it marked conflicts.
 */
export async function resolveConflicts(
  client: pg.Client,
  plan: StagedPlan,
  resolution: ConflictResolution | undefined,
  counts: ReadonlyMap<string, TableCount>,
): Promise<{ skipped: number; conflicted: ReadonlySet<string> }> {
  // A row in conflict of either kind: `ours` overrides only changed-after.
  const conflicting = `(n.${CONFLICT} IS NOT NULL OR n.${LATER} IS NOT NULL)`;
  let skipped = 0;
  const skip = async (staged: StagedTable, where: string, values: unknown[] = []): Promise<void> => {
    skipped += (await client.query(`UPDATE ${s(staged)} AS n SET ${SKIP} = true WHERE NOT n.${SKIP} AND ${where}`, values)).rowCount ?? 0;
  };
  const conflicted = new Set<string>();
  for (let round = 0; ; round++) {
    const marks = await markConflicts(client, plan, counts);
    for (const table of marks.keys()) conflicted.add(table);
    if (resolution === undefined || resolution === 'ours') return { skipped, conflicted };
    if (round > 0 && marks.size === 0) return { skipped, conflicted };
    if (resolution === 'theirs') {
      for (const staged of plan.tables.values()) await skip(staged, conflicting);
    } else {
      const groups = new Set<string | null>();
      for (const staged of plan.tables.values()) {
        const { rows } = await client.query<{ group: string | null }>(
          `SELECT DISTINCT n.${GROUP} AS group FROM ${s(staged)} AS n WHERE ${conflicting}`,
        );
        for (const row of rows) groups.add(row.group);
      }
      if (groups.size === 0) return { skipped, conflicted };
      for (const staged of plan.tables.values()) {
        await skip(staged, ofGroups('n'), groupParams(groups));
      }
    }
  }
}

/**
 * Clears an undo's changed-after mark where the live row is already what the undo
 * writes (the same values), or already gone where the undo deletes it: a later
 * transaction did the undo's work, and nothing would be overwritten. Returns how many.
 */
export async function settleLaterChanges(client: pg.Client, staged: StagedTable): Promise<number> {
  const live = (condition: string): string => `EXISTS (SELECT 1 FROM ${staged.table.sql} l WHERE ${staged.sameKey('l', 'n')}${condition})`;
  const result = await client.query(
    `UPDATE ${s(staged)} AS n SET ${LATER} = NULL
      WHERE n.${LATER} IS NOT NULL
        AND CASE WHEN n.${PRESENT} THEN ${live(` AND NOT ${staged.differs('l', 'n')}`)} ELSE NOT ${live('')} END`,
  );
  return result.rowCount ?? 0;
}

/** What the count found for a staged table against its live rows. */
export interface TableCount {
  /** Inserts, updates, deletes and unchanged rows per group, as apply would find them. */
  readonly diffs: readonly TableDiff[];
  /** Staged rows whose key a live row of another tenant holds (each a conflict). */
  readonly held: number;
  /** Staged rows an unselected transaction changed after the undone ones (an undo's changed-after conflicts). */
  readonly later: number;
}

/** Counts the writes per group of a staged table, finding the live rows under its keys once. */
export async function countWrites(client: pg.Client, staged: StagedTable): Promise<TableCount> {
  const heldBy = staged.table.tenantColumn === undefined ? 'false' : `${staged.tenantOf('l')} IS DISTINCT FROM n.${GROUP}`;
  const { rows } = await findingLiveRows(client, staged, () =>
    client.query<{
      group: string | null;
      insert: string;
      update: string;
      delete: string;
      unchanged: string;
      held: string;
      later: string;
      wrong_key: string;
    }>(
      `SELECT "group",
              count(*) FILTER (WHERE present AND NOT found) AS insert,
              count(*) FILTER (WHERE present AND found AND differs) AS update,
              count(*) FILTER (WHERE NOT present AND found) AS delete,
              count(*) FILTER (WHERE present AND found AND NOT differs) AS unchanged,
              count(*) FILTER (WHERE present AND held) AS held, count(*) FILTER (WHERE later) AS later,
              count(*) FILTER (WHERE NOT held_key) AS wrong_key
         FROM (SELECT n.${GROUP} AS "group", n.${PRESENT} AS present, l.ctid IS NOT NULL AS found, n.${LATER} IS NOT NULL AS later,
                      -- Rechecked on the row itself: an index scan returns whatever sits at the TIDs it holds.
                      l.ctid IS NULL OR (${staged.sameKey('l', 'n')}) AS held_key,
                      l.ctid IS NOT NULL AND ${staged.differs('l', 'n')} AS differs, l.ctid IS NOT NULL AND ${heldBy} AS held
                 FROM ${s(staged)} n ${staged.liveRowJoin('n', 'l', (r) => `NOT ${r}.${SKIP}`)} WHERE NOT n.${SKIP}) AS d
        GROUP BY "group"`,
    ),
  );
  const wrong = rows.reduce((sum, row) => sum + Number(row.wrong_key), 0);
  if (wrong > 0) throw mismatchedIndexError(staged.name, `${wrong} row(s) under keys they do not hold`);
  return {
    diffs: rows.map((row) => ({
      tenant: row.group,
      table: staged.name,
      insert: Number(row.insert),
      update: Number(row.update),
      delete: Number(row.delete),
      unchanged: Number(row.unchanged),
    })),
    held: rows.reduce((sum, row) => sum + Number(row.held), 0),
    later: rows.reduce((sum, row) => sum + Number(row.later), 0),
  };
}

/** Most conflicts a plan lists per table; the counts stay exact beyond it. */
const LISTED_CONFLICTS = 1000;

/** The conflicts marked in a staged table, with both versions and how each was resolved. */
export async function listConflicts(
  client: pg.Client,
  staged: StagedTable,
  resolution: ConflictResolution | undefined,
  changedAfter: (table: string, later: readonly string[]) => Promise<ReadonlyMap<string, Pick<Conflict, 'detail' | 'theirs'>>>,
): Promise<{ conflicts: Conflict[]; total: number; unresolved: number }> {
  const open = resolution === 'ours' ? `n.${CONFLICT} IS NOT NULL` : `(n.${CONFLICT} IS NOT NULL OR n.${LATER} IS NOT NULL)`;
  const { rows } = await client.query<{
    group: string | null;
    key: string;
    ours: string | null;
    conflict: string | null;
    later: string | null;
    skip: string;
    total: string;
    unresolved: string;
  }>(
    `SELECT n.${GROUP} AS group, ${staged.keyJson('n')} AS key,
            CASE WHEN n.${PRESENT} THEN ${staged.rowJson('n')}::text END AS ours, n.${CONFLICT} AS conflict, n.${LATER} AS later,
            n.${SKIP} AS skip, count(*) OVER () AS total, count(*) FILTER (WHERE NOT n.${SKIP} AND ${open}) OVER () AS unresolved
       FROM ${s(staged)} n WHERE n.${CONFLICT} IS NOT NULL OR n.${LATER} IS NOT NULL ORDER BY 1, 2 LIMIT ${LISTED_CONFLICTS}`,
  );
  // The rows later changes left are looked up for the listed rows only, all at once.
  const later = await changedAfter(staged.name, [...new Set(rows.flatMap((row) => (row.later === null ? [] : [row.later])))]);
  const conflicts = rows.flatMap((row) =>
    [
      ...(row.later === null ? [] : [{ kind: 'changed-after' as const, ...(later.get(row.later) as Pick<Conflict, 'detail' | 'theirs'>) }]),
      ...(row.conflict === null ? [] : [JSON.parse(row.conflict) as { kind: ConflictKind; detail: string; theirs: Conflict['theirs'] }]),
    ].map((doc) => {
      const resolved: ConflictResolution | undefined =
        row.skip === 't' && resolution !== undefined && resolution !== 'ours'
          ? resolution
          : resolution === 'ours' && doc.kind === 'changed-after'
            ? 'ours'
            : undefined;
      return {
        kind: doc.kind,
        table: staged.name,
        tenant: row.group,
        key: JSON.parse(row.key) as Key,
        ours: row.ours === null ? null : (JSON.parse(row.ours) as Row),
        theirs: doc.theirs,
        detail: doc.detail,
        ...(resolved === undefined ? {} : { resolution: resolved }),
      };
    }),
  );
  return { conflicts, total: Number(rows[0]?.total ?? 0), unresolved: Number(rows[0]?.unresolved ?? 0) };
}
