// `recall status`: lag and vault facts, as text or JSON.

import { status } from '../capture/index.js';
import { formatDuration } from '../duration.js';
import type { VerifyRecord, VerifyRecords } from '../vault/index.js';
import { sourceOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { printable } from './terminal-text.js';

export async function run(flags: CommandFlags): Promise<number> {
  const vault = await vaultOf(flags);
  const result = await status({ vault, source: sourceOf(flags), retention: flags.settings.retention });
  if (flags.json) {
    process.stdout.write(`${toJson(result)}\n`);
    return 0;
  }
  const v = result.vault;
  const lines = [
    `vault      ${v.location}`,
    `history    ${v.startTime} (lsn:${v.startLsn}) → ${v.newestTime} (lsn:${v.newestLsn})`,
    `size       ${v.bytes} bytes in ${v.layers} layers (manifest v${v.manifestVersion})`,
    `levels     ${v.levels.map((level) => `L${level.level}: ${level.layers} layers, ${level.bytes} bytes`).join('; ')}`,
    `compaction ${v.compactionBacklog.layers === 0 ? 'nothing due' : `${v.compactionBacklog.layers} layers (${v.compactionBacklog.bytes} bytes) due to merge`}`,
    `gc         ${v.retired.files} replaced files (${v.retired.bytes} bytes) waiting; ${v.lastGc === null ? 'never run' : `last run ${v.lastGc.at}, deleted ${v.lastGc.deleted} files (${v.lastGc.bytes} bytes)`}`,
    `oldest     ${v.oldestPoint} ${
      v.retention === null
        ? '(no retention set: the whole history is kept)'
        : `(retention ${v.retention.keep}: history before ${v.retention.horizon} is folded into images)`
    }`,
  ];
  lines.push(...verifyLines(v.verify));
  lines.push(
    v.detectionLatencyMs === null
      ? 'detection  differences are found only when `recall verify` runs (`recall capture --verify-every 1h` makes it continuous)'
      : `detection  a difference made now is found within about ${roughly(v.detectionLatencyMs)} (verify every ${formatDuration(v.verify.lastFull?.everyMs ?? 0)}, plus a full pass)`,
  );
  for (const gap of v.gaps) {
    if (gap.to === null) {
      lines.push(`gap        OPEN since ${gap.from.time} (lsn:${gap.from.lsn}): ${gap.detail}; capture stopped there`);
      lines.push('           fix: `recall init --resume` takes a fresh image and continues after the gap');
    } else
      lines.push(
        `gap        ${gap.from.time} (lsn:${gap.from.lsn}) → ${gap.to.time} (lsn:${gap.to.lsn}): ${gap.detail}; points inside are refused`,
      );
  }
  if (result.slot === null) {
    if (!result.source.reachable) lines.push(`source     unreachable: ${result.source.error ?? ''}`);
  } else {
    lines.push(`slot       ${result.slot.name}: ${result.slot.state}`);
    if (result.slot.lagBytes !== null) {
      const seconds = result.slot.lagSeconds === null ? 'capture not running' : `${result.slot.lagSeconds.toFixed(1)} s`;
      lines.push(`lag        ${result.slot.lagBytes} bytes, ${seconds}`);
    }
    if (result.slot.walHeldBytes !== null) {
      const safe =
        result.slot.walSafeBytes === null
          ? 'no max_slot_wal_keep_size: held until capture catches up'
          : `${result.slot.walSafeBytes} bytes more before the source gives the slot up`;
      lines.push(`wal held   ${result.slot.walHeldBytes} bytes on the source for the slot (${safe})`);
    }
  }
  if (result.missingHistory !== null) {
    lines.push(`history    MISSING: ${result.missingHistory.message}`);
    lines.push(
      result.missingHistory.cause === 'slot-ahead'
        ? '           fix: restore and undo refuse this vault; use the vault capture writes to, or, if the slot was re-created, `recall init --resume`'
        : '           fix: capture stops here and records the gap; `recall init --resume` then continues after it',
    );
  }
  if (result.captureFailure !== null) {
    lines.push(`capture    STOPPED at ${result.captureFailure.at}: ${result.captureFailure.message}`);
    lines.push(`           fix: ${result.captureFailure.hint}`);
  }
  process.stdout.write(`${lines.map(printable).join('\n')}\n`);
  return 0;
}

/** A duration to a tenth of its largest unit (hours, minutes, seconds), for a bound that is about that. */
function roughly(ms: number): string {
  if (ms >= 3_600_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 60_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The last full verify and, if newer, the last partial one: when, how much, and what differed. */
function verifyLines(records: VerifyRecords): string[] {
  const describe = (record: VerifyRecord): string => {
    const found =
      record.differences === 0
        ? 'equal'
        : `${record.differences} DIFFERENCES (tenants ${record.affected.map((tenant) => tenant ?? '(global)').join(', ')}): run \`recall verify\``;
    const skipped = (record.skipped ?? 0) > 0 ? ` (${record.skipped} tables skipped: \`recall verify\` says why)` : '';
    return `${record.at}: ${record.rows} rows of ${record.tenants} tenants, ${found}${skipped}`;
  };
  const { last, lastFull } = records;
  if (last === null) return ['verify     never run against the live database (`recall verify`)'];
  const lines = [`verify     last full pass ${lastFull === null ? 'never' : describe(lastFull)}`];
  if (last !== lastFull && last.at !== lastFull?.at) lines.push(`           last partial ${describe(last)}`);
  return lines;
}
