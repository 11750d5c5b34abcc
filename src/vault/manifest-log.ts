// The manifest as a log: each commit creates one small sealed record of what changed,
// and every so often a checkpoint holds the full state, named by `_last_checkpoint`.
// Opening reads that checkpoint and the records after it, however old the vault is.
// Every file is sealed by its own SHA-256 and chained to the one before it.
//
//   manifest/_last_checkpoint                    {"version":V,"sha256":…}: the newest checkpoint
//   manifest/checkpoints/<V:12>.json             the full state after record V
//   manifest/log/<V div 1000:9>/<V:12>.json      record V, one per commit (created exclusively)
//   manifest/<V:12>.json                         full versions of release 0.1.0 (read, never written)

import { CommitRaceLostError, InternalError, VaultConflictError, VaultCorruptError } from '../errors.js';
import {
  canonicalText,
  decodeLayer,
  decodeRetired,
  decodeScalars,
  decodeSchema,
  decodeState,
  jsonText,
  SCALAR_FIELDS,
  sha256,
  type LayerEntry,
  type Manifest,
  type ManifestDraft,
  type RetiredLayer,
  type ScalarField,
  type SchemaVersion,
} from './manifest.js';
import { putBytes, type VaultStorage } from './storage.js';

/** A checkpoint every this many records, or sooner when the records since the last one reach CHECKPOINT_BYTES. */
export const CHECKPOINT_RECORDS = 100;
const CHECKPOINT_BYTES = 1 << 20;
/** Records per directory of the log: one LIST call (S3 returns up to 1,000 keys) reads a directory whole. */
const RECORDS_PER_DIRECTORY = 1000;

const MANIFEST_DIR = 'manifest';
export const POINTER_PATH = `${MANIFEST_DIR}/_last_checkpoint`;
const CHECKPOINT_DIR = `${MANIFEST_DIR}/checkpoints`;
const LOG_DIR = `${MANIFEST_DIR}/log`;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const logDirectory = (block: number): string => `${LOG_DIR}/${pad(block, 9)}`;
export const recordPath = (version: number): string =>
  `${logDirectory(Math.floor(version / RECORDS_PER_DIRECTORY))}/${pad(version, 12)}.json`;
export const checkpointPath = (version: number): string => `${CHECKPOINT_DIR}/${pad(version, 12)}.json`;
export const legacyPath = (version: number): string => `${MANIFEST_DIR}/${pad(version, 12)}.json`;

/** Which file a manifest path is, and its version; undefined for anything else (the pointer, stray files). */
export function manifestFileKind(path: string): { kind: 'record' | 'checkpoint' | 'legacy'; version: number } | undefined {
  const match = /^manifest\/(?:(log)\/\d{9}\/|(checkpoints)\/)?(\d{12})\.json$/.exec(path);
  if (match === null) return undefined;
  return { kind: match[1] !== undefined ? 'record' : match[2] !== undefined ? 'checkpoint' : 'legacy', version: Number(match[3]) };
}

/** A checkpoint as a record or the pointer names it. */
export interface CheckpointRef {
  readonly version: number;
  /** SHA-256 of the checkpoint's file. */
  readonly sha256: string;
}

/** One commit: what changed since the version before. */
export interface ManifestRecord {
  readonly format: 2;
  readonly kind: 'record';
  readonly version: number;
  /** SHA-256 of the previous version's file (a record, or a full version of 0.1.0); null for the first. */
  readonly previous: string | null;
  readonly createdAt: string;
  /** The newest checkpoint the writer knew of: a checkpoint edited after this record was written no longer matches. */
  readonly checkpoint: CheckpointRef | null;
  readonly set: Partial<Pick<Manifest, ScalarField>>;
  readonly unset: readonly ScalarField[];
  readonly addLayers: readonly LayerEntry[];
  /** Paths of layers no longer live. */
  readonly removeLayers: readonly string[];
  /** New schema versions, and changed ones, by id. */
  readonly putSchemas: readonly SchemaVersion[];
  /**
   * Layers newly retired, and paths no longer retired (gc deleted them): the list waits a
   * whole gc-grace, so a record names what changed in it, not all of it. Absent when
   * nothing did; a record of an earlier version may instead `set` the whole list.
   */
  readonly addRetired?: readonly RetiredLayer[];
  readonly removeRetired?: readonly string[];
}

