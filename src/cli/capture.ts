// `recall capture`: streams until SIGINT/SIGTERM (clean stop) or, with
// --until-caught-up, until the vault holds everything committed before it started.

import { capture } from '../capture/index.js';
import { UsageError } from '../errors.js';
import { durationSetting, logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { scheduleVerify } from './verify-every.js';

/** How often `--verify-every` without a duration verifies. */
const DEFAULT_VERIFY_EVERY = '1h';

type CaptureFlags = CommandFlags & { untilCaughtUp?: boolean; flushInterval?: string; gcGrace?: string; verifyEvery?: string | true };

export async function run(flags: CaptureFlags): Promise<number> {
  const flushIntervalMs = durationSetting(flags.flushInterval, '--flush-interval', 'RECALL_FLUSH_INTERVAL');
  const gcGraceMs = durationSetting(flags.gcGrace, '--gc-grace', 'RECALL_GC_GRACE');
  const verifyEveryMs = durationSetting(
    flags.verifyEvery === true ? DEFAULT_VERIFY_EVERY : flags.verifyEvery,
    '--verify-every',
    'RECALL_VERIFY_EVERY',
  );
  // Node's timers take at most 2^31 - 1 ms (about 24.8 days).
  if (verifyEveryMs !== undefined && (verifyEveryMs < 1_000 || verifyEveryMs > 2 ** 31 - 1)) {
    throw new UsageError(`--verify-every must be between 1s and 24d`, 'e.g. --verify-every 1h');
  }
  if (verifyEveryMs !== undefined && flags.untilCaughtUp === true) {
    throw new UsageError(
      '--verify-every is for capture running as a service',
      'leave out --until-caught-up, or run `recall verify` after it',
    );
  }
  const source = sourceOf(flags);
  const tenancy = tenancyOf(flags);
  const vault = await vaultOf(flags);
  vault.manifest; // refuses an uninitialised vault before connecting
  const stop = new AbortController();
  const onSignal = (): void => {
    logLine('capture: stopping after the current write…');
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const verifier = verifyEveryMs === undefined ? undefined : scheduleVerify(verifyEveryMs, flags, logLine);
  try {
    const summary = await capture({
      source,
      vault,
      tenancy,
      untilCaughtUp: flags.untilCaughtUp === true,
      ...(flushIntervalMs === undefined ? {} : { flushIntervalMs }),
      // Running as a service, capture keeps the vault compact itself; a run to catch up leaves it to `recall compact`.
      compact:
        flags.untilCaughtUp === true ? false : { retention: flags.settings.retention, ...(gcGraceMs === undefined ? {} : { gcGraceMs }) },
      signal: stop.signal,
      log: logLine,
    });
    if (flags.json) process.stdout.write(`${toJson(summary)}\n`);
    else
      logLine(
        `capture: stopped; ${summary.transactions} transactions, ${summary.changes} changes; vault complete through lsn:${summary.throughLsn}`,
      );
    return 0;
  } finally {
    await verifier?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
