// `recall capture`: streams until SIGINT/SIGTERM (clean stop) or, with
// --until-caught-up, until the vault holds everything committed before it started.

import { capture } from '../capture/index.js';
import { durationSetting, logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';

export async function run(flags: CommandFlags & { untilCaughtUp?: boolean; flushInterval?: string; gcGrace?: string }): Promise<number> {
  const flushIntervalMs = durationSetting(flags.flushInterval, '--flush-interval', 'RECALL_FLUSH_INTERVAL');
  const gcGraceMs = durationSetting(flags.gcGrace, '--gc-grace', 'RECALL_GC_GRACE');
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
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
