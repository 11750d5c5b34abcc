// Recall as a library: the same operations the CLI offers, with types. The CLI
// and (later) the console are thin faces over these.

export { init, type InitOptions, type InitResult } from './capture/init.js';
export { capture, type CaptureOptions, type CaptureSummary } from './capture/capture.js';
export { status, type Status } from './capture/status.js';
export { show, type ShowOptions, type ShownRow } from './timeline/show.js';
export { log, type LogOptions, type LoggedChange } from './timeline/log.js';
export { parsePoint, formatMicros, type Point } from './timeline/point.js';
export { parseLsn, formatLsn, type Lsn } from './timeline/lsn.js';
export { resolveSource, type SourceConfig } from './source/connection.js';
export { loadTenancy, parseTenancy, DEFAULT_TENANCY, type TenancyConfig } from './source/tenancy.js';
export { Vault, resolveVaultLocation } from './vault/vault.js';
export { recallContextSql, type TransactionContext } from './capture/context.js';
export * from './errors.js';
