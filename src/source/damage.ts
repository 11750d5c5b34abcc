// A source whose own files are damaged (a latent storage or engine bug, the mocri case)
// says so in PostgreSQL's XX001/XX002 errors, or by an index returning rows that do not
// hold the key it was asked for. Either is named as damage with what to run, never as
// a fault of Recall's, and nothing is written on top of it.

import { SourceDamagedError } from '../errors.js';

/** What repairs an index, and what shows what the damage took. */
const REPAIR = 'then `recall verify` lists the rows the damage took, and `recall restore` puts them back';

/** PostgreSQL's own word that a table or index is damaged, as a typed error; undefined for any other error. */
export function damagedSourceError(error: unknown): SourceDamagedError | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code !== 'XX001' && code !== 'XX002') return undefined;
  const message = (error as Error).message;
  const index = /\bin index "?([^"\s]+?)"?$/.exec(message)?.[1];
  return new SourceDamagedError(
    `the source database is damaged: ${message}`,
    `${index === undefined ? 'find the damaged relation (amcheck’s bt_index_check) and REINDEX it' : `run REINDEX INDEX ${index}`}; ${REPAIR}`,
    { cause: error },
  );
}

/** An index of `table` returned rows that do not hold the key or tenant it was asked for. */
export function mismatchedIndexError(table: string, found: string): SourceDamagedError {
  return new SourceDamagedError(
    `the source database is damaged: an index of ${table} returned ${found}, so its index and its rows disagree; nothing was written`,
    `run REINDEX TABLE ${table}; ${REPAIR}`,
  );
}
