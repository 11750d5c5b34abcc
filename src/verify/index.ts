// Verify's public face: the live database compared with the history at consistent points.

export { verify, type Difference, type DifferenceKind, type VerifiedBatch, type VerifyOptions, type VerifyResult } from './verify.js';
