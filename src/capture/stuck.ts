// Turning a failure to ingest staged transactions into the error capture stops
// with: what could not be ingested, why, that nothing was lost, and what to do.

import { CaptureStuckError, RecallError } from '../errors.js';
import { processMemoryBudget } from '../vault/index.js';

/** The advice for a cause: memory, the vault's disk, or anything else. */
function advice(error: unknown): string {
  const text = (error as Error)?.message ?? String(error);
  const code = (error as { code?: unknown })?.code;
  if (/out of memory/i.test(text)) {
    const mib = Math.round(processMemoryBudget().bytes / 2 ** 20);
    return `raise --memory-limit (now ${mib} MiB; also RECALL_MEMORY_LIMIT or memory-limit in recall.yml)`;
  }
  if (code === 'EFBIG' || code === 'ENOSPC' || code === 'EDQUOT' || /file too large|no space left|disk quota/i.test(text)) {
    return "free space on the vault's disk, or lift the file-size limit (ulimit -f) of the capture process";
  }
  return 'fix the cause above';
}

/** The error that stops capture on `what` (a description of the staged transactions), with `error` as its cause. */
export function asStuck(error: unknown, what: string | undefined): CaptureStuckError {
  const cause = error instanceof RecallError ? error.message : ((error as Error)?.message ?? String(error)).split('\n')[0];
  return new CaptureStuckError(
    `capture cannot ingest ${what ?? 'what it received'}: ${cause}`,
    `${advice(error)}, then run \`recall capture\` again; nothing past the vault's last commit was acknowledged, so the slot keeps that WAL and nothing is lost (\`recall status\` shows the WAL it holds)`,
    { cause: error },
  );
}