/** The full state after record `version`. */
export interface Checkpoint {
  readonly format: 2;
  readonly kind: 'checkpoint';
  readonly version: number;
  /** SHA-256 of record `version`'s file: the record after it chains to the same hash. */
  readonly record: string;
  readonly state: Manifest;
}

/** The newest state and what the next commit needs to chain to it and to decide on a checkpoint. */
export interface ManifestHead {
  readonly manifest: Manifest;
  /** SHA-256 of the newest version's file: the next record's `previous`. */
  readonly hash: string;
  /** The newest checkpoint read or written; null before the first (a vault of release 0.1.0). */
  readonly checkpoint: CheckpointRef | null;
  /** Records after that checkpoint. */
  readonly sinceCheckpoint: { readonly records: number; readonly bytes: number };
}

/** Something wrong with one manifest file; turned into a VaultCorruptError on open and into a fault by verify. */
export class ManifestFault extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file} ${problem}`);
  }
}

/** The error a command stops with when what it reads of the manifest is wrong. */
export function corruptManifest(storage: VaultStorage, fault: ManifestFault): VaultCorruptError {
  return new VaultCorruptError(
    `manifest file ${fault.file} in ${storage.location} ${fault.problem}`,
    'the vault was changed outside Recall or damaged: run `recall verify --vault` for every fault, and restore the files from a copy of the vault',
    { cause: fault },
  );
}

const SEAL = ',"seal":"';

/** A record's or checkpoint's bytes: one line of JSON whose last field is the SHA-256 of the text before it. */
function sealed(body: ManifestRecord | Checkpoint): Buffer {
  const text = jsonText(body);
  return Buffer.from(`${text.slice(0, -1)}${SEAL}${sha256(text)}"}\n`);
}

/** The body of a sealed file, once its seal matches. */
function unseal(path: string, data: Buffer): Record<string, unknown> {
  const text = data.toString('utf8').trimEnd();
  const at = text.lastIndexOf(SEAL);
  if (at < 0 || text.length !== at + SEAL.length + 64 + 2 || !text.endsWith('"}'))
    throw new ManifestFault(path, 'has no seal (it is cut short or not a manifest file)');
  const body = `${text.slice(0, at)}}`;
  if (sha256(body) !== text.slice(at + SEAL.length, -2))
    throw new ManifestFault(path, 'fails its seal: it was changed after it was written');
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch (error) {
    throw new ManifestFault(path, `cannot be read: ${(error as Error).message}`);
  }
}

/** Runs a decoder, turning what it rejects into a fault of the file. */
function decoded<T>(path: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof ManifestFault) throw error;
    throw new ManifestFault(path, `cannot be read: ${(error as Error).message}`);
  }
}

function decodeRecord(path: string, data: Buffer, version: number): ManifestRecord {
  const raw = unseal(path, data);
  const record = decoded(path, () => {
    if (raw.format !== 2 || raw.kind !== 'record') throw new SyntaxError('it is not a manifest record');
    const lists = raw as {
      addLayers?: unknown[];
      removeLayers?: string[];
      putSchemas?: unknown[];
      unset?: ScalarField[];
      addRetired?: unknown[];
      removeRetired?: unknown[];
    };
    return {
      ...(raw as unknown as ManifestRecord),
      set: decodeScalars((raw.set ?? {}) as Record<string, unknown>),
      unset: lists.unset ?? [],
      addLayers: (lists.addLayers ?? []).map(decodeLayer),
      removeLayers: lists.removeLayers ?? [],
      putSchemas: (lists.putSchemas ?? []).map(decodeSchema),
      addRetired: (lists.addRetired ?? []).map(decodeRetired),
      removeRetired: (lists.removeRetired ?? []).map((path) => {
        if (typeof path !== 'string') throw new SyntaxError('removeRetired holds a non-path');
        return path;
      }),
    };
  });
  if (record.version !== version) throw new ManifestFault(path, `holds version ${record.version}, not ${version}`);
  return record;
}

