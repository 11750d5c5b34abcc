// recall.yml: read and validated whole, once per command, before any work. The
// schema below is the file's one definition: a key it does not name is an error,
// and every problem is reported at once with its key, its line and the fix.

import { existsSync, readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { ConfigError, UsageError, type ConfigProblem } from '../errors.js';
import type { Retention } from '../vault/retention.js';
import { formatTableName, parseTableName } from './table-name.js';
import { DEFAULT_TENANCY, type SettingOrigin, type TableTenancy, type TenancyConfig } from './tenancy.js';

// Each description is the fix shown when its key is wrong.
const tableTenancySchema = z
  .union([z.string().min(1), z.strictObject({ column: z.string().min(1).describe('write { column: NAME }') })])
  .describe('write global, a column name, or { column: NAME }');

const tenancySchema = z
  .strictObject({
    column: z.string().min(1).describe('name the default tenant column, e.g. column: tenant_id').optional(),
    root: z.string().min(1).describe('name the table whose primary key is the tenant id, e.g. root: public.tenants').optional(),
    tables: z
      .record(z.string(), tableTenancySchema)
      .describe('map each table to its tenancy, e.g. public.countries: global, public.events: account_id')
      .nullish(),
  })
  .describe('write tenancy as a mapping of column, root and tables');

const vaultSchema = z
  .strictObject({
    retention: z.string().min(1).describe('give a duration, e.g. retention: 35d').optional(),
  })
  .describe('write vault as a mapping, e.g. vault: { retention: 35d }');

/**
 * The whole file. A later section (alarms, guard, vault) is one more key here;
 * until then such a key is unknown, and so an error.
 */
const configSchema = z.strictObject({
  'memory-limit': z.union([z.string(), z.number()]).describe('give a size, e.g. memory-limit: 2GB').optional(),
  tenancy: tenancySchema.nullish(),
  vault: vaultSchema.nullish(),
});

/** recall.yml as Recall uses it. */
export interface RecallConfig {
  /** The file read; undefined when there was none. */
  readonly file: string | undefined;
  /** memory-limit as written, with where, for resolveMemoryLimit to parse. */
  readonly memoryLimit: { readonly value: string | number; readonly origin: string } | undefined;
  readonly tenancy: TenancyConfig;
  /** vault.retention: how long history is kept; undefined keeps all of it. */
  readonly retention: Retention | undefined;
}

/** The configuration in force when there is no recall.yml. */
const NO_CONFIG: RecallConfig = Object.freeze({ file: undefined, memoryLimit: undefined, tenancy: DEFAULT_TENANCY, retention: undefined });

/** Reads and validates the config at `path`; without the file, the defaults (an error if it was named explicitly). */
export function loadConfig(path = 'recall.yml', required = false): RecallConfig {
  if (!existsSync(path)) {
    if (required) throw new UsageError(`config file ${path} does not exist`, 'check the --config path (or RECALL_CONFIG)');
    return NO_CONFIG;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the config file ${path}: ${(error as Error).message}`, `check ${path} and its permissions`);
  }
  return parseConfig(text, path);
}

/** The tenancy rules of the config at `path` (the defaults without the file). */
export function loadTenancy(path = 'recall.yml', required = false): TenancyConfig {
  return loadConfig(path, required).tenancy;
}

/** Validates the text of a recall.yml; `file` names it in errors. Throws ConfigError listing every problem. */
export function parseConfig(text: string, file: string): RecallConfig {
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines });
  if (document.errors.length > 0) {
    throw new ConfigError(
      file,
      document.errors.map((error) => ({
        problem: `${file} line ${error.linePos?.[0].line ?? 1}: not valid YAML (${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')})`,
        fix: `fix the YAML syntax of ${file} (indent with spaces; quote names that hold ":" or "#")`,
      })),
    );
  }
  const lineOf = (path: readonly PropertyKey[]): number => keyLine(document, lines, path);
  const value: unknown = document.toJS() ?? {};
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    const found = parsed.error.issues.flatMap((issue) => describeIssue(issue, [], value, file, lineOf));
    throw new ConfigError(
      file,
      found.sort((a, b) => a.line - b.line).map(({ problem, fix }) => ({ problem, fix })),
    );
  }

  const problems: ConfigProblem[] = [];
  const { tenancy: section, 'memory-limit': memoryLimit, vault } = parsed.data;
  const origin = (path: string[]): SettingOrigin => ({ key: path.join('.'), line: lineOf(path) });
  const tables: Record<string, TableTenancy> = {};
  const tableOrigins: Record<string, SettingOrigin> = {};
  for (const [name, declared] of Object.entries(section?.tables ?? {})) {
    const at = origin(['tenancy', 'tables', name]);
    const key = tableKey(name, file, at, problems);
    if (key === undefined) continue;
    const earlier = tableOrigins[key];
    if (earlier !== undefined) {
      problems.push({
        problem: `${file} line ${at.line}: ${at.key} names ${key} again (line ${earlier.line} does already)`,
        fix: `keep one of the two lines`,
      });
      continue;
    }
    tables[key] = declared === 'global' ? 'global' : { column: typeof declared === 'string' ? declared : declared.column };
    tableOrigins[key] = at;
  }
  const rootOrigin = section?.root === undefined ? undefined : origin(['tenancy', 'root']);
  const root = section?.root === undefined ? DEFAULT_TENANCY.root : tableKey(section.root, file, rootOrigin, problems);
  const retention =
    vault?.retention === undefined ? undefined : retentionOf(vault.retention, file, lineOf(['vault', 'retention']), problems);
  if (problems.length > 0) throw new ConfigError(file, problems);

  const tenancy: TenancyConfig = Object.freeze({
    column: section?.column ?? DEFAULT_TENANCY.column,
    root: root ?? DEFAULT_TENANCY.root,
    tables: Object.freeze(tables),
    origin: Object.freeze({
      file,
      ...(section?.column === undefined ? {} : { column: origin(['tenancy', 'column']) }),
      ...(rootOrigin === undefined ? {} : { root: rootOrigin }),
      tables: Object.freeze(tableOrigins),
    }),
  });
  return Object.freeze({
    file,
    memoryLimit:
      memoryLimit === undefined ? undefined : { value: memoryLimit, origin: `${file} line ${lineOf(['memory-limit'])}: memory-limit` },
    tenancy,
    retention,
  });
}

