// `recall report`: per tenant, what a window of the history did (tables, rows, columns,
// actors, transactions), or what a verify found the database lost (--from-verify).

import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { report, reportFromVerify, type ImpactReport, type LossReport } from '../report/index.js';
import { parsePoint } from '../timeline/index.js';
import { askSource, notePastVaultEnd, toJson, vaultOf, type CommonFlags } from './common.js';
import { printable } from './terminal-text.js';

type ReportFlags = CommonFlags & { since?: string; until?: string; tenant?: string; fromVerify?: string };

export async function run(flags: ReportFlags): Promise<number> {
  if (flags.fromVerify !== undefined) {
    if (flags.since !== undefined || flags.until !== undefined || flags.tenant !== undefined) {
      throw new UsageError(
        '--from-verify reports what a verify found; it takes no --since, --until or --tenant',
        'give either --from-verify FILE or --since P',
      );
    }
    const origin = flags.fromVerify === '-' ? 'stdin' : flags.fromVerify;
    const text = flags.fromVerify === '-' ? await readStdin() : await readVerifyFile(flags.fromVerify);
    const losses = reportFromVerify(text, origin);
    process.stdout.write(flags.json ? `${toJson(losses)}\n` : `${formatLosses(losses).map(printable).join('\n')}\n`);
    return 0;
  }
  if (flags.since === undefined) {
    throw new UsageError('say which window to report on', 'e.g. --since "2 hours ago" [--until P], or --from-verify verify.json');
  }
  const since = parsePoint(flags.since);
  const until = flags.until === undefined ? undefined : parsePoint(flags.until);
  const vault = await vaultOf(flags);
  const future = await askSource(flags, vault);
  const impact = await report({
    vault,
    since,
    future,
    ...(until === undefined ? {} : { until }),
    ...(flags.tenant === undefined ? {} : { tenant: flags.tenant }),
  });
  notePastVaultEnd(vault, until);
  process.stdout.write(flags.json ? `${toJson(impact)}\n` : `${formatImpact(impact).map(printable).join('\n')}\n`);
  return 0;
}

async function readVerifyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`, 'give the file `recall verify --json` wrote, or - for stdin');
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const tenantName = (tenant: string | null): string => (tenant === null ? 'global tables' : `tenant ${tenant}`);
const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;

function formatImpact(impact: ImpactReport): string[] {
  const lines = [`window     after lsn:${impact.since}, through lsn:${impact.until}`];
  if (impact.tenants.length === 0) lines.push('nothing    no row changed in the window');
  for (const tenant of impact.tenants) {
    lines.push(`${tenantName(tenant.tenant)}: ${plural(tenant.transactions.length, 'transaction')}`);
    for (const table of tenant.tables) {
      const updated = table.columns.length > 0 ? `${table.updated} updated (${table.columns.join(', ')})` : `${table.updated} updated`;
      lines.push(`  ${table.table}  ${table.inserted} inserted, ${updated}, ${table.deleted} deleted`);
    }
    for (const actor of tenant.actors) {
      lines.push(`  by ${actor.actor ?? '(no actor)'}  ${plural(actor.transactions, 'transaction')}, ${plural(actor.rows, 'row')}`);
    }
  }
  return lines;
}

function formatLosses(losses: LossReport): string[] {
  const lines = [`compared   at ${losses.at.map((lsn) => `lsn:${lsn}`).join(', ') || 'no point'}`];
  if (losses.tenants.length === 0) lines.push('nothing    verify found no difference');
  for (const tenant of losses.tenants) {
    lines.push(`${tenantName(tenant.tenant)}:`);
    for (const table of tenant.tables) {
      const changed = table.columns.length > 0 ? `${table.changed} changed (${table.columns.join(', ')})` : `${table.changed} changed`;
      lines.push(`  ${table.table}  ${table.missing} lost, ${table.extra} not in the history, ${changed}`);
    }
  }
  if (losses.unlisted > 0) lines.push(`and        ${losses.unlisted} more differences verify counted without listing them`);
  return lines;
}