function decodeCheckpoint(path: string, data: Buffer, version: number): Checkpoint {
  const raw = unseal(path, data);
  const checkpoint = decoded(path, () => {
    if (raw.format !== 2 || raw.kind !== 'checkpoint' || typeof raw.record !== 'string')
      throw new SyntaxError('it is not a manifest checkpoint');
    return { ...(raw as unknown as Checkpoint), state: decodeState(raw.state) };
  });
  if (checkpoint.version !== version || checkpoint.state.version !== version)
    throw new ManifestFault(path, `does not hold version ${version}`);
  return checkpoint;
}

function decodeLegacy(path: string, data: Buffer, version: number): Manifest {
  const manifest = decoded(path, () => decodeState(JSON.parse(data.toString('utf8'))));
  if (manifest.version !== version) throw new ManifestFault(path, `holds version ${manifest.version}, not ${version}`);
  return manifest;
}

/** The fields of a state in one order (the optional scalars in SCALAR_FIELDS' order), so that equal states are written alike. */
function stateOf(
  meta: Pick<Manifest, 'version' | 'previous' | 'createdAt'>,
  scalars: Partial<Pick<Manifest, ScalarField>>,
  layers: readonly LayerEntry[],
  schemas: readonly SchemaVersion[],
): Manifest {
  const { source, startLsn, startTime, throughLsn, throughTime } = scalars;
  if (source === undefined || startLsn === undefined || startTime === undefined || throughLsn === undefined || throughTime === undefined) {
    throw new SyntaxError('the state lacks the source or its LSN range');
  }
  const optional = Object.fromEntries(
    SCALAR_FIELDS.filter((field) => scalars[field] !== undefined).map((field) => [field, scalars[field]]),
  );
  return {
    format: 1,
    version: meta.version,
    previous: meta.previous,
    createdAt: meta.createdAt,
    ...optional,
    source,
    startLsn,
    startTime,
    throughLsn,
    throughTime,
    layers,
    schemas,
  };
}

/** The state after a record, from the state before it (undefined before the first). */
export function applyRecord(path: string, base: Manifest | undefined, record: ManifestRecord): Manifest {
  const scalars: Partial<Record<ScalarField, unknown>> = {};
  for (const field of SCALAR_FIELDS) scalars[field] = base?.[field];
  Object.assign(scalars, record.set);
  for (const field of record.unset) delete scalars[field];
  if ((record.addRetired?.length ?? 0) + (record.removeRetired?.length ?? 0) > 0) {
    const retired = new Map(((scalars.retired as readonly RetiredLayer[] | undefined) ?? []).map((entry) => [entry.path, entry]));
    for (const removed of record.removeRetired ?? []) {
      if (!retired.delete(removed)) throw new ManifestFault(path, `takes ${removed} off the retired list, which does not hold it`);
    }
    for (const added of record.addRetired ?? []) {
      if (retired.has(added.path)) throw new ManifestFault(path, `retires the layer ${added.path} twice`);
      retired.set(added.path, added);
    }
    scalars.retired = retired.size === 0 ? undefined : [...retired.values()];
  }
  const live = new Map((base?.layers ?? []).map((layer) => [layer.path, layer]));
  for (const removed of record.removeLayers) {
    if (!live.delete(removed)) throw new ManifestFault(path, `removes the layer ${removed}, which is not live`);
  }
  for (const added of record.addLayers) {
    if (live.has(added.path)) throw new ManifestFault(path, `adds the layer ${added.path} twice`);
    live.set(added.path, added);
  }
  const schemas = [...(base?.schemas ?? [])];
  for (const schema of record.putSchemas) {
    if (schema.id > schemas.length) throw new ManifestFault(path, `puts schema version ${schema.id} after a gap in the ids`);
    schemas[schema.id] = schema;
  }
  return decoded(path, () => stateOf(record, scalars as Partial<Pick<Manifest, ScalarField>>, [...live.values()], schemas));
}

