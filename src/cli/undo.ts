// `recall undo`: reverses what some transactions did, chosen by id or by actor.

import { UsageError } from '../errors.js';
import { planUndo } from '../restore/index.js';
import { parsePoint } from '../timeline/index.js';
import { planAndApply, type ApplyFlags } from './apply-plan.js';
import type { CommandFlags } from './common.js';

export async function run(
  flags: CommandFlags & ApplyFlags & { txn?: string; actor?: string; since?: string; until?: string },
): Promise<number> {
  if ((flags.txn === undefined) === (flags.actor === undefined)) {
    throw new UsageError(
      'choose the transactions with --txn X[,Y…] or --actor A (one of the two)',
      'find them with `recall log --tenant T`',
    );
  }
  if (flags.txn !== undefined && (flags.since !== undefined || flags.until !== undefined)) {
    throw new UsageError('--since and --until narrow --actor; with --txn they mean nothing', 'leave them out, or use --actor');
  }
  const txns = flags.txn?.split(',').map((text) => {
    if (!/^\s*\d+\s*$/.test(text))
      throw new UsageError(`--txn "${text}" is not a transaction id`, 'give ids as recall log shows them, e.g. --txn 81233,81240');
    return BigInt(text.trim());
  });
  const since = flags.since === undefined ? undefined : parsePoint(flags.since);
  const until = flags.until === undefined ? undefined : parsePoint(flags.until);
  return planAndApply(flags, 'undo', (common) =>
    planUndo({
      ...common,
      ...(txns === undefined ? {} : { txns }),
      ...(flags.actor === undefined ? {} : { actor: flags.actor }),
      ...(since === undefined ? {} : { since }),
      ...(until === undefined ? {} : { until }),
    }),
  );
}
