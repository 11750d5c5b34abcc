// Ground truth for the sample SaaS (shared with the demo), plus row counts per
// table for readable assertion messages.

import type { SaasState } from '../../src/demo/saas.js';

export { othersState, tenantState, type SaasState as State } from '../../src/demo/saas.js';

/** Row counts per table of a state. */
export function counts(s: SaasState): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([table, rows]) => [table, rows.length]));
}
