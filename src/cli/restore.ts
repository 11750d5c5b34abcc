// `recall restore`: tenants (or the whole database) back to a point, inside the live database.

import { UsageError } from '../errors.js';
import { planRestore } from '../restore/index.js';
import { parsePoint } from '../timeline/index.js';
import { assertConfirmable, progressLine, resolutionOf, showAndApply, tuningOf, type ApplyFlags } from './apply-plan.js';
import { logLine, sourceOf, tenancyOf, vaultOf, type CommonFlags } from './common.js';

export async function run(flags: CommonFlags & ApplyFlags & { tenant?: string; all?: boolean; to: string }): Promise<number> {
  if ((flags.tenant === undefined) === (flags.all !== true)) {
    throw new UsageError(
      'name the tenants with --tenant T[,T…] or restore everything with --all (one of the two)',
      'e.g. --tenant acme,globex',
    );
  }
  const tenants = flags.all ? 'all' : (flags.tenant ?? '').split(',').map((t) => t.trim());
  if (tenants !== 'all' && tenants.some((t) => t === ''))
    throw new UsageError(`--tenant "${flags.tenant}" holds an empty name`, 'e.g. --tenant acme,globex');
  const to = parsePoint(flags.to);
  const onConflict = resolutionOf(flags);
  const tuning = tuningOf(flags);
  assertConfirmable(flags);
  const prepared = await planRestore({
    source: sourceOf(flags),
    vault: await vaultOf(flags),
    tenancy: tenancyOf(flags),
    tenants,
    to,
    pointText: flags.to,
    ...(onConflict === undefined ? {} : { onConflict }),
    dryRun: flags.dryRun === true,
    ...tuning,
    log: logLine,
    ...(progressLine() === undefined ? {} : { progress: progressLine() }),
  });
  return showAndApply(prepared, flags, 'restore');
}
