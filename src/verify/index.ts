// Verify's public face: the live database compared with the history at consistent points.

export {
  DEFAULT_SNAPSHOT_ROWS,
  verify,
  type Difference,
  type DifferenceKind,
  type VerifiedBatch,
  type VerifyOptions,
  type VerifyResult,
} from './verify.js';
