// Manifests built by hand, for tests of what the vault decides from one (compaction
// plans, read floors, gaps) without writing any file.

import type { LayerEntry, Manifest } from '../../src/vault/index.js';

/** A manifest of `layers`, its history from `start` through `through`, each LSN's time given by `time`. */
export function handManifest(
  layers: LayerEntry[],
  range: { start: number; through: number },
  time: (lsn: number) => bigint,
  extra: Partial<Manifest> = {},
): Manifest {
  return {
    format: 1,
    version: 1,
    previous: null,
    createdAt: '',
    source: { systemId: '1', database: 'db', slot: 's', publication: 'p', serverVersion: 180000 },
    startLsn: BigInt(range.start),
    startTime: time(range.start),
    throughLsn: BigInt(range.through),
    throughTime: time(range.through),
    layers,
    schemas: [],
    ...extra,
  };
}
