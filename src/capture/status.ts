// `recall status`: how far behind capture is and what the vault holds, in a form a
// status page or a pager can read.

import { connectSource, type SourceConfig, readSourceIdentity } from '../source/index.js';
import { formatLsn, parseLsn, formatMicros } from '../timeline/index.js';
import {
  compactionBacklog,
  levelOf,
  retentionHorizon,
  type CaptureFailure,
  type CompactionBacklog,
  type GcRecord,
  type VerifyRecord,
  type VerifyRecords,
  type Manifest,
  type Retention,
  openGap,
  type GapCause,
  type GapRecord,
  type Vault,
} from '../vault/index.js';
import { findGap } from './history-gaps.js';

/** The state of capture and vault. */
export interface Status {
  readonly vault: {
    readonly location: string;
    readonly startLsn: string;
    readonly startTime: string;
    readonly newestLsn: string;
    readonly newestTime: string;
    readonly bytes: number;
    readonly layers: number;
    readonly manifestVersion: number;
    /** Live layers by compaction level (0: as capture wrote them). */
    readonly levels: readonly { readonly level: number; readonly layers: number; readonly bytes: number }[];
    /** What the merges due now would take: flat under a steady load when compaction keeps up. */
    readonly compactionBacklog: CompactionBacklog;
    /** Replaced files waiting for gc (past or within its grace period). */
    readonly retired: { readonly files: number; readonly bytes: number };
    /** The oldest point a read or restore can go back to. */
    readonly oldestPoint: string;
    /** vault.retention as configured, and the horizon it asks for now (the oldest point trails it by at most a fold step); null keeps everything. */
    readonly retention: { readonly keep: string; readonly horizon: string } | null;
    /** The last `recall gc`, if any. */
    readonly lastGc: GcRecord | null;
    /** The newest `recall verify` of the live database, and the newest full pass. */
    readonly verify: VerifyRecords;
    /**
     * How soon a difference made now is found, at most: the verify schedule plus a full
     * pass's duration, from the newest full pass run on a schedule; null without one.
     */
    readonly detectionLatencyMs: number | null;
    /** Gaps in the history, oldest first: points inside one are refused; an open one stops capture until `init --resume`. */
    readonly gaps: readonly GapStatus[];
  };
  readonly slot: {
    readonly name: string;
    /** 'streaming' (a capture holds it), 'inactive', 'lost' or 'missing'. */
    readonly state: 'streaming' | 'inactive' | 'lost' | 'missing';
    readonly confirmedLsn: string | null;
    /** WAL bytes written on the source that the vault does not hold yet. */
    readonly lagBytes: number | null;
    /** While a capture streams: the server's flush lag for it (pg_stat_replication); null when none runs and bytes are behind. */
    readonly lagSeconds: number | null;
    /** WAL the source keeps for the slot (from its restart_lsn): what capture being down costs the source's disk. */
    readonly walHeldBytes: number | null;
    /** WAL the slot may still hold before the source gives it up (max_slot_wal_keep_size); null when unlimited. */
    readonly walSafeBytes: number | null;
  } | null;
  /** Why capture last stopped on a transaction it could not ingest, until it gets past it. */
  readonly captureFailure: CaptureFailure | null;
  /** A gap capture would stop at now (history-gaps.ts), not yet recorded; null when none, or unknown. */
  readonly missingHistory: { readonly cause: GapCause; readonly message: string } | null;
  readonly source: { readonly reachable: boolean; readonly error?: string };
}

/** The schedule plus the pass's own duration: a difference made just after a pass starts is found by the end of the next. */
function detectionLatency(pass: VerifyRecord | null): number | null {
  if (pass?.everyMs === undefined || pass.startedAt === undefined) return null;
  const took = Date.parse(pass.at) - Date.parse(pass.startedAt);
  return Number.isFinite(took) ? pass.everyMs + Math.max(0, took) : null;
}

/** One gap, for status: where the history stops and where it starts again (null while open). */
export interface GapStatus {
  readonly cause: GapCause;
  readonly detail: string;
  readonly detectedAt: string;
  readonly from: { readonly lsn: string; readonly time: string };
  readonly to: { readonly lsn: string; readonly time: string } | null;
}

function gapStatus(gap: GapRecord): GapStatus {
  return {
    cause: gap.cause,
    detail: gap.detail,
    detectedAt: gap.detectedAt,
    from: { lsn: formatLsn(gap.fromLsn), time: formatMicros(gap.fromTime) },
    to:
      gap.resumedLsn === undefined || gap.resumedTime === undefined
        ? null
        : { lsn: formatLsn(gap.resumedLsn), time: formatMicros(gap.resumedTime) },
  };
}

