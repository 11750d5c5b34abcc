// Transaction context: who and why, sent by the application inside its own
// transaction with pg_logical_emit_message, and attached by capture to every
// change of that transaction. An actor is a claim, not an authentication.

/**
 * The actor of Recall's own transactions (restores, undos). Anyone can claim it too;
 * `--actor recall` selects only the transactions the vault recorded as Recall's own.
 */
export const RECALL_ACTOR = 'recall';

/** What an application may say about a transaction. */
export interface TransactionContext {
  readonly actor?: string;
  readonly request?: string;
  readonly ticket?: string;
  readonly [key: string]: unknown;
}

/**
 * The one-line helper: SQL and parameters to run inside the transaction, e.g.
 * `await client.query(...recallContextSql({ actor: 'cleanup-script' }))`.
 */
export function recallContextSql(context: TransactionContext): [string, string[]] {
  return ["SELECT pg_logical_emit_message(true, 'recall', $1)", [JSON.stringify(context)]];
}
