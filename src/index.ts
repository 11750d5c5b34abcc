// Recall as a library: the same operations the CLI offers, with types. The CLI
// and (later) the console are thin faces over these.

export { init, capture, status, recallContextSql } from './capture/index.js';
export type {
  ImageProgress,
  InitOptions,
  InitResult,
  CaptureOptions,
  CaptureSummary,
  Status,
  TransactionContext,
} from './capture/index.js';
export { show, log, parsePoint, formatMicros, parseLsn, formatLsn } from './timeline/index.js';
export type { ShowOptions, ShownRow, LogOptions, LoggedChange, Point, Lsn } from './timeline/index.js';
export { resolveSource, loadConfig, loadTenancy, parseConfig, DEFAULT_TENANCY } from './source/index.js';
export type { RecallConfig, SourceConfig, TenancyConfig } from './source/index.js';
export { Vault, openStorage, openVault, resolveVaultLocation, verifyVault, type VaultCheck, type VaultFault } from './vault/index.js';
export * from './errors.js';
export { planRestore, planUndo, PreparedPlan } from './restore/index.js';
export type { ApplyResult, Conflict, ConflictResolution, GroupPlan, Plan, RestoreOptions, UndoOptions } from './restore/index.js';