/** What a commit records: the fields of the draft that differ from the current state. */
function changes(
  base: Manifest | undefined,
  draft: ManifestDraft,
): Pick<ManifestRecord, 'set' | 'unset' | 'addLayers' | 'removeLayers' | 'putSchemas' | 'addRetired' | 'removeRetired'> {
  const set: Partial<Record<ScalarField, unknown>> = {};
  const unset: ScalarField[] = [];
  for (const field of SCALAR_FIELDS) {
    if (field === 'retired') continue;
    const now = draft[field];
    const was = base?.[field];
    if (now === undefined) {
      if (was !== undefined) unset.push(field);
    } else if (was === undefined || canonicalText(now) !== canonicalText(was)) set[field] = now;
  }
  // Callers pass the current entries on; an entry is compared by value only when it is another object.
  const same = <T>(a: T | undefined, b: T): boolean => a === b || (a !== undefined && canonicalText(a) === canonicalText(b));
  const before = new Map((base?.layers ?? []).map((layer) => [layer.path, layer]));
  const after = new Map(draft.layers.map((layer) => [layer.path, layer]));
  const baseSchemas = base?.schemas ?? [];
  if (draft.schemas.length < baseSchemas.length) {
    throw new InternalError(
      `a commit would drop schema versions (${draft.schemas.length} of ${baseSchemas.length} left); the schema history only grows`,
    );
  }
  const wasRetired = new Map((base?.retired ?? []).map((entry) => [entry.path, entry]));
  const nowRetired = new Map((draft.retired ?? []).map((entry) => [entry.path, entry]));
  const addRetired = [...nowRetired.values()].filter((entry) => !same(wasRetired.get(entry.path), entry));
  const removeRetired = [...wasRetired.values()].filter((entry) => !same(nowRetired.get(entry.path), entry)).map((entry) => entry.path);
  return {
    set: set as Partial<Pick<Manifest, ScalarField>>,
    unset,
    addLayers: draft.layers.filter((layer) => !same(before.get(layer.path), layer)),
    removeLayers: [...before.values()].filter((layer) => !same(after.get(layer.path), layer)).map((layer) => layer.path),
    putSchemas: draft.schemas.filter((schema, id) => !same(baseSchemas[id], schema)),
    ...(addRetired.length > 0 ? { addRetired } : {}),
    ...(removeRetired.length > 0 ? { removeRetired } : {}),
  };
}

/** Reads a file that a listing or a pointer says is there. */
async function readNamed(storage: VaultStorage, path: string, why: string): Promise<Buffer> {
  const data = await storage.read(path);
  if (data === undefined) throw new ManifestFault(path, `is missing (${why})`);
  return data;
}

/** Where opening starts: the newest checkpoint, else the newest full version of 0.1.0, else nothing (version 0). */
interface Base {
  readonly manifest: Manifest | undefined;
  readonly hash: string | null;
  readonly checkpoint: CheckpointRef | null;
}

async function readCheckpoint(storage: VaultStorage, version: number, why: string, expected?: string): Promise<Base> {
  const path = checkpointPath(version);
  const data = await readNamed(storage, path, why);
  const hash = sha256(data);
  if (expected !== undefined && hash !== expected) throw new ManifestFault(path, `does not match the SHA-256 that ${POINTER_PATH} records`);
  const checkpoint = decodeCheckpoint(path, data, version);
  return { manifest: checkpoint.state, hash: checkpoint.record, checkpoint: { version, sha256: hash } };
}

/** Parses `_last_checkpoint`. */
export function decodePointer(data: Buffer): CheckpointRef {
  const pointer = decoded(POINTER_PATH, () => JSON.parse(data.toString('utf8')) as Partial<CheckpointRef>);
  if (!Number.isInteger(pointer.version) || typeof pointer.sha256 !== 'string')
    throw new ManifestFault(POINTER_PATH, 'does not name a checkpoint');
  return pointer as CheckpointRef;
}

