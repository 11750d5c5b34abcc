// Manifest commits without a database, for the manifest log's test and its benchmark:
// each commit adds a small delta layer and every tenth merges the ten oldest into one,
// as compaction will, so the live set stays small while the history grows (and a
// schema version is added every 500 commits, up to five). Also a
// storage wrapper that counts what opening a vault reads.

import type { LayerEntry, ManifestDraft, Vault, VaultStorage } from '../../src/vault/index.js';

const SOURCE = {
  systemId: '7000000000000000001',
  database: 'app',
  slot: 'recall_app_00000000',
  publication: 'recall_app_00000000',
  serverVersion: 180000,
};
const T0 = 1_800_000_000_000_000n;

function layer(path: string, from: number, to: number, rows: number): LayerEntry {
  return {
    path,
    kind: 'delta',
    minLsn: BigInt(from) * 1000n,
    maxLsn: BigInt(to) * 1000n,
    minTime: T0 + BigInt(from) * 1_000_000n,
    maxTime: T0 + BigInt(to) * 1_000_000n,
    rows,
    bytes: rows * 180,
    sha256: `${to.toString(16).padStart(8, '0')}`.repeat(8),
    minTenant: `tenant-${from % 97}`,
    maxTenant: `tenant-${(from % 97) + 3}`,
  };
}

/** The draft of commit `n` (1-based) on top of the vault's current state; commit 1 is the initial image. */
export function syntheticDraft(vault: Vault | undefined, n: number): ManifestDraft {
  const current = vault?.initialized ? vault.manifest : undefined;
  let layers: LayerEntry[] = [...(current?.layers ?? []), layer(`layers/delta/${n}.parquet`, n, n, 20)];
  if (n % 10 === 0) {
    const deltas = layers.filter((entry) => !entry.path.includes('merged')).slice(0, 10);
    const merged = layer(`layers/delta/merged-${n}.parquet`, n - 9, n, 200);
    layers = [...layers.filter((entry) => !deltas.includes(entry)), merged];
    // Merged layers are themselves merged in turn: the live set stays bounded.
    if (layers.length > 12) layers = layers.slice(layers.length - 12);
  }
  const schemas = current?.schemas ?? [
    {
      id: 0,
      table: 'public.items',
      sinceLsn: 0n,
      columns: [{ name: 'id', type: 'int4', typeOid: 23, attnum: 1 }],
      key: ['id'],
      tenantColumn: null,
    },
  ];
  return {
    source: SOURCE,
    startLsn: 1000n,
    startTime: T0,
    throughLsn: BigInt(n) * 1000n,
    throughTime: T0 + BigInt(n) * 1_000_000n,
    acknowledgedLsn: BigInt(n) * 1000n + 56n,
    layers,
    schemas:
      n % 500 === 0 && schemas.length < 5
        ? [
            ...schemas,
            {
              ...schemas[0]!,
              id: schemas.length,
              sinceLsn: BigInt(n) * 1000n,
              columns: [...schemas[0]!.columns, { name: `c${n}`, type: 'text' }],
            },
          ]
        : schemas,
  };
}

/** What a storage was asked for. */
export interface StorageCounts {
  reads: number;
  bytesRead: number;
  lists: number;
  namesListed: number;
}

/** A storage that counts its reads and listings. */
export function countingStorage(storage: VaultStorage): { storage: VaultStorage; counts: StorageCounts } {
  const counts: StorageCounts = { reads: 0, bytesRead: 0, lists: 0, namesListed: 0 };
  return {
    counts,
    storage: {
      ...storage,
      async read(path) {
        const data = await storage.read(path);
        counts.reads += 1;
        counts.bytesRead += data?.length ?? 0;
        return data;
      },
      async list(prefix) {
        const names = await storage.list(prefix);
        counts.lists += 1;
        counts.namesListed += names.length;
        return names;
      },
    },
  };
}
