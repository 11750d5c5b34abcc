// Table names as users write them: schema-qualified with PostgreSQL's quoting rules
// (`public.issues`, `"Billing"."Invoices"`, or `issues` for the public schema).

import { UsageError } from '../errors.js';

/** A table's schema and name, exactly as stored in the catalog. */
export interface TableName {
  readonly schema: string;
  readonly name: string;
}

/** Parses a possibly quoted, possibly schema-qualified name; unquoted parts fold to lower case. */
export function parseTableName(text: string): TableName {
  const parts: string[] = [];
  let rest = text.trim();
  while (rest.length > 0) {
    let part: string;
    if (rest.startsWith('"')) {
      let end = 1;
      part = '';
      for (;;) {
        const quote = rest.indexOf('"', end);
        if (quote < 0)
          throw new UsageError(`unterminated quote in table name ${text}`, 'write names like public.issues or "Billing"."Invoices"');
        part += rest.slice(end, quote);
        if (rest[quote + 1] === '"') {
          part += '"';
          end = quote + 2;
        } else {
          rest = rest.slice(quote + 1);
          break;
        }
      }
    } else {
      const match = /^[^."]+/.exec(rest);
      if (!match) throw new UsageError(`malformed table name ${text}`, 'write names like public.issues or "Billing"."Invoices"');
      part = match[0].trim().toLowerCase();
      rest = rest.slice(match[0].length);
    }
    parts.push(part);
    if (rest.startsWith('.')) rest = rest.slice(1);
    else if (rest.length > 0)
      throw new UsageError(`malformed table name ${text}`, 'write names like public.issues or "Billing"."Invoices"');
  }
  if (parts.length === 1 && parts[0]) return { schema: 'public', name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], name: parts[1] };
  throw new UsageError(`malformed table name ${text}`, 'write names like public.issues or "Billing"."Invoices"');
}

/** Quotes an identifier only where its spelling needs it; keywords stay bare, so this is for display and flags, not SQL. */
export function quoteIdentifier(identifier: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(identifier) ? identifier : `"${identifier.replaceAll('"', '""')}"`;
}

/** The schema-qualified, quoted name used in every output and flag. */
export function formatTableName(table: TableName): string {
  return `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.name)}`;
}

/** An identifier, always quoted, for SQL statements (keywords such as "order" need the quotes). */
export function sqlIdentifier(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** The always-quoted, schema-qualified form of a table for SQL statements. */
export function sqlTableName(table: TableName): string {
  return `${sqlIdentifier(table.schema)}.${sqlIdentifier(table.name)}`;
}
