// Capture's periodic verify (`--verify-every D`): a `recall verify` child process every
// D, one at a time, at low CPU priority and with half of capture's memory budget, so a
// verify never slows the capture that must keep up with the source. What it finds lands
// in the vault's verify record, which `recall status` shows, and in capture's log.

import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { MIN_MEMORY_LIMIT, processMemoryBudget } from '../vault/index.js';
import type { CommandFlags } from './common.js';

/** The niceness of the verify process: below capture, which must keep up with the source. */
const LOW_PRIORITY = 10;

/** A running schedule; `stop` ends the verify in flight, if any. */
export interface VerifySchedule {
  stop(): Promise<void>;
}

/** Starts a `recall verify` every `everyMs` (the first `everyMs` after the call), logging what each found. */
export function scheduleVerify(everyMs: number, flags: CommandFlags, log: (line: string) => void): VerifySchedule {
  let child: ChildProcess | undefined;
  let ended: Promise<void> = Promise.resolve();
  let stderr = '';
  const start = (): void => {
    if (child !== undefined) return; // the one before is still running: a verify never queues behind another
    stderr = '';
    let running: ChildProcess;
    try {
      running = spawn(process.execPath, [process.argv[1] ?? 'recall', 'verify', '--json', ...passedFlags(flags)], {
        // The schedule goes into the verify's record, from which status says how soon a difference is found.
        env: { ...process.env, RECALL_VERIFY_EVERY: `${everyMs}ms`, ...(flags.vault === undefined ? {} : { RECALL_VAULT: flags.vault }) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      log(`capture: verify could not start: ${(error as Error).message}`);
      return;
    }
    // A failed start (no memory, no process slot) is logged at its close, never thrown into capture.
    running.on('error', (error) => (stderr += `\n${error.message}`));
    child = running;
    try {
      if (running.pid !== undefined) setPriority(running.pid, LOW_PRIORITY);
    } catch {
      // not permitted here: it runs at capture's priority
    }
    let stdout = '';
    running.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    running.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    ended = new Promise((resolve) =>
      running.on('close', (code) => {
        child = undefined;
        log(outcome(code, stdout, stderr));
        resolve();
      }),
    );
  };
  const timer = setInterval(start, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      child?.kill('SIGTERM');
      await ended;
    },
  };
}

/** The flags capture was given that verify takes too, and half of capture's memory budget. */
function passedFlags(flags: CommandFlags): string[] {
  const memory = Math.max(MIN_MEMORY_LIMIT, Math.floor(processMemoryBudget().bytes / 2));
  return [
    ...(flags.source === undefined ? [] : ['--source', flags.source]),
    ...(flags.config === undefined ? [] : ['--config', flags.config]),
    '--memory-limit',
    String(memory),
  ];
}

/** One log line for a verify that ended with `code`. */
function outcome(code: number | null, stdout: string, stderr: string): string {
  let result: { rows?: number; tenants?: number; differences?: { tenant: string | null }[]; unlisted?: number } | undefined;
  try {
    result = JSON.parse(stdout) as typeof result;
  } catch {
    result = undefined;
  }
  if ((code === 0 || code === 3) && result !== undefined) {
    const found = (result.differences?.length ?? 0) + (result.unlisted ?? 0);
    if (found === 0)
      return `capture: verify: the live database equals the history (${result.rows ?? 0} rows of ${result.tenants ?? 0} tenants)`;
    const tenants = [...new Set((result.differences ?? []).map((d) => d.tenant ?? '(global)'))];
    return `capture: verify: ${found} DIFFERENCES in tenants ${tenants.slice(0, 10).join(', ')}${tenants.length > 10 ? ', …' : ''}; \`recall verify\` lists them`;
  }
  const last = stderr.trim().split('\n').at(-1) ?? '';
  return `capture: verify failed (exit ${code ?? 'by signal'}): ${last}`;
}
