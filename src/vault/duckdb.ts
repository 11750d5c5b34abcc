// Embedded DuckDB, configured for Recall: one instance per process, so every
// connection (capture's staging, a reader, a restore's targets) shares one memory
// limit, the DuckDB share of the process's memory budget; it spills past that to
// the vault's scratch directory. Its native memory counts in our RSS.

import { DuckDBConnection, DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import { defaultMemoryLimit, memoryBudget, type MemoryBudget } from './memory-budget.js';

/**
 * Threads of the shared instance: the machines have two cores, but each thread holds
 * a row group's worth of row text while it scans (a few MB of wide rows), so a small
 * budget runs one.
 */
function threadsFor(memory: MemoryBudget): number {
  return memory.duckdbBytes < 256 * 1024 * 1024 ? 1 : 2;
}

/** Rows of a DuckDB vector: each operator holds this many rows of every column it reads at once. */
export const VECTOR_ROWS = 2048;

let budget: MemoryBudget = memoryBudget(defaultMemoryLimit());
let shared: Promise<DuckDBInstance> | undefined;

/** Sets the process's memory budget; an instance already open takes its new limit at once. */
export async function setMemoryBudget(bytes: number): Promise<void> {
  budget = memoryBudget(bytes);
  await configure([`SET memory_limit = '${budget.duckdbBytes}B'`, `SET threads = ${threadsFor(budget)}`]);
}

/**
 * Runs `work` with DuckDB's memory_limit at the budget's planning share (a restore or
 * undo computing its targets, while nothing else in the process uses DuckDB), then
 * sets the usual share back.
 */
export async function withPlanningShare<T>(work: () => Promise<T>): Promise<T> {
  await configure([`SET memory_limit = '${budget.planDuckdbBytes}B'`]);
  try {
    return await work();
  } finally {
    await configure([`SET memory_limit = '${budget.duckdbBytes}B'`]);
  }
}

/** Applies settings to the shared instance, if it is open (one opened later takes the budget's usual settings). */
async function configure(settings: readonly string[]): Promise<void> {
  if (shared === undefined) return;
  const connection = await (await shared).connect();
  try {
    for (const setting of settings) await connection.run(setting);
  } finally {
    connection.closeSync();
  }
}

/** The memory budget in force in this process. */
export function processMemoryBudget(): MemoryBudget {
  return budget;
}

/**
 * A new connection to the process's DuckDB, created on first use. Spill files go to
 * the scratch directory of the first vault that asks (any local directory serves).
 */
export async function openDuckDB(scratchDirectory: string): Promise<DuckDBConnection> {
  shared ??= DuckDBInstance.create(':memory:', {
    memory_limit: `${budget.duckdbBytes}B`,
    threads: String(threadsFor(budget)),
    temp_directory: scratchDirectory,
    preserve_insertion_order: 'false',
    enable_external_access: 'true',
  });
  return (await shared).connect();
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
