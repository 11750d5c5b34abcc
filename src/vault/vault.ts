// A vault: storage plus its manifest. It answers which layers are live, hands out
// local copies of them only after their SHA-256 matches the manifest, and commits
// new manifest versions.

import { createHmac, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommitRaceLostError, UsageError, VaultCorruptError, VaultMismatchError, VaultMissingError } from '../errors.js';
import { formatLsn } from '../timeline/lsn.js';
import { hashFile } from './layer-buffer.js';
import type { ErasureRecord, LayerEntry, Manifest, ManifestDraft, SourceIdentity } from './manifest.js';
import { commitManifest, openManifest, refreshManifest, type ManifestHead } from './manifest-log.js';
import { putBytes, type VaultStorage } from './storage.js';
import { assertWitnessed, forgetWitness, recordWitness } from './witness.js';

/** The vault location: --vault, else RECALL_VAULT. */
export function resolveVaultLocation(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const location = flag ?? env.RECALL_VAULT;
  if (location === undefined || location === '') {
    throw new UsageError('no vault given', 'pass --vault ./recall-vault (a directory) or s3://bucket/prefix, or set RECALL_VAULT');
  }
  return location;
}

/** Why capture last stopped on a transaction it could not ingest; `recall status` shows it until capture gets past it. */
export interface CaptureFailure {
  /** ISO time of the failure. */
  readonly at: string;
  readonly message: string;
  readonly hint: string;
  /** Commit LSN of the (first) transaction it could not ingest. */
  readonly lsn: string;
}

/** Where the failure record lives in the vault: beside the manifest, never part of it. */
const CAPTURE_FAILURE_PATH = 'state/capture-failure.json';

/**
 * The slot (and publication) an init of this vault named. Written before the slot is
 * created and again once it is, with its consistent point: a later init drops a slot
 * only if this record proves it is the one this vault created and nothing consumed.
 */
export interface SlotClaim {
  readonly slot: string;
  readonly publication: string;
  readonly systemId: string;
  readonly database: string;
  /** The slot's consistent point (LSN text) once created; null before. */
  readonly consistentPoint: string | null;
}

const SLOT_CLAIM_PATH = 'state/slot.json';

/** A transaction Recall wrote (restore, undo), recorded before its COMMIT. */
export interface OwnTransaction {
  /** The 64-bit transaction id, as text. */
  readonly xid: string;
  readonly op: 'restore' | 'undo';
  readonly plan: string;
}

/** One file per transaction: records are only ever added, by any number of sessions at once. */
const OWN_TRANSACTIONS_DIR = 'state/own-transactions';

/**
 * Positions capture acknowledged while idle (keepalives past the last commit), recorded
 * before they are sent; the manifest records the ones that come with a commit.
 */
const ACKNOWLEDGED_PATH = 'state/acknowledged.json';

/** What the last `recall gc` did, for `recall status`. */
export interface GcRecord {
  /** ISO time it finished. */
  readonly at: string;
  readonly deleted: number;
  readonly bytes: number;
  /** Manifest versions pruned (retention), when there were any. */
  readonly manifestVersions?: number;
}

const GC_PATH = 'state/gc.json';
const VERIFY_PATH = 'state/verify.json';

/** What a `recall verify` of the live database found, for `recall status`. */
export interface VerifyRecord {
  /** ISO time it finished. */
  readonly at: string;
  /** Whether it compared every tenant and table (not a --tenant or --table subset). */
  readonly full: boolean;
  /** The LSNs of its snapshots. */
  readonly points: readonly string[];
  readonly tenants: number;
  readonly rows: number;
  /** Rows where the database and the history differ. */
  readonly differences: number;
  /** The tenants those rows belong to (null: a global table), at most 20. */
  readonly affected: readonly (string | null)[];
  /** Tables it left out (their layout differs, not readable…): "equal" holds for the others only. */
  readonly skipped?: number;
  /** ISO time it started: a pass's duration bounds how late it notices a difference. */
  readonly startedAt?: string;
  /** The schedule it ran on (capture's --verify-every), in ms; absent for a verify run by hand. */
  readonly everyMs?: number;
}

