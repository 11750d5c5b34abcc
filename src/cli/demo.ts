// `recall demo`: tells the demo's story on stderr, step by step with timings, and
// the undo plan as `recall undo --dry-run` prints it. --json prints one JSON event per line.

import { demo } from '../demo/demo.js';
import { logLine, toJson } from './common.js';
import { formatPlan } from './plan-output.js';

export async function run(flags: { keep?: boolean; json?: boolean }): Promise<number> {
  let n = 0;
  await demo({
    keep: flags.keep === true,
    report: (event) => {
      if (flags.json) {
        process.stdout.write(`${toJson(event)}\n`);
        return;
      }
      switch (event.kind) {
        case 'step':
          logLine(event.ms > 0 ? `${String(++n).padStart(2)}. ${event.text} (${(event.ms / 1000).toFixed(1)} s)` : event.text);
          return;
        case 'plan':
          logLine(formatPlan(event.plan).replace(/^/gm, '    ').trimEnd());
          return;
        case 'kept':
          logLine(
            [
              'kept: the database keeps running and the vault stays. Try:',
              `  export RECALL_SOURCE='${event.sourceUrl}' RECALL_VAULT='${event.vault}'`,
              '  npx recall status',
              `  npx recall log --tenant t050 --since ${event.historyStart}`,
              `  npx recall show --tenant t050 --at before-txn:${event.accidentXid}   # just before the script`,
              '  npx recall undo --actor recall --dry-run   # the undo itself, undone',
              `when done: ${event.removeCommand}`,
            ].join('\n'),
          );
      }
    },
  });
  return 0;
}
