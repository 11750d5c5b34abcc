// Embedded DuckDB, configured for Recall: bounded memory and threads (its native
// memory counts in our RSS), spilling to the vault's scratch directory.

import { DuckDBConnection, DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';

/** Limits for one embedded DuckDB. */
export interface DuckDBLimits {
  readonly memoryLimit: string;
  readonly threads: number;
  readonly tempDirectory: string;
}

/** Opens an in-memory DuckDB with the given limits. */
export async function openDuckDB(limits: DuckDBLimits): Promise<DuckDBConnection> {
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: limits.memoryLimit,
    threads: String(limits.threads),
    temp_directory: limits.tempDirectory,
    preserve_insertion_order: 'false',
    enable_external_access: 'true',
  });
  return instance.connect();
}

/** Runs a query and returns its rows as objects of DuckDB values. */
export async function queryRows(connection: DuckDBConnection, sql: string, values?: DuckDBValue[]): Promise<Record<string, DuckDBValue>[]> {
  const reader = await connection.runAndReadAll(sql, values);
  return reader.getRowObjects();
}

/** A SQL string literal (DuckDB's syntax), for file paths that cannot be bound as parameters. */
export function sqlLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A DuckDB list literal of file paths, for read_parquet([...]). */
export function fileList(paths: readonly string[]): string {
  return `[${paths.map(sqlLiteral).join(', ')}]`;
}
