// The floor of any capture written on Recall's stack: a Node process that streams a slot
// with node-postgres, decodes every pgoutput message as capture does, and discards the
// rows (nothing staged, nothing written). bench/capture-wide.ts runs it beside
// pg_recvlogical, so a ratio of Recall against pg_recvlogical can be read against this one.
// Usage: node --import tsx bench/receiver-floor.ts URL SLOT END_LSN

import pg from 'pg';
import { ReplicationStream } from '../src/capture/replication-stream.js';
import { formatLsn, parseLsn } from '../src/timeline/lsn.js';

const [url, slot, endText] = process.argv.slice(2);
if (url === undefined || slot === undefined || endText === undefined) {
  console.error('usage: receiver-floor.ts URL SLOT END_LSN');
  process.exit(2);
}
const end = parseLsn(endText);
if (end === undefined) throw new Error(`not an LSN: ${endText}`);
const client = new pg.Client({ connectionString: url, replication: 'database' } as pg.ClientConfig);
await client.connect();
const stream = ReplicationStream.start(client, { slot, publication: 'recall', startLsn: 0n });
console.error('floor: streaming');
let changes = 0;
let through = 0n;
for await (const frame of stream) {
  if (frame.kind === 'data') {
    const { message } = frame;
    if (message.tag === 'insert' || message.tag === 'update' || message.tag === 'delete') changes++;
    if (message.tag === 'commit') through = message.endLsn;
    if (through >= end) break;
  } else if (frame.kind === 'keepalive' && frame.walEnd >= end) {
    // As pg_recvlogical -E decides: a keepalive comes when the sender has sent all it has.
    through = frame.walEnd;
    break;
  }
}
// Confirmed like the other readers, so the next round starts where this one ended (the
// status goes out on the socket before close's Terminate).
stream.sendStatus(through);
console.error(`floor: ${changes} changes through ${formatLsn(through)}`);
await stream.close();
process.exit(0);