/** Reads the vault, and the slot if the source is reachable. */
export async function status(options: { vault: Vault; source: SourceConfig; retention?: Retention | undefined }): Promise<Status> {
  const manifest = options.vault.manifest;
  const verify = await options.vault.verifyRecords();
  const vault = {
    location: options.vault.storage.location,
    startLsn: formatLsn(manifest.startLsn),
    startTime: formatMicros(manifest.startTime),
    newestLsn: formatLsn(manifest.throughLsn),
    newestTime: formatMicros(manifest.throughTime),
    bytes: options.vault.layerBytes,
    layers: manifest.layers.length,
    manifestVersion: manifest.version,
    levels: levels(manifest),
    compactionBacklog: compactionBacklog(manifest),
    retired: {
      files: manifest.retired?.length ?? 0,
      bytes: (manifest.retired ?? []).reduce((sum, entry) => sum + entry.bytes, 0),
    },
    oldestPoint: formatMicros(manifest.startTime),
    retention:
      options.retention === undefined ? null : { keep: options.retention.text, horizon: formatMicros(retentionHorizon(options.retention)) },
    lastGc: await options.vault.lastGc(),
    verify,
    detectionLatencyMs: detectionLatency(verify.lastFull),
    gaps: (manifest.gaps ?? []).map(gapStatus),
  };
  const captureFailure = await options.vault.captureFailure();
  let client;
  try {
    client = await connectSource(options.source);
  } catch (error) {
    return { vault, slot: null, source: { reachable: false, error: (error as Error).message }, captureFailure, missingHistory: null };
  }
  try {
    // The slot and lag of another database's source would be reported as this vault's.
    const identity = await readSourceIdentity(client);
    if (identity.database !== manifest.source.database) options.vault.assertSource(identity);
    // What capture would stop at now; a gap already recorded says so in vault.gaps.
    const gap = openGap(manifest) === undefined ? await findGap(client, options.vault, identity) : undefined;
    const missingHistory = gap === undefined ? null : { cause: gap.cause, message: gap.detail };
    // Another server's slot and lag would be reported as this vault's.
    if (identity.systemId !== manifest.source.systemId)
      return { vault, slot: null, source: { reachable: true }, captureFailure, missingHistory };
    const { rows } = await client.query<{
      active: string;
      wal_status: string | null;
      confirmed: string | null;
      current: string;
      flush_lag: string | null;
      held: string | null;
      safe: string | null;
    }>(
      `SELECT s.active::text AS active, s.wal_status, s.confirmed_flush_lsn::text AS confirmed,
              pg_current_wal_lsn()::text AS current,
              pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::text AS held, s.safe_wal_size::text AS safe,
              extract(epoch FROM r.flush_lag)::text AS flush_lag
         FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_name = $1`,
      [manifest.source.slot],
    );
    const row = rows[0];
    if (row === undefined) {
      return {
        vault,
        slot: {
          name: manifest.source.slot,
          state: 'missing',
          confirmedLsn: null,
          lagBytes: null,
          lagSeconds: null,
          walHeldBytes: null,
          walSafeBytes: null,
        },
        source: { reachable: true },
        captureFailure,
        missingHistory,
      };
    }

    const current = parseLsn(row.current) ?? 0n;
    const through = manifest.throughLsn;
    const confirmed = row.confirmed === null ? undefined : parseLsn(row.confirmed);
    // Past the vault's end the slot counts as done only when the vault acknowledged it (no gap).
    const done = gap === undefined && confirmed !== undefined && confirmed > through ? confirmed : through;
    const lagBytes = current > done ? Number(current - done) : 0;
    // While streaming, the server's own measure: how long WAL waited for capture to make it durable.
    // Without a capture there is no such measure; the bytes still say how far behind the vault is.
    const lagSeconds = row.active === 'true' ? Number(row.flush_lag ?? 0) : lagBytes === 0 ? 0 : null;
    return {
      vault,
      slot: {
        name: manifest.source.slot,
        state: row.wal_status === 'lost' ? 'lost' : row.active === 'true' ? 'streaming' : 'inactive',
        confirmedLsn: row.confirmed,
        lagBytes,
        lagSeconds,
        walHeldBytes: row.held === null ? null : Number(row.held),
        walSafeBytes: row.safe === null ? null : Number(row.safe),
      },
      source: { reachable: true },
      captureFailure,
      missingHistory,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Live layers and bytes per compaction level, lowest first. */
function levels(manifest: Manifest): Status['vault']['levels'] {
  const byLevel = new Map<number, { layers: number; bytes: number }>();
  for (const layer of manifest.layers) {
    const level = byLevel.get(levelOf(layer)) ?? { layers: 0, bytes: 0 };
    byLevel.set(levelOf(layer), { layers: level.layers + 1, bytes: level.bytes + layer.bytes });
  }
  return [...byLevel.entries()].sort(([a], [b]) => a - b).map(([level, { layers, bytes }]) => ({ level, layers, bytes }));
}