/**
 * The base to fold records onto. `_last_checkpoint` names it in one read; without the
 * pointer (deleted, or never written by a crash) the checkpoint directory is listed,
 * one name per CHECKPOINT_RECORDS commits; without checkpoints the vault is of 0.1.0
 * (or empty) and its full versions are listed as that release did.
 */
async function readBase(storage: VaultStorage): Promise<Base> {
  const pointer = await storage.read(POINTER_PATH);
  if (pointer !== undefined) {
    const named = decodePointer(pointer);
    return readCheckpoint(storage, named.version, `${POINTER_PATH} names it`, named.sha256);
  }
  const newestCheckpoint = (await storage.list(CHECKPOINT_DIR))
    .map(manifestFileKind)
    .filter((file) => file?.kind === 'checkpoint')
    .at(-1);
  if (newestCheckpoint !== undefined) return readCheckpoint(storage, newestCheckpoint.version, 'it was listed');
  const legacy = (await storage.list(MANIFEST_DIR)).map(manifestFileKind).filter((file) => file?.kind === 'legacy');
  const newest = legacy.at(-1);
  if (newest === undefined) return { manifest: undefined, hash: null, checkpoint: null };
  const path = legacyPath(newest.version);
  const data = await readNamed(storage, path, 'it was listed');
  const manifest = decodeLegacy(path, data, newest.version);
  if (newest.version > 1) {
    // The newest link of 0.1.0's chain, as that release checked it; `recall verify --vault` walks all of it.
    const previousPath = legacyPath(newest.version - 1);
    const previous = await readNamed(storage, previousPath, `version ${newest.version} follows it`);
    if (sha256(previous) !== manifest.previous) throw new ManifestFault(path, `does not chain to version ${newest.version - 1}`);
  }
  return { manifest, hash: sha256(data), checkpoint: null };
}

/**
 * The records after `version`, checked to follow on without a gap. Their directories are
 * listed from the one that holds `version + 1` until an empty one, so a record deleted
 * from among them is caught; after a checkpoint that is one or two directories.
 */
async function recordsAfter(storage: VaultStorage, version: number): Promise<number[]> {
  const versions: number[] = [];
  for (let block = Math.floor((version + 1) / RECORDS_PER_DIRECTORY); ; block++) {
    const names = await storage.list(logDirectory(block));
    if (names.length === 0) break;
    for (const name of names) {
      const file = manifestFileKind(name);
      if (file?.kind === 'record' && file.version > version) versions.push(file.version);
    }
  }
  versions.forEach((found, i) => {
    if (found !== version + 1 + i)
      throw new ManifestFault(recordPath(version + 1 + i), `is missing, though record ${found} exists: the chain has a gap`);
  });
  return versions;
}

/** Folds the records after a base; each must chain to the one before and to the checkpoint it names. */
async function foldRecords(
  storage: VaultStorage,
  base: Base & { sinceCheckpoint: ManifestHead['sinceCheckpoint'] },
): Promise<ManifestHead | undefined> {
  let { manifest, hash, checkpoint, sinceCheckpoint } = base;
  for (const version of await recordsAfter(storage, manifest?.version ?? 0)) {
    const path = recordPath(version);
    const data = await readNamed(storage, path, 'it was listed');
    const record = decodeRecord(path, data, version);
    if (record.previous !== hash) throw new ManifestFault(path, `does not chain to version ${version - 1}`);
    if (checkpoint !== null && record.checkpoint?.version === checkpoint.version && record.checkpoint.sha256 !== checkpoint.sha256) {
      throw new ManifestFault(checkpointPath(checkpoint.version), `differs from the checkpoint that record ${version} names`);
    }
    manifest = applyRecord(path, manifest, record);
    hash = sha256(data);
    sinceCheckpoint = { records: sinceCheckpoint.records + 1, bytes: sinceCheckpoint.bytes + data.length };
  }
  if (manifest === undefined || hash === null) return undefined;
  return { manifest, hash, checkpoint, sinceCheckpoint };
}

