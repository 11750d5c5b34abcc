// The vault's public face: the durable, off-database history (layers, manifest,
// storage) and the embedded DuckDB that reads and writes it.

export {
  Vault,
  resolveVaultLocation,
  type CaptureFailure,
  type GcRecord,
  type SlotClaim,
  type VerifyRecord,
  type VerifyRecords,
} from './vault.js';
export { openStorage, openVault } from './open-storage.js';
export { verifyVault, type VaultCheck, type VaultFault } from './verify-vault.js';
export { mayHoldTenant, tenantBucket, tenantBucketSql } from './tenant-bucket.js';
export type {
  LayerBucket,
  LayerEntry,
  RetiredLayer,
  RetentionRecord,
  ErasureRecord,
  Manifest,
  ManifestDraft,
  SchemaColumn,
  SchemaVersion,
  SourceIdentity,
} from './manifest.js';
export { LAYER_COLUMN_NAMES, LAYER_ORDER, layerColumns, type ChangeOp, type ChangeRecord, type StagedChange } from './change.js';
export { LayerBuffer, hashFile, storedTable } from './layer-buffer.js';
export { writeLayerFile, type LayerFile } from './layer-file.js';
export {
  fileList,
  openDuckDB,
  processMemoryBudget,
  queryRows,
  setMemoryBudget,
  sqlLiteral,
  VECTOR_ROWS,
  withPlanningShare,
} from './duckdb.js';
export {
  MIN_MEMORY_LIMIT,
  defaultMemoryLimit,
  memoryBudget,
  parseMemoryLimit,
  resolveMemoryLimit,
  type MemoryBudget,
} from './memory-budget.js';
export { Compactor, COMPACTION_CPU_SHARE } from './compactor.js';
export {
  compact,
  compactionBacklog,
  describeResult,
  describeStep,
  imagesDue,
  FAN_IN,
  levelOf,
  nextCompactionStep,
  nextMerge,
  type CompactionBacklog,
  type CompactionResult,
  type CompactionStep,
} from './compaction.js';
export { erase, planErasure, type ErasedLayer, type ErasurePlan, type ErasureResult } from './erasure.js';
export { foldDue, foldStepMs, retentionHorizon, type FoldStep, type Retention } from './retention.js';
export { collectGarbage, DEFAULT_GC_GRACE_MS, planGc, type GarbageFile, type GcPlan } from './gc.js';
export {
  aboveFloorSql,
  bucketReadSets,
  IMAGE_BUCKETS,
  isBucketImage,
  newestVersions,
  readSet,
  type NewestVersions,
  type ReadSet,
} from './read-set.js';
export {
  gapAtLsn,
  gapAtTime,
  gapsBetween,
  firstNewCommitLsn,
  historyFloor,
  historyFloorSql,
  lineageStart,
  openGap,
  type GapCause,
  type GapRecord,
} from './gaps.js';
export { processScratchDirectory } from './process-directory.js';
export type { VaultStorage } from './storage.js';
