// `recall verify`: checks that list what they find and exit 3 on any. Without --vault,
// the live database against the history (RECALL_VAULT's) at consistent points
// (src/verify/); with --vault, the vault itself (every manifest file and live layer).

import { parseDuration } from '../duration.js';
import { LiveDiffersError, UsageError, VaultFaultsError } from '../errors.js';
import { DEFAULT_CATCH_UP_WAIT_MS } from '../restore/index.js';
import { formatTableName, parseTableName } from '../source/index.js';
import { resolveVaultLocation, verifyVault } from '../vault/index.js';
import { verify, type Difference, type VerifyResult } from '../verify/index.js';
import { logLine, positiveInteger, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { splitTenants } from './tenant-list.js';
import { printable } from './terminal-text.js';

type VerifyFlags = Omit<CommandFlags, 'vault'> & {
  vault?: string | true;
  tenant?: string[];
  table?: string;
  maxRate?: string;
  snapshotRows?: string;
  catchUpTimeout?: string;
};

export async function run(flags: VerifyFlags): Promise<number> {
  return flags.vault !== undefined ? verifyTheVault(flags) : verifyTheLiveDatabase(flags);
}

/** The schedule a verify runs on: capture's --verify-every, which capture validates (a malformed one is no schedule here). */
function scheduleOf(every: string | undefined): { everyMs?: number } {
  if (every === undefined || every === '') return {};
  try {
    return { everyMs: parseDuration(every, 'RECALL_VERIFY_EVERY') };
  } catch {
    return {};
  }
}

async function verifyTheLiveDatabase(flags: VerifyFlags): Promise<number> {
  const tenants = flags.tenant === undefined ? undefined : splitTenants(flags.tenant);
  if (tenants?.some((tenant) => tenant === '')) {
    throw new UsageError(`--tenant "${(flags.tenant ?? []).join(',')}" holds an empty name`, 'e.g. --tenant acme,globex');
  }
  const maxRowsPerSecond = flags.maxRate === undefined ? undefined : positiveInteger(flags.maxRate, '--max-rate');
  const snapshotRows = flags.snapshotRows === undefined ? undefined : positiveInteger(flags.snapshotRows, '--snapshot-rows');
  const catchUpWaitMs =
    flags.catchUpTimeout === undefined ? DEFAULT_CATCH_UP_WAIT_MS : positiveInteger(flags.catchUpTimeout, '--catch-up-timeout') * 1000;
  const table = flags.table === undefined ? undefined : formatTableName(parseTableName(flags.table));
  const source = sourceOf({ ...flags, vault: undefined });
  const vault = await vaultOf({ ...flags, vault: undefined });
  if (table !== undefined && !vault.manifest.schemas.some((version) => version.table === table)) {
    throw new UsageError(
      `table ${table} is not in the history`,
      'name a captured table, e.g. public.invoices (`recall status` lists them)',
    );
  }
  const result = await verify({
    source,
    vault,
    tenancy: tenancyOf(flags as CommandFlags),
    log: logLine,
    ...(tenants === undefined ? {} : { tenants }),
    ...(table === undefined ? {} : { table }),
    ...(maxRowsPerSecond === undefined ? {} : { maxRowsPerSecond }),
    ...(snapshotRows === undefined ? {} : { snapshotRows }),
    ...scheduleOf(process.env.RECALL_VERIFY_EVERY),
    catchUpWaitMs,
  });
  if (flags.json) process.stdout.write(`${toJson(result)}\n`);
  else process.stdout.write(`${formatResult(result).map(printable).join('\n')}\n`);
  const found = result.differences.length + result.unlisted;
  if (found > 0) {
    const tenantsAffected = new Set(result.differences.map((d) => d.tenant ?? '(global)'));
    throw new LiveDiffersError(
      `the live database and the history differ in ${found} row${found === 1 ? '' : 's'} (tenants ${[...tenantsAffected].slice(0, 5).join(', ')}${tenantsAffected.size > 5 ? ', …' : ''})`,
      'each difference is listed above; `recall restore --tenant T --to <a point before the damage>` puts a tenant back from the history',
    );
  }
  return 0;
}

/** The readable report: what was compared, each difference, what was left out. */
function formatResult(result: VerifyResult): string[] {
  const points = result.batches.map((batch) => `lsn:${batch.lsn}`).join(', ');
  return [
    `compared   ${result.rows} live rows of ${result.tenants} tenants in ${result.tables} tables, at ${points || 'no point'}`,
    ...result.differences.map(describe),
    ...(result.unlisted > 0 ? [`and        ${result.unlisted} more differences, not listed`] : []),
    ...result.skipped.map((skip) => `skipped    ${skip.table}: ${skip.reason}`),
    result.differences.length + result.unlisted === 0
      ? 'ok         the live database equals the history'
      : `differences ${result.differences.length + result.unlisted}`,
  ];
}

function describe(difference: Difference): string {
  const where = `${difference.table}${difference.tenant === null ? '' : ` tenant ${difference.tenant}`} key ${JSON.stringify(difference.key)}`;
  switch (difference.kind) {
    case 'missing-live':
      return `missing    ${where}: in the history, not in the database`;
    case 'extra-live':
      return `extra      ${where}: in the database, not in the history`;
    case 'differs': {
      const columns = (difference.columns ?? []).map(
        (column) =>
          `${column} ${JSON.stringify(difference.live?.[column] ?? null)} (history ${JSON.stringify(difference.vault?.[column] ?? null)})`,
      );
      return `differs    ${where}: ${columns.join(', ')}`;
    }
  }
}

async function verifyTheVault(flags: VerifyFlags): Promise<number> {
  const check = await verifyVault(resolveVaultLocation(typeof flags.vault === 'string' ? flags.vault : undefined));
  if (flags.json) process.stdout.write(`${toJson(check)}\n`);
  else {
    const { legacyVersions, records, checkpoints } = check.manifest;
    const lines = [
      `vault      ${check.location}`,
      `manifest   ${records} records, ${checkpoints} checkpoints${legacyVersions > 0 ? `, ${legacyVersions} versions of release 0.1.0` : ''}`,
      `layers     ${check.layers.checked} checked, ${check.layers.bytes} bytes`,
      ...check.faults.map((fault) => `fault      ${fault.file}: ${fault.problem}`),
      check.faults.length === 0 ? 'ok         no faults' : `faults     ${check.faults.length}`,
    ];
    process.stdout.write(`${lines.map(printable).join('\n')}\n`);
  }
  if (check.faults.length > 0) {
    const files = [...new Set(check.faults.map((fault) => fault.file))];
    const named = files.length > 3 ? `${files.slice(0, 3).join(', ')} and ${files.length - 3} more` : files.join(', ');
    throw new VaultFaultsError(
      `the vault ${check.location} has ${check.faults.length} fault${check.faults.length === 1 ? '' : 's'}, in ${named}`,
      'restore those files from a copy of the vault; commands that read them stop until then, the others work',
    );
  }
  return 0;
}