/** The newest manifest state, or undefined for an empty vault. Reads the newest checkpoint and the records after it. */
export async function openManifest(storage: VaultStorage): Promise<ManifestHead | undefined> {
  try {
    return await foldRecords(storage, { ...(await readBase(storage)), sinceCheckpoint: { records: 0, bytes: 0 } });
  } catch (error) {
    throw error instanceof ManifestFault ? corruptManifest(storage, error) : error;
  }
}

/**
 * The head with the records committed since it (by another process) folded in. A head
 * older than the retention horizon may find the records after it pruned (none, or a gap
 * before the first kept one); a checkpoint newer than it then says so, and the vault is
 * opened afresh from that checkpoint. Folding on from the head instead would take a stale
 * state for the newest, and its next commit would fork the chain where a record was pruned.
 */
export async function refreshManifest(storage: VaultStorage, head: ManifestHead | undefined): Promise<ManifestHead | undefined> {
  if (head === undefined) return openManifest(storage);
  try {
    const folded = await foldRecords(storage, head);
    if ((folded?.manifest.version ?? 0) > head.manifest.version || !(await checkpointAfter(storage, head.manifest.version))) return folded;
    return await openManifest(storage);
  } catch (error) {
    if (error instanceof ManifestFault && (await checkpointAfter(storage, head.manifest.version).catch(() => false)))
      return openManifest(storage);
    throw error instanceof ManifestFault ? corruptManifest(storage, error) : error;
  }
}

/** Whether the pointer names a checkpoint newer than `version`. */
async function checkpointAfter(storage: VaultStorage, version: number): Promise<boolean> {
  const data = await storage.read(POINTER_PATH);
  return data !== undefined && decodePointer(data).version > version;
}

/**
 * Commits the next version: creates its record exclusively (the atomic switch, which a
 * second writer loses), then, when due, a checkpoint and the pointer to it. A crash
 * between the record and the checkpoint loses nothing: the next commit writes it.
 */
export async function commitManifest(storage: VaultStorage, head: ManifestHead | undefined, draft: ManifestDraft): Promise<ManifestHead> {
  const version = (head?.manifest.version ?? 0) + 1;
  const record: ManifestRecord = {
    format: 2,
    kind: 'record',
    version,
    previous: head?.hash ?? null,
    createdAt: new Date().toISOString(),
    checkpoint: head?.checkpoint ?? null,
    ...changes(head?.manifest, draft),
  };
  const path = recordPath(version);
  const data = sealed(record);
  if (!(await storage.createExclusive(path, data))) {
    throw new CommitRaceLostError(
      `another process committed manifest version ${version} of ${storage.location} first`,
      'run only one `recall capture` per vault',
    );
  }
  const since = head?.sinceCheckpoint ?? { records: 0, bytes: 0 };
  const next: ManifestHead = {
    manifest: applyRecord(path, head?.manifest, record),
    hash: sha256(data),
    checkpoint: head?.checkpoint ?? null,
    sinceCheckpoint: { records: since.records + 1, bytes: since.bytes + data.length },
  };
  const due =
    next.checkpoint === null || next.sinceCheckpoint.records >= CHECKPOINT_RECORDS || next.sinceCheckpoint.bytes >= CHECKPOINT_BYTES;
  return due ? writeCheckpoint(storage, next) : next;
}

async function writeCheckpoint(storage: VaultStorage, head: ManifestHead): Promise<ManifestHead> {
  const version = head.manifest.version;
  const data = sealed({ format: 2, kind: 'checkpoint', version, record: head.hash, state: head.manifest });
  if (!(await storage.createExclusive(checkpointPath(version), data))) {
    throw new VaultConflictError(
      `another process wrote checkpoint ${version} of ${storage.location}`,
      'run only one `recall capture` per vault',
    );
  }
  const checkpoint = { version, sha256: sha256(data) };
  await putBytes(storage, POINTER_PATH, JSON.stringify(checkpoint));
  return { ...head, checkpoint, sinceCheckpoint: { records: 0, bytes: 0 } };
}