/** vault.retention as a duration; undefined, with a problem, if malformed. */
function retentionOf(text: string, file: string, line: number, problems: ConfigProblem[]): Retention | undefined {
  try {
    const ms = parseDuration(text, `${file} line ${line}: vault.retention`);
    if (ms > 0) return { ms, text: text.trim() };
    problems.push({
      problem: `${file} line ${line}: vault.retention is zero`,
      fix: 'give a span to keep, e.g. retention: 35d, or remove the key to keep everything',
    });
    return undefined;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    problems.push({ problem: error.message, fix: error.hint ?? '' });
    return undefined;
  }
}

/** A table name as recall.yml wrote it, formatted (issues → public.issues); undefined, with a problem, if malformed. */
function tableKey(name: string, file: string, at: SettingOrigin | undefined, problems: ConfigProblem[]): string | undefined {
  try {
    return formatTableName(parseTableName(name));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    problems.push({ problem: `${file} line ${at?.line ?? 1}: ${at?.key ?? name}: ${error.message}`, fix: error.hint ?? '' });
    return undefined;
  }
}

/** The problems one zod issue stands for, each naming its key and line. `base`: the path of the schema the issue is relative to. */
function describeIssue(
  issue: z.core.$ZodIssue,
  base: readonly PropertyKey[],
  input: unknown,
  file: string,
  lineOf: (path: readonly PropertyKey[]) => number,
): (ConfigProblem & { readonly line: number })[] {
  const path = [...base, ...issue.path];
  const key = path.map(String).join('.');
  const line = lineOf(path);
  const at = `${file} line ${line}`;
  const fix = fixAt(path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((unknown) => {
        const known = knownKeys(path);
        const near = closest(unknown, known);
        const full = [...path.map(String), unknown].join('.');
        const keyAt = lineOf([...path, unknown]);
        return {
          line: keyAt,
          problem: `${file} line ${keyAt}: unknown key ${full}${near === undefined ? '' : ` (did you mean ${near}?)`}`,
          fix:
            near === undefined
              ? `remove it; the keys here are ${known.join(', ')}`
              : `write ${[...path.map(String), near].join('.')}; the keys here are ${known.join(', ')}`,
        };
      });
    case 'invalid_union': {
      // The branch meant for this kind of value (the mapping form for a mapping) says what is wrong inside it.
      const meant = issue.errors.find((branch) => !branch.every((inner) => inner.path.length === 0 && inner.code === 'invalid_type'));
      if (meant !== undefined) {
        const unknownKeys = meant.some((inner) => inner.code === 'unrecognized_keys');
        // A required key reported missing beside an unknown one is the same typo said twice.
        const relevant = unknownKeys
          ? meant.filter((inner) => !(inner.code === 'invalid_type' && valueAt(input, [...path, ...inner.path]) === undefined))
          : meant;
        return relevant.flatMap((inner) => describeIssue(inner, path, input, file, lineOf));
      }
      return [{ line, problem: `${at}: ${key} cannot be ${kindOf(valueAt(input, path))}`, fix }];
    }
    case 'invalid_type': {
      const value = valueAt(input, path);
      if (path.length === 0)
        return [
          {
            line,
            problem: `${file} must be a mapping of settings, not ${kindOf(value)}`,
            fix: `start ${file} with a key such as tenancy:`,
          },
        ];
      return [{ line, problem: `${at}: ${key} ${value === undefined ? 'is missing' : `cannot be ${kindOf(value)}`}`, fix }];
    }
    case 'too_small':
      return [{ line, problem: `${at}: ${key} is empty`, fix }];
    default:
      return [{ line, problem: `${at}: ${key}: ${issue.message}`, fix }];
  }
}

