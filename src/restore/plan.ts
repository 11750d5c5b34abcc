// A plan: what a restore or undo would write, computed before anything is written.
// It is plain data (JSON-serialisable once bigints are strings): what `--dry-run`
// prints and `--json` emits, and what the user confirms before apply runs it.

import { createHash } from 'node:crypto';

/** The rows of one table that a restore or undo would touch, per kind of write. */
export interface TableSteps {
  readonly table: string;
  readonly insert: number;
  readonly update: number;
  readonly delete: number;
  /** Rows in scope that already equal the target: checked after the writes, never written. */
  readonly unchanged: number;
}

/** A primary key as text values in key-column order. */
export type Key = readonly (string | null)[];

/** A row as column → PostgreSQL text value (or null). */
export type Row = Readonly<Record<string, string | null>>;

/**
 * A unit of apply: one tenant, or the global tables (tenant null). Each group is
 * written in one transaction, so a tenant is either untouched or fully restored.
 */
export interface GroupPlan {
  readonly tenant: string | null;
  readonly tables: readonly TableSteps[];
  /** Conflicts in this group; the group is applied only once every one is resolved. */
  readonly conflicts: readonly Conflict[];
  /** Whether --on-conflict skip left this group out. */
  readonly skipped: boolean;
}

/** The kinds of conflict a plan can hold. */
export type ConflictKind =
  /** An unselected transaction changed the row after the ones being undone. */
  | 'changed-after'
  /** A unique value (or the primary key) the target row needs is now held by another row. */
  | 'unique'
  /** A row would reference a row that no longer exists, or lose the row it references. */
  | 'foreign-key';

/** One row that cannot be written as planned without a decision. */
export interface Conflict {
  readonly kind: ConflictKind;
  readonly table: string;
  readonly tenant: string | null;
  readonly key: Key;
  /** What the restore would write (null: the restore would delete the row). */
  readonly ours: Row | null;
  /** What is in the way: the live row now, or the row that references ours (null: nothing exists). */
  readonly theirs: Readonly<Record<string, unknown>> | null;
  readonly detail: string;
  /** How --on-conflict resolved it; undefined while unresolved. */
  readonly resolution?: ConflictResolution;
}

/** How the user resolves conflicts: leave the tenant out, keep the live row, or write ours anyway. */
export type ConflictResolution = 'skip' | 'theirs' | 'ours';

/** What a plan restores or undoes. */
export type Selection =
  | {
      readonly kind: 'restore';
      /** The tenants, or 'all' for the whole database (global tables included). */
      readonly tenants: readonly string[] | 'all';
      /** The point as the user gave it, and the LSN it resolved to. */
      readonly point: string;
      readonly lsn: string;
    }
  | {
      readonly kind: 'undo';
      /** The selected transactions (64-bit ids) in commit order. */
      readonly xids: readonly string[];
      readonly actor?: string;
    };

/** A whole plan. */
export interface Plan {
  /** Stable for the same selection, so a rerun after a crash recognises its own writes. */
  readonly id: string;
  /** A digest of what the plan would do (counts, conflicts, the vault position): two plans differ exactly when it does. */
  readonly digest: string;
  readonly selection: Selection;
  /** The vault position the plan was computed from. */
  readonly vaultLsn: string;
  readonly groups: readonly GroupPlan[];
  readonly totals: { readonly insert: number; readonly update: number; readonly delete: number; readonly conflicts: number };
  /** Conflicts --on-conflict did not resolve: apply refuses while any remain. */
  readonly unresolved: number;
}

/** Rows a group writes: inserted, updated and deleted, in every table. */
export function writesOf(group: GroupPlan): number {
  return group.tables.reduce((sum, step) => sum + step.insert + step.update + step.delete, 0);
}

/** Sums the steps of every group that will be applied. */
export function totalsOf(groups: readonly GroupPlan[]): Plan['totals'] {
  let insert = 0;
  let update = 0;
  let remove = 0;
  let conflicts = 0;
  for (const group of groups) {
    conflicts += group.conflicts.length;
    if (group.skipped) continue;
    for (const table of group.tables) {
      insert += table.insert;
      update += table.update;
      remove += table.delete;
    }
  }
  return { insert, update, delete: remove, conflicts };
}

/** The digest of a plan's content: everything but its ids, hashed (SHA-256, 12 hex digits). */
export function digestOf(plan: Omit<Plan, 'id' | 'digest'>): string {
  const content = JSON.stringify(plan, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  return createHash('sha256').update(content).digest('hex').slice(0, 12);
}
