// The source's public face: how Recall connects to the protected database, reads
// its catalog and tenancy, checks it is ready, and retries without storms.

export {
  PINNED_SETTINGS,
  RECALL_APPLICATION,
  connectSource,
  describeConnectError,
  resolveSource,
  type SourceConfig,
} from './connection.js';
export { redactPasswords } from './conninfo.js';
export { identityKeySql, readCatalog, tenantColumnOf, type SourceColumn, type SourceTable } from './catalog.js';
export { loadConfig, loadTenancy, parseConfig, type RecallConfig } from './config-file.js';
export { DEFAULT_TENANCY, type SettingOrigin, type TableTenancy, type TenancyConfig, type TenancyOrigin } from './tenancy.js';
export { assertTenancyFits } from './tenancy-check.js';
export { formatTableName, parseTableName, quoteIdentifier, sqlIdentifier, sqlTableName, type TableName } from './table-name.js';
export { readConstraints, type Constraints, type ForeignKey, type OwnedSequence, type UniqueKey } from './constraints.js';
export { MIN_SERVER_VERSION, readSourceIdentity, type SourceFacts } from './identity.js';
export { checkSource, readSourceSettings, type SourceSettings } from './preflight.js';
export { tablesWithoutTenantIndex } from './tenant-index.js';
export { backoffDelay, sleep } from './backoff.js';
export { ensureRecallFunction, ensureRecallSchema } from './recall-schema.js';
export { currentWalLsn } from './wal.js';
export { damagedSourceError, mismatchedIndexError } from './damage.js';