/**
 * The newest checkpoint version, above `from`, whose record was committed at or before
 * `before`: manifest history below it can go (retention). Reads one small record per
 * checkpoint from the oldest kept, stopping at the first one newer than `before`.
 */
export async function prunePoint(storage: VaultStorage, from: number, before: Date): Promise<number | undefined> {
  const versions = (await storage.list(CHECKPOINT_DIR))
    .flatMap((path) => manifestFileKind(path) ?? [])
    .filter((file) => file.kind === 'checkpoint' && file.version > from)
    .map((file) => file.version)
    .sort((a, b) => a - b);
  let point: number | undefined;
  for (const version of versions) {
    const path = recordPath(version);
    const data = await storage.read(path);
    if (data === undefined) break;
    if (Date.parse(decodeRecord(path, data, version).createdAt) > before.getTime()) break;
    point = version;
  }
  return point;
}

/**
 * Deletes the manifest files of versions `from` up to (not including) `to`: records,
 * full versions of 0.1.0 and checkpoints, oldest first. The checkpoint and record of
 * `to` stay: the chain starts there. Called once `prunedBefore: to` is committed.
 */
export async function deleteManifestBefore(storage: VaultStorage, from: number, to: number): Promise<number> {
  let deleted = 0;
  for (let version = from; version < to; version++) {
    // The checkpoint first: a crash in between leaves a record below the chain's start, which the walk skips.
    for (const path of [checkpointPath(version), legacyPath(version), recordPath(version)]) await storage.remove(path);
    deleted += 1;
  }
  return deleted;
}

/** Everything the walk of the whole chain found. */
export interface ChainWalk {
  /** The state after the newest version, when every record on the way could be applied. */
  readonly manifest: Manifest | undefined;
  readonly faults: readonly ManifestFault[];
  readonly legacyVersions: number;
  readonly records: number;
  readonly checkpoints: number;
}

/**
 * Walks every manifest file: the full versions of 0.1.0, then every record, each
 * checked against its seal and the one before it, and every checkpoint against the
 * fold of the records up to it. Faults are collected, not thrown. Once retention
 * pruned the oldest versions, the walk starts at the oldest checkpoint whose record is
 * kept, from that checkpoint's state; the newest state must then record a prune at
 * least that far (`prunedBefore`), so deleting old versions outside Recall is a fault.
 */
