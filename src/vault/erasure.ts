// Erasure (`recall forget`): a tenant's rows taken out of every live layer, for good.
// Each layer that holds some is rewritten without them (their transaction context goes
// with them), the manifest swaps the layers in one commit that records the erasure
// under a keyed hash of the tenant, and the old files are deleted at once, not after
// gc-grace: the point is that no copy stays.

import { userInfo } from 'node:os';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InternalError, UnknownTenantError } from '../errors.js';
import { LAYER_ORDER } from './change.js';
import { fileList, queryRows, sqlLiteral } from './duckdb.js';
import { writeLayerFile } from './layer-file.js';
import type { LayerEntry, Manifest } from './manifest.js';
import { processScratchDirectory } from './process-directory.js';
import { mayHoldTenant } from './tenant-bucket.js';
import { tenantDigest, type Vault } from './vault.js';

/** Commits lost to compaction or retention replacing a layer meanwhile, before forget gives up. */
const ATTEMPTS = 5;

/**
 * How long forget waits, after its commit, for another commit on top of it before it
 * deletes the old files: a running capture reads the newest manifest before each
 * batch, so once it committed after the erasure it no longer reads them. An idle one
 * reads nothing; the wait then ends at this bound.
 */
const READERS_DRAIN_MS = 10_000;
const DRAIN_POLL_MS = 250;

/** A live layer that holds some of the tenant's rows. */
export interface ErasedLayer {
  readonly layer: LayerEntry;
  /** The tenant's rows in it. */
  readonly rows: number;
}

/** What an erasure rewrites. */
export interface ErasurePlan {
  readonly tenant: string;
  readonly layers: readonly ErasedLayer[];
  /** Every layer live when it was planned: a compaction output added since may hold the tenant's rows too. */
  readonly seen: ReadonlySet<string>;
  /** Files compaction replaced and gc has not deleted yet: they may hold the tenant's rows, and go too. */
  readonly retired: readonly string[];
}

/** What an erasure did. */
export interface ErasureResult {
  readonly rewritten: number;
  readonly rows: number;
  /** Old layer files and replaced files deleted. */
  readonly deleted: number;
  readonly bytes: number;
}

/**
 * The live layers holding rows of `tenant`: those whose bucket and tenant range may hold
 * it, counted by its rows (row-group statistics skip the rest of each file). A tenant
 * with none is unknown (or erased already), as to every command.
 */
export async function planErasure(
  vault: Vault,
  duck: DuckDBConnection,
  tenant: string,
  manifest: Manifest = vault.manifest,
): Promise<ErasurePlan> {
  const candidates = manifest.layers.filter((layer) => mayHoldTenant(layer, tenant));
  const files = await vault.layerFiles(candidates);
  const byFile = new Map(files.map((file, i) => [file, candidates[i]!]));
  const counts =
    files.length === 0
      ? []
      : await queryRows(
          duck,
          `SELECT filename, count(*) AS n FROM read_parquet(${fileList(files)}, filename = true) WHERE tenant = $1 GROUP BY filename`,
          [tenant],
        );
  const layers = counts.flatMap((row) => {
    const layer = byFile.get(row.filename as string);
    return layer === undefined ? [] : [{ layer, rows: Number(row.n) }];
  });
  if (layers.length === 0) {
    const erased = await vault.erasureOf(tenant);
    throw new UnknownTenantError(
      erased === undefined
        ? `tenant "${tenant}" never appears in the history`
        : `tenant "${tenant}" was erased from the history at ${erased.at} (by ${erased.by}); nothing of it is left`,
      'check the tenant id (its text form, e.g. the value of tenants.id)',
    );
  }
  return {
    tenant,
    layers,
    seen: new Set(manifest.layers.map((layer) => layer.path)),
    retired: (manifest.retired ?? []).map((entry) => entry.path),
  };
}

/**
 * Rewrites every layer of the plan without the tenant's rows and commits them in place
 * of the old ones, with the erasure's record. If compaction or retention replaced one of
 * them first, the new files are dropped and the erasure planned again on the newest
 * manifest. Once committed, the old files and the replaced files waiting for gc are
 * deleted; a failure there leaves them to `recall gc`.
 */
