// The `recall` command line: parses flags with commander, hands each command to
// its own module (loaded only when run), and turns errors into one clear message
// and the documented exit code. stdout carries data, stderr carries logs.

import { Command, CommanderError } from 'commander';
import { ExitCode, InternalError, RecallError } from '../errors.js';
import { damagedSourceError, redactPasswords } from '../source/index.js';
import { applyMemoryLimit, commonOptions, configOf, type CommonFlags } from './common.js';
import { collectTenants } from './tenant-list.js';
import { printableLines } from './terminal-text.js';

/** How a point can be written, for every flag that takes one. */
const POINT_FORMS = 'ISO time (UTC if no zone), "10 minutes ago", lsn:0/16B3748 or before-txn:XID';

/** Runs the CLI with the given arguments; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('recall')
    .description('An undo button for multi-tenant PostgreSQL: every row change, per tenant, to any second.')
    .version(await packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // commander echoes a mistyped flag whole (`--sorce=postgres://user:secret@…`).
    .configureOutput({ writeErr: (text) => process.stderr.write(redactPasswords(text)) });

  let exitCode: number = ExitCode.ok;
  // commander hands each action its parsed flags; the command module declares their shape.
  // recall.yml is read and validated here, once, before any command does any work.
  const run =
    <Flags>(load: () => Promise<{ run(flags: Flags): Promise<number> }>) =>
    async (flags: Omit<Flags, 'settings'>): Promise<void> => {
      const settings = configOf(flags as Partial<CommonFlags>);
      await applyMemoryLimit(flags as Partial<CommonFlags>, settings);
      exitCode = await (await load()).run({ ...flags, settings } as Flags);
    };

  commonOptions(program.command('init'))
    .description(
      'check the source, create publication and slot, and take the first image into the vault; as a superuser, also install the DDL hook (schema changes take effect at their ALTER TABLE)',
    )
    .option('--slot <name>', 'replication slot name (default: recall_<database>_<8 hex of this vault>)')
    .option('--publication <name>', 'publication name (default: the slot name)')
    .option(
      '--resume',
      'after capture stopped at a gap in the history (a lost or re-created slot, a source restored or moved): take a fresh image through a new slot and continue after the gap',
    )
    .action(run(() => import('./init.js')));

  commonOptions(program.command('capture'))
    .description('stream committed changes into the vault until Ctrl-C')
    .option('--until-caught-up', 'exit once the vault holds everything committed before capture started')
    .option(
      '--flush-interval <duration>',
      'longest time a committed change waits before it is written to the vault, the recovery point (500ms, 1s; default 1s); else RECALL_FLUSH_INTERVAL',
    )
    .option(
      '--gc-grace <duration>',
      'how long the background gc keeps replaced files for readers of older versions (default 1h); else RECALL_GC_GRACE',
    )
    .option(
      '--verify-every [duration]',
      'compare the live database with the history every duration (default 1h): a `recall verify` at low priority, its findings in the log and in `recall status`; else RECALL_VERIFY_EVERY',
    )
    .action(run(() => import('./capture.js')));

  commonOptions(program.command('status'))
    .description('slot state and lag, newest LSN and time in the vault, vault size')
    .action(run(() => import('./status.js')));

  // log and show read one tenant, optionally one table.
  const tenantRead = (name: string, description: string): Command =>
    commonOptions(program.command(name))
      .description(description)
      .requiredOption('--tenant <id>', 'the tenant (text form of its id)')
      .option('--table <name>', 'only this table (schema.table)');

  tenantRead('log', "a tenant's changes, oldest first")
    .option('--since <point>', 'only changes after this point')
    .option('--until <point>', 'only changes up to this point')
    .action(run(() => import('./log.js')));

  tenantRead('show', "a tenant's rows as of a point")
    .requiredOption('--at <point>', POINT_FORMS)
    .action(run(() => import('./show.js')));

  commonOptions(program.command('compact'))
    .description(
      'merge small layers into larger ones by tenant bucket, fold history past vault.retention into images and write the images due, now (`recall capture` does the same in the background); replaced files stay until gc',
    )
    .option('--until-done', 'go on until no merge is due, including those the merges themselves make due')
    .option('--images', 'write an image of every tenant bucket now, so that reads at later points start from it (else only the images due)')
    .action(run(() => import('./compact.js')));

  commonOptions(program.command('gc'))
    .description('delete layer files no live manifest references (replaced by compaction, or left by a crash), once past the grace period')
    .option('--dry-run', 'list the files it would delete (path, bytes, why); delete nothing')
    .option(
      '--gc-grace <duration>',
      'keep files replaced or written less than this long ago (90s, 15m, 1h); else RECALL_GC_GRACE',
      undefined,
    )
    .action(run(() => import('./gc.js')));

  commonOptions(program.command('forget'))
    .description(
      "erase a tenant's history (GDPR erasure): rewrite every live layer that holds its rows without them and delete the old files at once; the database is not touched",
    )
    .requiredOption('--tenant <id>', 'the tenant (text form of its id)')
    .option('--dry-run', 'list the layers it would rewrite and the rows of the tenant in each; change nothing')
    .option('--yes', 'erase without asking (needed without a terminal)')
    .action(run(() => import('./forget.js')));

  commonOptions(program.command('verify'), {
    flags: '--vault [path]',
    description: "check the vault alone: every manifest file of the chain and every live layer's SHA-256 (the path, else RECALL_VAULT)",
  })
    .description(
      'compare the live database with the history at consistent points (or, with --vault alone, check the vault); exit 3 listing each difference or fault',
    )
    .option(
      '--tenant <ids>',
      'only these tenants (comma-separated; may repeat); every tenant and the global tables by default',
      collectTenants,
    )
    .option('--table <name>', 'only this table, e.g. public.invoices')
    .option('--max-rate <rows>', 'read at most this many live rows a second, on average (paced between tables)')
    .option(
      '--snapshot-rows <rows>',
      'live rows one snapshot covers at most (default 2000000): a larger source is read in batches of tenants, each in its own snapshot',
    )
    .option('--catch-up-timeout <seconds>', 'how long to wait for a running `recall capture` to reach each snapshot', '60')
    .action(run(() => import('./verify.js')));

  commonOptions(program.command('report'))
    .description(
      'per tenant, what a window of the history did: tables, rows inserted, updated and deleted, the columns updates changed, actors and transactions; or what a verify found lost',
    )
    .option('--since <point>', `the window's start (exclusive): ${POINT_FORMS}`)
    .option('--until <point>', "the window's end (inclusive; default: the vault's newest commit)")
    .option('--tenant <id>', 'only this tenant')
    .option('--from-verify <file>', 'report the differences of `recall verify --json` output instead (- for stdin)')
    .action(run(() => import('./report.js')));

  const applyOptions = (command: Command): Command =>
    command
      .option(
        '--on-conflict <how>',
        'resolve conflicts: skip (leave those tenants out), theirs (keep the live rows), ours (overwrite later changes)',
      )
      .option('--dry-run', 'show the plan only; write nothing')
      .option('--jobs <n>', 'tenants staged and written side by side, one connection each', '2')
      .option(
        '--max-rate <rows>',
        "cap the write rate, in rows per second, across sessions and within a tenant's transaction, which keeps that tenant frozen and its transaction open longer (default: no cap)",
      )
      .option('--freeze-timeout <seconds>', 'how long to wait for writers already at work on the affected tenants', '30')
      .option('--catch-up-timeout <seconds>', 'how long to wait for a running `recall capture` to catch up', '60')
      .option('--yes', 'apply without asking (for scripts)');

  applyOptions(commonOptions(program.command('restore')))
    .description('put tenants (or the whole database) back to a point, inside the live database')
    .option('--tenant <ids>', 'the tenants, comma-separated; repeat the flag for more; write a comma inside an id as \\,', collectTenants)
    .option('--all', 'every tenant and the global tables')
    .requiredOption('--to <point>', POINT_FORMS)
    .action(run(() => import('./restore.js')));

  applyOptions(commonOptions(program.command('undo')))
    .description('reverse what some transactions did, across every tenant they touched')
    .option('--txn <ids>', 'transaction ids, comma-separated (as `recall log` shows them)')
    .option('--actor <name>', 'every transaction whose context names this actor')
    .option('--since <point>', 'with --actor: only transactions after this point')
    .option('--until <point>', 'with --actor: only transactions up to this point')
    .action(run(() => import('./undo.js')));

  commonOptions(program.command('uninstall'))
    .description(
      'remove everything Recall put into the source (the slot first, then the publication, guards, DDL hook and recall schema); the vault stays',
    )
    .option('--dry-run', 'list what would be removed; remove nothing')
    .option('--yes', 'remove without asking (for scripts)')
    .action(run(() => import('./uninstall.js')));

  program
    .command('demo')
    .description('a throwaway PostgreSQL with a sample SaaS, an accident, and its undo (needs no database of your own)')
    .option('--keep', 'leave the database running and the vault in place, and print how to connect')
    .option('--json', 'print the events as JSON lines')
    .action(run(() => import('./demo.js')));

  program.addHelpText(
    'after',
    `
Connection: --source URL or key=value settings, else RECALL_SOURCE, else DATABASE_URL, else libpq's PG* variables
(PGPASSWORD and PGPASSFILE supply a password the string leaves out).
Vault: --vault PATH, else RECALL_VAULT.
Exit codes: 0 success, 1 operational error, 2 bad usage or input, 3 mismatch, unresolved conflicts or a vault fault,
130 restore or undo stopped by SIGINT/SIGTERM before every tenant was written (each one committed whole or untouched).`,
  );

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    return report(error);
  }
}

/** Prints an error as one message plus a hint, and picks the exit code. */
function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help and version exit through here with code 0; usage errors were printed by commander.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
  }
  const known =
    error instanceof RecallError
      ? error
      : (damagedSourceError(error) ?? new InternalError((error as Error)?.message ?? String(error), { cause: error }));
  // On a terminal, a progress bar may still hold the line.
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  // A message may quote what the user gave (a tenant id, a driver's text): printable, and never a password.
  const shown = (text: string): string => printableLines(redactPasswords(text));
  process.stderr.write(`recall: ${shown(known.message)}\n`);
  if (known.hint) process.stderr.write(`hint: ${shown(known.hint)}\n`);
  if (known instanceof InternalError && process.env.RECALL_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  return known.exitCode;
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}