/** The schema for a path of the file: through optional wrappers, mappings, records and the mapping branch of a union. */
function schemaAt(path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = configSchema;
  for (const key of path) {
    const inner: z.ZodType | undefined = current === undefined ? undefined : unwrap(current);
    if (inner instanceof z.ZodObject) current = (inner.shape as Record<string, z.ZodType>)[String(key)];
    else if (inner instanceof z.ZodRecord) current = inner.valueType as z.ZodType;
    else if (inner instanceof z.ZodUnion)
      current = (inner.options as z.ZodType[]).map(unwrap).find((option) => option instanceof z.ZodObject)?.shape[String(key)];
    else return undefined;
  }
  return current;
}

/** A schema without its optional and nullable wrappers. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (current instanceof z.ZodOptional || current instanceof z.ZodNullable) current = current.unwrap() as z.ZodType;
  return current;
}

/** The fix for a key: its schema's description, found on the wrapper or inside it. */
function fixAt(path: readonly PropertyKey[]): string {
  let schema = schemaAt(path);
  while (schema !== undefined) {
    if (schema.description !== undefined) return schema.description;
    schema = schema instanceof z.ZodOptional || schema instanceof z.ZodNullable ? (schema.unwrap() as z.ZodType) : undefined;
  }
  return 'see README.md, "Tenancy and recall.yml"';
}

/** The keys a mapping at `path` may hold. */
function knownKeys(path: readonly PropertyKey[]): string[] {
  const schema = schemaAt(path);
  const inner = schema === undefined ? undefined : unwrap(schema);
  if (inner instanceof z.ZodObject) return Object.keys(inner.shape);
  if (inner instanceof z.ZodUnion) {
    const mapping = (inner.options as z.ZodType[]).map(unwrap).find((option) => option instanceof z.ZodObject);
    return mapping instanceof z.ZodObject ? Object.keys(mapping.shape) : [];
  }
  return [];
}

/** The word a typo most likely meant: at most two edits away (colum → column, tenency → tenancy, globl → global). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const key of candidates) {
    const distance = editDistance(word.toLowerCase(), key);
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { key, distance };
  }
  return best?.key;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The value at a path of the parsed file. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const key of path)
    current = typeof current === 'object' && current !== null ? (current as Record<PropertyKey, unknown>)[key] : undefined;
  return current;
}

/** A value's kind in the user's words. */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value === 'string' ? 'the text' : `the ${typeof value}`} ${JSON.stringify(value)}`;
}

/** The line of the key at `path` (of its nearest written ancestor if absent; line 1 for the file itself). */
function keyLine(document: Document, lines: LineCounter, path: readonly PropertyKey[]): number {
  let node: unknown = document.contents;
  let line = 1;
  for (const key of path) {
    if (!isMap(node)) break;
    const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
    if (pair === undefined) break;
    const offset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    if (offset !== undefined) line = lines.linePos(offset).line;
    node = pair.value;
  }
  return line;
}
