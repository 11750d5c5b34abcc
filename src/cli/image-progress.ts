// `recall init`'s progress on a terminal: one line on stderr, rewritten in place, with
// the table being read, its COPY text so far against its size on disk, and its row
// estimate; log lines print above it. Nothing of it on a pipe or a file.

import type { ImageProgress } from '../capture/index.js';
import { printable, printableLines } from './terminal-text.js';

/** How often the line is redrawn at most. */
const REDRAW_MS = 100;
const BAR_WIDTH = 20;

/** The progress display, or undefined when stderr is not a terminal. */
export interface ProgressLine {
  readonly update: (progress: ImageProgress) => void;
  /** Prints a log line above the progress line. */
  readonly log: (line: string) => void;
  /** Clears the progress line. */
  readonly end: () => void;
}

/** A progress line on `stream` if it is a terminal; coloured unless NO_COLOR is set or TERM is dumb. */
export function imageProgress(stream: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): ProgressLine | undefined {
  if (!stream.isTTY) return undefined;
  const colour = env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const paint = (text: string): string => (colour ? `\x1b[36m${text}\x1b[0m` : text);
  let shown: ImageProgress | undefined;
  let drawnAt = 0;
  const draw = (progress: ImageProgress): void => {
    shown = progress;
    drawnAt = Date.now();
    // Cut to the terminal's width: a wrapped line could no longer be rewritten in place.
    stream.write(`\r\x1b[K${lineOf(progress, stream.columns > 0 ? stream.columns - 1 : 79, paint)}`);
  };
  return {
    update(progress) {
      const changed = shown?.table !== progress.table || shown.done !== progress.done;
      if (changed || Date.now() - drawnAt >= REDRAW_MS) draw(progress);
    },
    log(line) {
      stream.write(`\r\x1b[K${printableLines(line)}\n`);
      if (shown !== undefined) draw(shown);
    },
    end() {
      if (shown !== undefined) stream.write('\r\x1b[K');
      shown = undefined;
    },
  };
}

/** `init: [3/9] public.customer ███░░ 58% 104 MB of ~199 MB on disk, ~300,000 rows` (or the wait for the last layers), in `width`. */
function lineOf(progress: ImageProgress, width: number, paint: (text: string) => string): string {
  if (progress.done && progress.index === progress.tables) return `init: all ${progress.tables} tables read; writing the last layers`;
  const share = progress.estimatedBytes > 0 ? Math.min(0.99, progress.bytes / progress.estimatedBytes) : 0;
  const filled = Math.round(share * BAR_WIDTH);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}`;
  const rows = progress.estimatedRows === undefined ? '' : `, ~${progress.estimatedRows.toLocaleString('en')} rows`;
  const before = `init: [${progress.index}/${progress.tables}] ${printable(progress.table)} `;
  const after = ` ${Math.round(share * 100)}% ${megabytes(progress.bytes)} of ~${megabytes(progress.estimatedBytes)} on disk${rows}`;
  const plain = [...`${before}${bar}${after}`];
  return plain.length > width ? `${plain.slice(0, width - 1).join('')}…` : `${before}${paint(bar)}${after}`;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}
