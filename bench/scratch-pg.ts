import pg from 'pg';
import { startCluster } from '../src/sandbox/index.js';
const cluster = await startCluster({ major: 18, settings: { shared_buffers: '512MB' } });
const db = new pg.Client({ connectionString: cluster.url() });
await db.connect();
await db.query(`SET search_path = pg_catalog, public`);
await db.query(`CREATE TABLE public.accounts (tenant_id int NOT NULL, id int NOT NULL, name text, email text, balance numeric(12,2), created timestamptz, doc jsonb, PRIMARY KEY (tenant_id, id));
  INSERT INTO public.accounts SELECT t, i, 'account ' || i, 'user' || i || '@t' || t || '.example', i * 1.5, now() - i * interval '1 minute', jsonb_build_object('plan', 'pro', 'seats', i % 50, 'note', repeat('n', 40))
    FROM generate_series(1, 1000) t, generate_series(1, 500) i; ANALYZE;`);
const cols = ['tenant_id', 'id', 'name', 'email', 'balance', 'created', 'doc'];
const text = (c: string) => `CASE WHEN num_nulls(l.${c}) = 1 THEN NULL ELSE format('%s', l.${c}) END`;
const variants: Record<string, string> = {
  copy: `COPY public.accounts TO '/dev/null'`,
  current: `SELECT t, count(*), sum(h) FROM (SELECT s.t, ('x' || left(md5(${cols.map((_, i) => `coalesce(octet_length(s.v${i})::VARCHAR || ':' || s.v${i}, 'N')`).join(' || ')}), 15))::bit(60)::bigint AS h FROM (SELECT format('%s', l.tenant_id) AS t, ${cols.map((c, i) => `${text(c)} AS v${i}`).join(', ')} FROM public.accounts l OFFSET 0) s) f GROUP BY t`,
  jsonarray: `SELECT t, count(*), sum(h) FROM (SELECT format('%s', l.tenant_id) AS t, ('x' || left(md5(to_json(ARRAY[${cols.map(text).join(', ')}]::text[])::text), 15))::bit(60)::bigint AS h FROM public.accounts l) f GROUP BY t`,
  jsonarray_cast: `SELECT t, count(*), sum(h) FROM (SELECT l.tenant_id::text AS t, ('x' || left(md5(to_json(ARRAY[${cols.map((c) => `l.${c}::text`).join(', ')}])::text), 15))::bit(60)::bigint AS h FROM public.accounts l) f GROUP BY t`,
  record: `SELECT t, count(*), sum(h) FROM (SELECT l.tenant_id::text AS t, ('x' || left(md5(ROW(${cols.map((c) => `l.${c}`).join(', ')})::text), 15))::bit(60)::bigint AS h FROM public.accounts l) f GROUP BY t`,
};
for (const par of ['0', '2']) {
  await db.query(`SET max_parallel_workers_per_gather = ${par}`);
  for (const [name, sql] of Object.entries(variants)) {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) { const s = performance.now(); await db.query(sql); times.push(performance.now() - s); }
    console.log(`par ${par} ${name.padEnd(16)} ${times.map((x) => x.toFixed(0)).join(' ')}`);
  }
}
await db.end();
await cluster.destroy();