export async function walkChain(storage: VaultStorage): Promise<ChainWalk> {
  const faults: ManifestFault[] = [];
  const files = (await storage.list(MANIFEST_DIR)).flatMap((path) => manifestFileKind(path) ?? []);
  const versions = (kind: 'record' | 'checkpoint' | 'legacy'): number[] =>
    files.filter((file) => file.kind === kind).map((file) => file.version);
  const legacy = versions('legacy');
  const records = new Set(versions('record'));
  const checkpoints = new Set(versions('checkpoint'));
  const newestLegacy = legacy.reduce((a, b) => Math.max(a, b), 0);
  const newest = [...records].reduce((a, b) => Math.max(a, b), newestLegacy);
  // Each checkpoint is read when the walk reaches its version; later records and the pointer name it by its SHA-256.
  const checkpointHashes = new Map<number, string>();
  const readCheckpointAt = async (version: number): Promise<{ data: Buffer; checkpoint: Checkpoint | undefined } | undefined> => {
    const path = checkpointPath(version);
    const data = await storage.read(path);
    if (data === undefined) return undefined;
    checkpointHashes.set(version, sha256(data));
    try {
      return { data, checkpoint: decodeCheckpoint(path, data, version) };
    } catch (error) {
      if (!(error instanceof ManifestFault)) throw error;
      faults.push(error);
      return { data, checkpoint: undefined };
    }
  };

  // Version 1 (a record or a full version of 0.1.0) is there unless retention pruned the start.
  const pruned = !records.has(1) && !legacy.includes(1) && newest > 0;
  const firstKept = pruned ? [...checkpoints].filter((version) => records.has(version)).sort((a, b) => a - b)[0] : undefined;
  let manifest: Manifest | undefined;
  // The hash the next version must name; undefined after a missing file, whose hash is unknown.
  let hash: string | null | undefined = null;
  let firstVersion = 1;
  if (firstKept !== undefined) {
    const base = (await readCheckpointAt(firstKept))?.checkpoint;
    const data = await storage.read(recordPath(firstKept));
    if (base !== undefined && data !== undefined && base.record === sha256(data)) {
      manifest = base.state;
      hash = base.record;
      firstVersion = firstKept + 1;
    } else faults.push(new ManifestFault(checkpointPath(firstKept), `does not match record ${firstKept}, where the pruned chain starts`));
  }
  // After a fault the state is unknown, and comparing later checkpoints with it would only repeat the fault.
  let known = true;
  const mismatched = new Set<number>();
  for (let version = firstVersion; version <= newest; version++) {
    const isLegacy = version <= newestLegacy;
    const path = isLegacy ? legacyPath(version) : recordPath(version);
    const checkpoint = checkpoints.has(version) && !isLegacy ? (await readCheckpointAt(version))?.checkpoint : undefined;
    const data = await storage.read(path);
    if (data === undefined) {
      faults.push(new ManifestFault(path, `is missing, though version ${newest} exists: the chain has a gap`));
      known = false;
      hash = undefined;
      continue;
    }
    try {
      if (isLegacy) {
        const full = decodeLegacy(path, data, version);
        if (hash !== undefined && full.previous !== hash) throw new ManifestFault(path, `does not chain to version ${version - 1}`);
        manifest = full;
      } else {
        const record = decodeRecord(path, data, version);
        if (hash !== undefined && record.previous !== hash) throw new ManifestFault(path, `does not chain to version ${version - 1}`);
        const ref = record.checkpoint;
        const named = ref === null ? undefined : checkpointHashes.get(ref.version);
        if (ref !== null && named !== undefined && named !== ref.sha256 && !mismatched.has(ref.version)) {
          mismatched.add(ref.version);
          faults.push(new ManifestFault(checkpointPath(ref.version), `differs from the checkpoint that record ${version} names`));
        }
        if (known) manifest = applyRecord(path, manifest, record);
      }
      if (checkpoint !== undefined && known) {
        if (checkpoint.record !== sha256(data))
          faults.push(new ManifestFault(checkpointPath(version), `does not name the SHA-256 of ${path}`));
        if (canonicalText(checkpoint.state) !== canonicalText(manifest)) {
          faults.push(new ManifestFault(checkpointPath(version), `differs from the state the records up to version ${version} give`));
        }
      }
    } catch (error) {
      if (!(error instanceof ManifestFault)) throw error;
      faults.push(error);
      known = false;
    }
    hash = sha256(data);
  }
  for (const version of checkpoints) {
    if (!records.has(version) || version <= newestLegacy) {
      await readCheckpointAt(version);
      faults.push(new ManifestFault(checkpointPath(version), `names version ${version}, which the log does not hold`));
    }
  }
  if (pruned && known && (manifest?.prunedBefore ?? 0) < (firstKept ?? Number.POSITIVE_INFINITY)) {
    faults.push(
      new ManifestFault(
        firstKept === undefined ? recordPath(1) : recordPath(firstKept - 1),
        `is missing, though no prune of the manifest before version ${firstKept ?? newest} is recorded: the chain's start was deleted`,
      ),
    );
  }
  const pointer = await storage.read(POINTER_PATH);
  if (pointer !== undefined) {
    try {
      const named = decodePointer(pointer);
      const target = checkpointHashes.get(named.version);
      if (target === undefined) throw new ManifestFault(POINTER_PATH, `names checkpoint ${named.version}, which is missing`);
      if (target !== named.sha256) throw new ManifestFault(POINTER_PATH, `does not match the SHA-256 of checkpoint ${named.version}`);
    } catch (error) {
      if (!(error instanceof ManifestFault)) throw error;
      faults.push(error);
    }
  }
  return {
    manifest: known ? manifest : undefined,
    faults,
    legacyVersions: legacy.length,
    records: records.size,
    checkpoints: checkpoints.size,
  };
}
