// Restore's public face: plan a restore (tenants back to a point) or an undo (what
// some transactions did, reversed), look at the plan, then apply it.

export {
  planRestore,
  planUndo,
  PreparedPlan,
  type ApplyResult,
  type PlanCommon,
  type Progress,
  type RestoreOptions,
  type UndoOptions,
} from './prepare.js';
export {
  writesOf,
  type Conflict,
  type ConflictKind,
  type ConflictResolution,
  type GroupPlan,
  type Key,
  type Plan,
  type Row,
  type Selection,
  type TableSteps,
} from './plan.js';
export type { GroupResult } from './apply.js';
export { catchUp, DEFAULT_CATCH_UP_WAIT_MS, type CatchUpOptions } from './catch-up.js';
export { Throttle } from './throttle.js';
