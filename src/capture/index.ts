// Capture's public face: starting a history (init), streaming into it (capture),
// reporting on it (status), and the helper applications use to say who did what.

export { init, type InitOptions, type InitResult } from './init.js';
export { assertSlotName, defaultSlotName } from './slot-claim.js';
export type { ImageProgress } from './image-pipeline.js';
export { capture, type CaptureOptions, type CaptureSummary } from './capture.js';
export { status, type Status } from './status.js';
export { assertNoGap, findGap, type GapFinding } from './history-gaps.js';
export { createSlot, enterSnapshot, type ExportedSnapshot } from './image.js';
export { jsonArraySql, stringifiedSql } from './json-text-sql.js';
export { RECALL_ACTOR, recallContextSql, type TransactionContext } from './context.js';
export { findInstalled, removeInstalled, type Installed, type Uninstalled } from './uninstall.js';
