// Flags every command shares, and turning them into the library's inputs: the
// source, the vault, and recall.yml, read and validated once before any work.

import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { formatMicros, vaultEnd, type FutureBound, type Point } from '../timeline/index.js';
import { findGap } from '../capture/index.js';
import {
  connectSource,
  currentWalLsn,
  loadConfig,
  readSourceIdentity,
  resolveSource,
  type RecallConfig,
  type SourceConfig,
  type TenancyConfig,
} from '../source/index.js';
import { Vault, openVault, resolveMemoryLimit, resolveVaultLocation, setMemoryBudget } from '../vault/index.js';
import { printableLines } from './terminal-text.js';

/** Adds --source, --vault (a command may take it with an optional path), --config and --json. */
export function commonOptions(
  command: Command,
  vault: { flags: string; description: string } = { flags: '--vault <path>', description: 'the vault directory' },
): Command {
  return command
    .option('--source <url>', "the source database: postgres://user@host:5432/db, or libpq settings 'host=… port=… dbname=… user=…'")
    .option(vault.flags, vault.description)
    .option('--config <file>', 'tenancy and policies; else RECALL_CONFIG, else ./recall.yml if there is one')
    .option(
      '--memory-limit <size>',
      "memory for this process, DuckDB and Node together (512MB, 2GB); else RECALL_MEMORY_LIMIT, recall.yml's memory-limit, or 25% of RAM (at least 256MB)",
    )
    .option('--json', 'print JSON (one object per line where there are many)');
}

/** The parsed common flags. */
export interface CommonFlags {
  readonly source?: string;
  readonly vault?: string;
  readonly config?: string;
  readonly memoryLimit?: string;
  readonly json?: boolean;
}

/** The common flags with the recall.yml they named, as every command module receives them. */
export interface CommandFlags extends CommonFlags {
  readonly settings: RecallConfig;
}

/**
 * Reads and validates the config of a command: --config, else RECALL_CONFIG, else
 * ./recall.yml. A file that was named must exist; ./recall.yml is optional.
 */
export function configOf(flags: Partial<CommonFlags>, env: NodeJS.ProcessEnv = process.env): RecallConfig {
  const named = flags.config ?? (env.RECALL_CONFIG === '' ? undefined : env.RECALL_CONFIG);
  return loadConfig(named ?? 'recall.yml', named !== undefined);
}

/**
 * Sets the process's memory budget from --memory-limit, RECALL_MEMORY_LIMIT or
 * recall.yml, before anything is read: a bad size is an error before any work.
 */
export async function applyMemoryLimit(flags: Partial<CommonFlags>, settings: RecallConfig): Promise<void> {
  await setMemoryBudget(resolveMemoryLimit(flags.memoryLimit, settings.memoryLimit));
}

/** A flag's positive whole number, or a usage error naming the flag. */
export function positiveInteger(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1)
    throw new UsageError(`${flag} must be a positive whole number, not "${text}"`, `e.g. ${flag} 4`);
  return Number(text);
}

/** A duration from its flag, else its environment variable (empty counts as unset); undefined if neither is given. */
export function durationSetting(flag: string | undefined, flagName: string, variable: string): number | undefined {
  const given = flag ?? (process.env[variable] === '' ? undefined : process.env[variable]);
  return given === undefined ? undefined : parseDuration(given, flag === undefined ? variable : flagName);
}

/** Resolves the source connection from the flags and the environment. */
export function sourceOf(flags: CommonFlags): SourceConfig {
  return resolveSource(flags.source);
}

/** Opens the vault named by the flags or RECALL_VAULT. */
export async function vaultOf(flags: CommonFlags): Promise<Vault> {
  const vault = await openVault(resolveVaultLocation(flags.vault));
  const exposure = await vault.exposure();
  if (exposure !== undefined) logLine(`warning: ${exposure}`);
  return vault;
}

/** The tenancy rules of the command's recall.yml. */
export function tenancyOf(flags: CommandFlags): TenancyConfig {
  return flags.settings.tenancy;
}

/** A log line on stderr (stdout is for data), made printable: it may name tenants and tables. */
export function logLine(line: string): void {
  process.stderr.write(`${printableLines(line)}\n`);
}

/** JSON that can hold bigints. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** How far past the vault's newest commit a point may be before the user is told. */
const STALE_AFTER_MICROS = 60_000_000n;

/**
 * Warns on stderr when a point lies well past the newest commit in the vault: the
 * answer is the vault's newest state, which is stale if capture is behind (on an
 * idle database it is simply current).
 */
export function notePastVaultEnd(vault: Vault, point: Point | undefined): void {
  if (point?.kind !== 'time') return;
  const newest = vault.manifest.throughTime;
  if (point.micros > newest + STALE_AFTER_MICROS) {
    logLine(
      `note: the vault's newest change committed at ${formatMicros(newest)}; if capture is behind, \`recall status\` says by how much`,
    );
  }
}

/** How long `show` and `log`, which read only the vault, try the source for the checks below. */
const SOURCE_CHECK_TIMEOUT_MS = 2_000;

/**
 * What `show` and `log`, which read only the vault, learn from the source when one is
 * configured, asked briefly: a warning if the vault is missing history
 * (history-gaps.ts; a stale copy would otherwise answer as if complete), and where
 * WAL ends, past which an LSN point is in the future. Without an answer (no source,
 * another database, unreachable, slow) the vault's own end bounds the points.
 */
export async function askSource(flags: CommonFlags, vault: Vault): Promise<FutureBound> {
  const fromVault = (): FutureBound => vaultEnd(vault.manifest);
  if ((flags.source ?? process.env.RECALL_SOURCE ?? process.env.DATABASE_URL ?? '') === '') return fromVault();
  const source = sourceOf(flags);
  const client = await connectSource({ ...source, client: { ...source.client, connectionTimeoutMillis: SOURCE_CHECK_TIMEOUT_MS } }).catch(
    () => undefined,
  );
  if (client === undefined) return fromVault();
  try {
    const identity = await readSourceIdentity(client);
    if (identity.database !== vault.manifest.source.database) vault.assertSource(identity);
    const gap = await findGap(client, vault, identity);
    if (gap !== undefined) logLine(`warning: ${gap.detail}; \`recall status\` shows it too`);
    // Another server's WAL, or one gone back in time, says nothing of where this history ends.
    if (gap?.cause === 'source-changed' || gap?.cause === 'source-rewound') return fromVault();
    return { lsn: await currentWalLsn(client), of: 'source' };
  } catch {
    // Not this vault's source, or it failed mid-way: the vault's answer stands on its own.
    return fromVault();
  } finally {
    await client.end().catch(() => undefined);
  }
}
