// `recall demo` as a newcomer runs it: it tells its story, proves the undo, and
// leaves nothing running; with --keep it leaves a database one can connect to and
// says how to remove it.

import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import pg from 'pg';
import { jsonLines, runRecall } from './harness/recall.js';

const env = { ...process.env, NO_COLOR: '1' };

describe('recall demo', () => {
  test('tells each step, checks the undo, and leaves nothing behind', async () => {
    const result = await runRecall(['demo', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const events = jsonLines<{ kind: string; text?: string; plan?: { totals: { insert: number }; unresolved: number } }>(result.stdout);
    const steps = events.filter((e) => e.kind === 'step').map((e) => e.text ?? '');
    assert.ok(
      steps.some((text) => /^the accident: a cleanup script deleted 20 tenants/.test(text)),
      steps.join('\n'),
    );
    assert.ok(
      steps.some((text) => /^checked: the 20 tenants equal their rows before the script, exactly/.test(text)),
      steps.join('\n'),
    );
    const plan = events.find((e) => e.kind === 'plan')?.plan;
    assert.ok((plan?.totals.insert ?? 0) > 0 && plan?.unresolved === 0);
    const port = /127\.0\.0\.1:(\d+)/.exec(steps[0] ?? '')?.[1];
    const probe = new pg.Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', password: 'x', connectionTimeoutMillis: 2000 });
    await assert.rejects(probe.connect(), /ECONNREFUSED/, 'the demo database is gone');
  });

  test('--keep leaves a database to explore and says how to remove it', async () => {
    const result = await runRecall(['demo', '--keep'], env);
    assert.equal(result.code, 0, result.stderr);
    const url = /export RECALL_SOURCE='([^']+)' RECALL_VAULT='([^']+)'/.exec(result.stderr);
    const remove = /^when done: (.+)$/m.exec(result.stderr)?.[1];
    assert.ok(url?.[1] && url[2] && remove, result.stderr);
    try {
      // Every command the demo suggests works as printed.
      const suggested = [...result.stderr.matchAll(/^ {2}npx recall (.+?)(?: {3}#.*)?$/gm)].map((m) => m[1]!.split(' '));
      assert.equal(suggested.length, 4, result.stderr);
      for (const args of suggested) {
        const run = await runRecall(args, { ...env, RECALL_SOURCE: url[1], RECALL_VAULT: url[2] });
        assert.equal(run.code, 0, `recall ${args.join(' ')}: ${run.stderr}`);
      }
      const log = await runRecall(['log', '--tenant', 't050', '--json'], { ...env, RECALL_SOURCE: url[1], RECALL_VAULT: url[2] });
      assert.equal(log.code, 0, log.stderr);
      assert.match(log.stdout, /"actor":"cleanup-script"/);
      assert.match(log.stdout, /"actor":"recall","op":"undo"/, 'the undo is in the history too');
    } finally {
      execSync(remove, { stdio: 'ignore' });
    }
    assert.equal(existsSync(url[2]), false, 'the command removes the vault too');
  });
});
