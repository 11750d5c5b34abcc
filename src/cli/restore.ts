// `recall restore`: tenants (or the whole database) back to a point, inside the live database.

import { UsageError } from '../errors.js';
import { planRestore } from '../restore/index.js';
import { parsePoint } from '../timeline/index.js';
import { planAndApply, type ApplyFlags } from './apply-plan.js';
import type { CommandFlags } from './common.js';
import { splitTenants } from './tenant-list.js';

export async function run(flags: CommandFlags & ApplyFlags & { tenant?: string[]; all?: boolean; to: string }): Promise<number> {
  if ((flags.tenant === undefined) === (flags.all !== true)) {
    throw new UsageError(
      'name the tenants with --tenant T[,T…] or restore everything with --all (one of the two)',
      'e.g. --tenant acme,globex',
    );
  }
  const tenants = flags.all ? 'all' : splitTenants(flags.tenant ?? []);
  if (tenants !== 'all' && tenants.some((t) => t === ''))
    throw new UsageError(
      `--tenant "${(flags.tenant ?? []).join(',')}" holds an empty name`,
      'e.g. --tenant acme,globex (a comma inside an id: \\,)',
    );
  const to = parsePoint(flags.to);
  return planAndApply(flags, 'restore', (common) => planRestore({ ...common, tenants, to, pointText: flags.to }));
}