export async function erase(vault: Vault, duck: DuckDBConnection, first: ErasurePlan): Promise<ErasureResult> {
  const key = await vault.erasureKey(true);
  if (key === undefined) throw new InternalError('the erasure key could not be read back');
  let plan = first;
  for (let attempt = 1; ; attempt++) {
    const written = await rewrite(vault, duck, plan);
    const gone = new Set(plan.layers.map(({ layer }) => layer.path));
    let committed = false;
    await vault.update((current) => {
      if (current === undefined) throw new InternalError('a vault with a tenant to forget has no manifest');
      const live = new Set(current.layers.map((layer) => layer.path));
      // A merge replaced one of the layers, or an image or fold made from them was added: plan again.
      const derived = current.layers.some(
        (layer) => !plan.seen.has(layer.path) && (layer.level ?? 0) > 0 && mayHoldTenant(layer, plan.tenant),
      );
      committed = !derived && [...gone].every((path) => live.has(path));
      if (!committed) return undefined;
      const at = new Date().toISOString();
      const record = { tenant: tenantDigest(key, plan.tenant), at, by: userInfo().username };
      return {
        ...current,
        layers: [...current.layers.filter((layer) => !gone.has(layer.path)), ...written],
        // Listed as retired long ago, so that a crash before they are deleted leaves them to the next gc at once.
        retired: [
          ...(current.retired ?? []),
          ...plan.layers.map(({ layer }) => ({ path: layer.path, bytes: layer.bytes, at: new Date(0).toISOString() })),
        ],
        erasures: [...(current.erasures ?? []), record],
      };
    });
    if (committed) {
      await readersMovedOn(vault);
      return deleteOld(vault, plan, written);
    }
    for (const entry of written) await vault.storage.remove(entry.path);
    if (attempt >= ATTEMPTS) {
      throw new InternalError(`forget lost ${ATTEMPTS} commits in a row to compaction replacing the layers it rewrote`);
    }
    plan = await planErasure(vault, duck, plan.tenant, await vault.refresh());
  }
}

/** Waits until a capture batch commits on top of the erasure (throughLsn moves), or READERS_DRAIN_MS pass. */
async function readersMovedOn(vault: Vault): Promise<void> {
  const through = vault.manifest.throughLsn;
  for (const deadline = Date.now() + READERS_DRAIN_MS; Date.now() < deadline;) {
    await sleep(DRAIN_POLL_MS);
    if ((await vault.refresh()).throughLsn > through) return;
  }
}

/** Writes each layer of the plan again without the tenant's rows (of its level and bucket), all locally first. */
async function rewrite(vault: Vault, duck: DuckDBConnection, plan: ErasurePlan): Promise<LayerEntry[]> {
  const directory = await processScratchDirectory(vault.storage, 'forget');
  try {
    const outputs: { local: string; entry: LayerEntry }[] = [];
    for (const { layer, rows } of plan.layers) {
      const [file] = await vault.layerFiles([layer]);
      const ordered = `SELECT * FROM read_parquet(${fileList([file!])}) WHERE tenant IS DISTINCT FROM ${sqlLiteral(plan.tenant)} ORDER BY ${LAYER_ORDER}`;
      const output = await writeLayerFile(duck, directory, layer.kind, ordered);
      if (output === undefined) continue; // the layer held the tenant's rows only
      if (output.entry.rows !== layer.rows - rows) {
        throw new InternalError(`rewriting ${layer.path} without ${rows} rows left ${output.entry.rows} of its ${layer.rows}`);
      }
      const entry: LayerEntry = {
        ...output.entry,
        ...(layer.level === undefined ? {} : { level: layer.level }),
        ...(layer.bucket === undefined ? {} : { bucket: layer.bucket }),
      };
      outputs.push({ local: output.local, entry });
    }
    for (const output of outputs) await vault.putLayer(output);
    return outputs.map((output) => output.entry);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Deletes the rewritten layers' old files and the replaced files waiting for gc, then drops those from the manifest's retired list. */
async function deleteOld(vault: Vault, plan: ErasurePlan, written: readonly LayerEntry[]): Promise<ErasureResult> {
  const old = plan.layers.map(({ layer }) => layer);
  const retired = new Set([...plan.retired, ...old.map((layer) => layer.path)]);
  const bytes = (vault.manifest.retired ?? []).filter((entry) => retired.has(entry.path)).reduce((sum, entry) => sum + entry.bytes, 0);
  for (const path of retired) await vault.storage.remove(path);
  await vault.update((current) => {
    const kept = (current?.retired ?? []).filter((entry) => !retired.has(entry.path));
    if (current === undefined || kept.length === (current.retired ?? []).length) return undefined;
    return { ...current, retired: kept.length === 0 ? undefined : kept };
  });
  return {
    rewritten: written.length,
    rows: plan.layers.reduce((sum, { rows }) => sum + rows, 0),
    deleted: retired.size,
    bytes,
  };
}