/** The newest verify, and the newest that was a full pass. */
export interface VerifyRecords {
  readonly last: VerifyRecord | null;
  readonly lastFull: VerifyRecord | null;
}
const ERASURE_KEY_PATH = 'state/erasure-key';

/** How an erasure names a tenant: HMAC-SHA256 of its text under the vault's erasure key. */
export function tenantDigest(key: Buffer, tenant: string): string {
  return createHmac('sha256', key).update(tenant, 'utf8').digest('hex');
}

/** Layers fetched (and hashed) at once by `layerFiles`. */
const LAYER_FETCHES = 4;

/** Attempts of a commit that keeps losing the race to other committers (compact or gc beside capture) before it gives up. */
const COMMIT_ATTEMPTS = 10;

/**
 * A change to the manifest, computed from the newest state: it may run again on a newer
 * one if another process commits first. It throws to refuse a state it cannot apply to,
 * and returns undefined when, on that state, there is nothing left to commit.
 */
export type ManifestChange = (current: Manifest | undefined) => ManifestDraft | undefined;

/** An opened vault. */
export class Vault {
  private verified = new Set<string>();
  /** The commit in progress: commits of one process (capture's writer, its compaction) go one at a time. */
  private committing: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly storage: VaultStorage,
    private current: ManifestHead | undefined,
  ) {}

  /**
   * Opens the vault on a storage (openStorage); it may be empty (before `recall init`).
   * Reads the newest manifest checkpoint and the records after it, and hashes no layer yet.
   */
  static async open(storage: VaultStorage): Promise<Vault> {
    let head = await openManifest(storage);
    // An empty vault says "holds no history" to every command but init, which starts a new chain.
    if (head !== undefined) head = await assertWitnessed(storage, head);
    return new Vault(storage, head);
  }

  /** A warning when others than its owner may read the vault, or undefined. */
  exposure(): Promise<string | undefined> {
    return this.storage.exposure();
  }

  /** Whether `recall init` has completed on this vault. */
  get initialized(): boolean {
    return this.current !== undefined;
  }

  /** The newest committed manifest. */
  get manifest(): Manifest {
    if (this.current === undefined) {
      throw new VaultMissingError(
        `the vault ${this.storage.location} holds no history yet`,
        'run `recall init` first (check --vault / RECALL_VAULT)',
      );
    }
    return this.current.manifest;
  }

  /**
   * Re-reads the newest manifest (another process may have committed since). It waits
   * its turn with this process's commits, so that it never puts back a version older
   * than one a commit here just made.
   */
  async refresh(): Promise<Manifest> {
    const turn = this.committing.then(async () => {
      this.current = await refreshManifest(this.storage, this.current);
      return this.manifest;
    });
    this.committing = turn.catch(() => undefined);
    return turn;
  }

  /** Commits the next manifest version: the log records only how the draft differs from the current one. */
  async commit(draft: ManifestDraft): Promise<Manifest> {
    return this.update(() => draft, 1);
  }

  /**
   * Commits a change computed from the newest state. If another process committed first
   * (compact, gc or forget beside a running capture), re-reads the manifest and computes
   * the change again, with capped exponential backoff and jitter, up to `attempts` times.
   */
  async update(change: ManifestChange, attempts = COMMIT_ATTEMPTS): Promise<Manifest> {
    const turn = this.committing.then(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          const draft = change(this.current?.manifest);
          if (draft === undefined) return this.manifest;
          // The first commit starts a new chain here: a witness of an earlier vault at this location no longer applies.
          if (this.current === undefined) await forgetWitness(this.storage.location);
          const head = await commitManifest(this.storage, this.current, draft);
          this.current = head;
          // Best effort: the commit stands without it (a read-only home), the witness then checks less.
          await recordWitness(this.storage.location, { version: head.manifest.version, sha256: head.hash }).catch(() => undefined);
          return head.manifest;
        } catch (error) {
          if (!(error instanceof CommitRaceLostError) || attempt >= attempts) throw error;
          await sleep(Math.random() * Math.min(2_000, 50 * 2 ** attempt));
          this.current = await refreshManifest(this.storage, this.current);
        }
      }
    });
    this.committing = turn.catch(() => undefined);
    return turn;
  }

  /** Refuses a vault that belongs to another database. */
  assertSource(identity: Pick<SourceIdentity, 'systemId' | 'database'>): void {
    if (this.current === undefined) return;
    const own = this.current.manifest.source;
    if (own.systemId !== identity.systemId || own.database !== identity.database) {
      throw new VaultMismatchError(
        `the vault ${this.storage.location} belongs to database "${own.database}" of system ${own.systemId}, not to "${identity.database}" of system ${identity.systemId}`,
        'use another --vault for this source, or point --source at the database this vault protects',
      );
    }
  }

  /**
   * Puts a layer file this process just wrote (and hashed) into the vault. It counts as
   * verified here: reading it back to hash it again would only re-read what was written.
   */
  async putLayer(file: { readonly local: string; readonly entry: LayerEntry }): Promise<void> {
    await this.storage.putFile(file.entry.path, file.local);
    this.verified.add(file.entry.path);
  }

  /** Local paths of layers, each checked against its SHA-256 once per process. */
  async layerFiles(layers: readonly LayerEntry[]): Promise<string[]> {
    const paths: string[] = new Array<string>(layers.length);
    // A few at a time: on S3 each is a download into the cache, and one after another they add up.
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < layers.length && !failed; i = next++) {
        try {
          paths[i] = await this.layerFile(layers[i]!);
        } catch (error) {
          // The first failure is the command's; the others stop fetching what nothing will read.
          failed = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LAYER_FETCHES, layers.length) }, worker));
    return paths;
  }

  /** One layer's local path, its SHA-256 checked once per process. */
  private async layerFile(layer: LayerEntry): Promise<string> {
    const path = await this.storage.localPath(layer.path);
    if (this.verified.has(layer.path)) return path;
    let actual: string;
    try {
      actual = await hashFile(path);
    } catch (error) {
      throw new VaultCorruptError(
        `layer ${layer.path} is missing from ${this.storage.location}`,
        'restore the file from a copy of the vault',
        {
          cause: error,
        },
      );
    }
    if (actual !== layer.sha256) {
      throw new VaultCorruptError(
        `layer ${layer.path} fails its checksum (lsn:${formatLsn(layer.minLsn)}–lsn:${formatLsn(layer.maxLsn)}, ${layer.rows} rows)`,
        'restore the file from a copy of the vault; it is not used until then',
      );
    }
    this.verified.add(layer.path);
    return path;
  }

  /** Records (or, with null, clears) why capture stopped, durably. */
  async recordCaptureFailure(failure: CaptureFailure | null): Promise<void> {
    await this.writeState(CAPTURE_FAILURE_PATH, failure);
  }

  /** The recorded capture failure, if capture has not got past it since. */
  async captureFailure(): Promise<CaptureFailure | null> {
    return this.readState<CaptureFailure>(CAPTURE_FAILURE_PATH);
  }

  /** Records the slot an init names (before creating it) and, once created, its consistent point. */
  async recordSlotClaim(claim: SlotClaim): Promise<void> {
    await this.writeState(SLOT_CLAIM_PATH, claim);
  }

  /** The slot an init of this vault named, if one ever did. */
  async slotClaim(): Promise<SlotClaim | null> {
    return this.readState<SlotClaim>(SLOT_CLAIM_PATH);
  }

  /** Records, durably and before capture sends it, a position acknowledged to the slot with no commit of its own. */
  async recordAcknowledged(lsn: bigint): Promise<void> {
    await this.writeState(ACKNOWLEDGED_PATH, { lsn: lsn.toString() });
  }

  /**
   * The furthest position this vault recorded acknowledging to its slot, from the newest
   * manifest and the idle record; undefined for a vault of an earlier release that never did.
   */
  async acknowledgedLsn(): Promise<bigint | undefined> {
    const idle = await this.readState<{ lsn: string }>(ACKNOWLEDGED_PATH);
    const fromManifest = this.current?.manifest.acknowledgedLsn;
    const fromIdle = idle !== null && /^\d+$/.test(idle.lsn) ? BigInt(idle.lsn) : undefined;
    if (fromManifest === undefined) return fromIdle;
    return fromIdle !== undefined && fromIdle > fromManifest ? fromIdle : fromManifest;
  }

  /**
   * Records, durably and before it commits, a transaction Recall itself writes (a
   * restore's or undo's): `--actor recall` selects only recorded ones, since any role
   * can claim the actor `recall` in its transaction context.
   */
  async recordOwnTransaction(own: OwnTransaction): Promise<void> {
    await this.writeState(`${OWN_TRANSACTIONS_DIR}/${own.xid}.json`, own);
  }

  /** The 64-bit ids of the transactions Recall recorded as its own. */
  async ownTransactions(): Promise<Set<bigint>> {
    const paths = await this.storage.list(OWN_TRANSACTIONS_DIR);
    return new Set(paths.map((path) => /(\d+)\.json$/.exec(path)?.[1]).flatMap((xid) => (xid === undefined ? [] : [BigInt(xid)])));
  }

  /**
   * The key under which erasures name tenants: 32 random bytes made by the first
   * `recall forget` (exclusively, so two agree). It lets the vault tell that a tenant
   * was erased without the manifest holding its id.
   */
  async erasureKey(create: boolean): Promise<Buffer | undefined> {
    const existing = await this.storage.read(ERASURE_KEY_PATH);
    if (existing !== undefined || !create) return existing;
    await this.storage.createExclusive(ERASURE_KEY_PATH, randomBytes(32));
    return this.storage.read(ERASURE_KEY_PATH);
  }

  /** The erasure of `tenant`, if `recall forget` erased it. */
  async erasureOf(tenant: string): Promise<ErasureRecord | undefined> {
    const erasures = this.manifest.erasures ?? [];
    if (erasures.length === 0) return undefined;
    const key = await this.erasureKey(false);
    if (key === undefined) return undefined;
    const digest = tenantDigest(key, tenant);
    return erasures.find((erasure) => erasure.tenant === digest);
  }

  /** Records what a gc just did. */
  async recordGc(record: GcRecord): Promise<void> {
    await this.writeState(GC_PATH, record);
  }

  /** What the last gc did, if one ever ran. */
  async lastGc(): Promise<GcRecord | null> {
    return this.readState<GcRecord>(GC_PATH);
  }

  /** Records what a verify found (a full pass is kept as such until the next full pass). */
  async recordVerify(record: VerifyRecord): Promise<void> {
    const before = await this.verifyRecords();
    await this.writeState(VERIFY_PATH, { last: record, lastFull: record.full ? record : before.lastFull });
  }

  /** The newest verify and the newest full pass, if any ran. */
  async verifyRecords(): Promise<VerifyRecords> {
    const records = await this.readState<VerifyRecords>(VERIFY_PATH);
    return { last: records?.last ?? null, lastFull: records?.lastFull ?? null };
  }

  /** Writes a small JSON state file durably (through scratch, then into the vault). */
  private async writeState(path: string, value: unknown): Promise<void> {
    await putBytes(this.storage, path, JSON.stringify(value));
  }

  /** A state file's value; null when it is absent or unreadable (state files are advisory). */
  private async readState<T>(path: string): Promise<T | null> {
    const data = await this.storage.read(path);
    if (data === undefined) return null;
    try {
      return JSON.parse(data.toString('utf8')) as T | null;
    } catch {
      return null;
    }
  }

  /** Total bytes of the live layers. */
  get layerBytes(): number {
    return this.manifest.layers.reduce((sum, layer) => sum + layer.bytes, 0);
  }
}
