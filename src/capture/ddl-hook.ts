// The DDL hook: pgoutput sends a table's new layout only with its next change, so a
// column added with a default would be missing from every point until then. An event
// trigger (installed by `recall init` when it runs as a superuser) writes each ALTER
// TABLE's resulting layout into the WAL as a transactional logical message, which
// capture reads in the ALTER's own transaction: the layout starts exactly there, and
// it is the catalog as the ALTER left it, however far capture lags behind.

import type pg from 'pg';
import { ensureRecallFunction } from '../source/index.js';
import type { CatalogColumn } from './relations.js';

/** The prefix of the hook's logical messages. */
export const DDL_MESSAGE_PREFIX = 'recall-ddl';

/** A table's layout as the hook announced it. */
export interface AnnouncedLayout {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** A partition: captured under its root, which gets its own announcement. */
  readonly partition: boolean;
  readonly columns: readonly (CatalogColumn & { readonly generated: boolean })[];
}

/**
 * The trigger function. It never fails the application's DDL: any error becomes a
 * warning, and the layout then starts at the table's next change, as without the hook.
 * A partitioned root stores no rows, so an ADD COLUMN default lives on its partitions.
 */
const HOOK_BODY = `
DECLARE
  altered oid;
BEGIN
  FOR altered IN SELECT DISTINCT objid FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    PERFORM pg_logical_emit_message(true, '${DDL_MESSAGE_PREFIX}', json_build_object(
      'oid', c.oid, 'schema', n.nspname, 'name', c.relname, 'partition', c.relispartition,
      'columns', (SELECT json_agg(json_build_object(
          'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'typeOid', a.atttypid, 'attnum', a.attnum,
          'generated', a.attgenerated <> '', 'hasDefault', a.atthasdef,
          'missing', (SELECT (p.attmissingval::text::text[])[1]
                        FROM (SELECT c.oid AS relid UNION ALL SELECT relid FROM pg_partition_tree(c.oid)) t
                        JOIN pg_attribute p ON p.attrelid = t.relid AND p.attname = a.attname AND NOT p.attisdropped AND p.atthasmissing
                       LIMIT 1)) ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))::text)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = altered AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p';
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'recall: the new layout was not recorded (%); the history shows it from the next change', SQLERRM;
END
`;
const HOOK_FUNCTION = `CREATE OR REPLACE FUNCTION recall.announce_layout() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $hook$${HOOK_BODY}$hook$`;

/** Installs (or refreshes) the hook; needs a superuser, as every event trigger does. */
export async function installDdlHook(client: pg.Client): Promise<void> {
  await ensureRecallFunction(client, 'announce_layout', HOOK_BODY, HOOK_FUNCTION);
  const { rowCount } = await client.query(`SELECT 1 FROM pg_event_trigger WHERE evtname = 'recall_announce_layout'`);
  if (rowCount === 0) {
    await client.query(
      `CREATE EVENT TRIGGER recall_announce_layout ON ddl_command_end WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION recall.announce_layout()`,
    );
  }
}

/** Reads a hook message; undefined for content that is not a layout (never fatal to capture). */
export function parseAnnouncedLayout(content: Buffer): AnnouncedLayout | undefined {
  try {
    const raw = JSON.parse(content.toString('utf8')) as {
      oid: number | string;
      schema: string;
      name: string;
      partition: boolean;
      columns: {
        name: string;
        type: string;
        typeOid: number | string;
        attnum: number;
        generated: boolean;
        hasDefault: boolean;
        missing: string | null;
      }[];
    };
    // json_build_object renders oid values as strings.
    const oid = Number(raw.oid);
    if (!Number.isInteger(oid) || !Array.isArray(raw.columns)) return undefined;
    return {
      oid,
      schema: raw.schema,
      name: raw.name,
      partition: raw.partition === true,
      columns: raw.columns.map((column) => ({
        name: column.name,
        type: column.type,
        typeOid: Number(column.typeOid),
        attnum: Number(column.attnum),
        generated: column.generated === true,
        hasDefault: column.hasDefault === true,
        missing: column.missing ?? undefined,
      })),
    };
  } catch {
    return undefined;
  }
}
