// `recall demo`: the newcomer's first run, with no database of their own. A
// throwaway PostgreSQL from the npm-shipped binaries, a sample SaaS of 50 tenants
// at work, a cleanup script that deletes 20 of them while the rest keep writing,
// then the undo: its plan, its apply, and a check that the 20 are back exactly
// and nobody else changed. Each step is reported as it ends, with its duration.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { capture, init } from '../capture/index.js';
import { InternalError } from '../errors.js';
import { planUndo, type Plan } from '../restore/index.js';
import { startCluster, type Cluster } from '../sandbox/index.js';
import { DEFAULT_TENANCY, resolveSource } from '../source/index.js';
import { formatMicros } from '../timeline/index.js';
import { openVault } from '../vault/index.js';
import { SAAS_SCHEMA, cleanupScript, keepWorking, othersState, rowCount, signUp, tenantNames, tenantState } from './saas.js';

/** What the demo tells as it goes. */
export type DemoEvent =
  | { readonly kind: 'step'; readonly text: string; readonly ms: number }
  | { readonly kind: 'plan'; readonly plan: Plan }
  | {
      readonly kind: 'kept';
      readonly sourceUrl: string;
      readonly vault: string;
      readonly removeCommand: string;
      /** Points of this demo's own history, for commands that work as printed: where it starts, the script's first transaction. */
      readonly historyStart: string;
      readonly accidentXid: string;
    };

/** How the demo runs. */
export interface DemoOptions {
  /** Leave the database running and the vault in place. */
  readonly keep?: boolean;
  readonly tenants?: number;
  readonly doomed?: number;
  /** How long the tenants work before the accident. */
  readonly workMs?: number;
  readonly report: (event: DemoEvent) => void;
}

/** Runs the whole story; resolves once everything it started is gone (unless kept). */
export async function demo(options: DemoOptions): Promise<void> {
  const report = options.report;
  const started = Date.now();
  let lap = Date.now();
  const step = (text: string): void => {
    report({ kind: 'step', text, ms: Date.now() - lap });
    lap = Date.now();
  };
  const tenants = tenantNames(options.tenants ?? 50);
  const doomed = tenants.slice(-(options.doomed ?? 20));
  const survivors = tenants.filter((tenant) => !doomed.includes(tenant));

  const cluster: Cluster = await startCluster();
  const directory = await mkdtemp(join(tmpdir(), 'recall-demo-'));
  const vaultPath = join(directory, 'vault');
  const db = new pg.Client({ connectionString: cluster.url() });
  const worker = new pg.Client({ connectionString: cluster.url() });
  const stopCapture = new AbortController();
  let capturing: Promise<unknown> | undefined;
  let kept = false;
  try {
    await db.connect();
    await worker.connect();
    step(`started a throwaway PostgreSQL ${cluster.major} on ${cluster.host}:${cluster.port}`);

    await db.query(SAAS_SCHEMA);
    await signUp(db, tenants);
    const total = rowCount(await tenantState(db, tenants));
    step(
      `created a sample SaaS (tenants, users, projects, issues, memberships; plans is global) and signed up ${tenants.length} tenants: ${total} rows`,
    );

    const source = resolveSource(cluster.url());
    const vault = await openVault(vaultPath);
    await init({ source, vault, tenancy: DEFAULT_TENANCY });
    step(`recall init: checked the source, created the publication and the slot, wrote the first image to ${vaultPath}`);

    capturing = capture({ source, vault: await openVault(vaultPath), tenancy: DEFAULT_TENANCY, signal: stopCapture.signal });
    const working = keepWorking(worker, tenants, 2026);
    await new Promise((resolve) => setTimeout(resolve, options.workMs ?? 2000));
    const worked = await working.stop();
    step(`recall capture is streaming every change into the vault; the tenants did ${worked} transactions of ordinary work`);

    const before = await tenantState(db, doomed);
    const othersWorking = keepWorking(worker, survivors, 7);
    const xids = await cleanupScript(db, doomed, 5, { pauseMs: 200 });
    const meanwhile = await othersWorking.stop();
    step(
      `the accident: a cleanup script deleted ${doomed.length} tenants (${doomed[0]}…${doomed.at(-1)}, ${rowCount(before)} rows with their cascades) ` +
        `in ${xids.length} transactions tagged {"actor": "cleanup-script"}, while the other ${survivors.length} made ${meanwhile} transactions`,
    );

    const undoOptions = { source, vault, tenancy: DEFAULT_TENANCY, actor: 'cleanup-script' } as const;
    const dry = await planUndo({ ...undoOptions, dryRun: true });
    await dry.close();
    report({ kind: 'plan', plan: dry.plan });
    step('recall undo --actor cleanup-script --dry-run: the plan above (nothing written)');

    const others = await othersState(db, doomed);
    const prepared = await planUndo(undoOptions);
    try {
      const result = await prepared.apply();
      step(
        `recall undo --actor cleanup-script --yes: froze the ${doomed.length} tenants, wrote ${result.written} rows of ${result.groups} tenants in ${result.transactions} transaction(s), each holding whole tenants and verified before commit`,
      );
    } finally {
      await prepared.close();
    }

    const back = JSON.stringify(await tenantState(db, doomed)) === JSON.stringify(before);
    const untouched = JSON.stringify(await othersState(db, doomed)) === JSON.stringify(others);
    if (!back || !untouched) {
      throw new InternalError(
        `the demo's check failed: ${back ? '' : 'the deleted tenants differ from before; '}${untouched ? '' : 'other rows changed'}`,
      );
    }
    step(
      `checked: the ${doomed.length} tenants equal their rows before the script, exactly; the other ${survivors.length} tenants and the plans table did not change`,
    );

    stopCapture.abort();
    await capturing;
    capturing = undefined;
    if (options.keep) {
      kept = true;
      report({
        kind: 'kept',
        sourceUrl: cluster.url(),
        vault: vaultPath,
        removeCommand: `${cluster.removeCommand} && rm -rf ${directory}`,
        historyStart: formatMicros(vault.manifest.startTime),
        accidentXid: String(xids[0]),
      });
    }
    report({ kind: 'step', text: `done in ${((Date.now() - started) / 1000).toFixed(1)} s`, ms: 0 });
  } finally {
    stopCapture.abort();
    await capturing?.catch(() => undefined);
    await worker.end().catch(() => undefined);
    await db.end().catch(() => undefined);
    if (!kept) {
      await cluster.destroy();
      await rm(directory, { recursive: true, force: true });
    }
  }
}
