// Restore's public face: plan a restore (tenants back to a point) or an undo (what
// some transactions did, reversed), look at the plan, then apply it.

export {
  planRestore,
  planUndo,
  PreparedPlan,
  type ApplyResult,
  type PlanCommon,
  type RestoreOptions,
  type UndoOptions,
} from './prepare.js';
export type { Conflict, ConflictKind, ConflictResolution, GroupPlan, Key, Plan, Row, Selection, TableSteps } from './plan.js';
export type { GroupResult } from './apply.js';
