// A progress bar on stderr, only on a terminal: the step, a bar of the share done,
// and the rows. It is redrawn in place at most every 100 ms, and cleared before
// anything else is written. On a non-terminal (or TERM=dumb) nothing is drawn, so
// --json output and logs are the same either way.

import type { Progress } from '../restore/index.js';

/** A bar that can be redrawn and cleared. */
export interface ProgressBar {
  update(progress: Progress): void;
  /** Removes the bar from the line, so the next write starts clean. */
  clear(): void;
}

const WIDTH = 24;
const REDRAW_MS = 100;

/** A bar on `stream` if it is a terminal; undefined otherwise. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressBar | undefined {
  if (!stream.isTTY || process.env.TERM === 'dumb') return undefined;
  let shown = false;
  let drawnAt = 0;
  let step: Progress['step'] | undefined;
  return {
    update(progress) {
      const now = Date.now();
      // A new step and the last row of a step are always drawn.
      if (progress.step === step && progress.done < progress.total && now - drawnAt < REDRAW_MS) return;
      step = progress.step;
      drawnAt = now;
      shown = true;
      stream.write(`\r\x1b[K${progressLine(progress)}`);
    },
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}

/** The bar's text: "staging the target ████░░░░ 50% 100,000 of about 200,000 rows". */
export function progressLine(progress: Progress): string {
  const fraction = progress.total > 0 ? Math.min(1, progress.done / progress.total) : 1;
  const filled = Math.round(fraction * WIDTH);
  const label = progress.step === 'staging' ? 'staging the target' : 'writing';
  // Staging's total comes from the vault's counts before the keys are resolved.
  const about = progress.step === 'staging' && progress.done < progress.total ? 'about ' : '';
  const rows = `${progress.done.toLocaleString('en')} of ${about}${progress.total.toLocaleString('en')} rows`;
  return `${label} ${'█'.repeat(filled)}${'░'.repeat(WIDTH - filled)} ${String(Math.floor(fraction * 100)).padStart(3)}% ${rows}`;
}
