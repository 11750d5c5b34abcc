// `recall verify`: checks that list what they find and exit 3 on any fault. With
// --vault, the vault alone (every manifest file and every live layer); the check of
// the live database against the vault, without --vault, is still to come.

import { UsageError, VaultFaultsError } from '../errors.js';
import { resolveVaultLocation, verifyVault } from '../vault/index.js';
import { toJson, type CommonFlags } from './common.js';
import { printable } from './terminal-text.js';

export async function run(flags: Omit<CommonFlags, 'vault'> & { vault?: string | true }): Promise<number> {
  if (flags.vault === undefined) {
    throw new UsageError(
      'checking the live database against the vault (`recall verify` without --vault) is not built yet',
      "run `recall verify --vault` to check the vault's manifest chain and layer files",
    );
  }
  const check = await verifyVault(resolveVaultLocation(flags.vault === true ? undefined : flags.vault));
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
