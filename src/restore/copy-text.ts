// COPY text for the staging tables: a stored row's values, laid out as the plan
// writes its table and escaped as COPY's text format. DuckDB exports the rows as
// they are stored (their JSON) with a few COPY fields of its own; TargetLines turns
// each exported line into the staging table's, byte for byte, without decoding the
// values into strings (json-fields.ts says why that is exact).

import { sourceColumn, type VaultReader } from '../timeline/index.js';
import { InternalError } from '../errors.js';
import { copyFieldInto, scanArray, scanObject, type ValueSpan } from './json-fields.js';

/** What a staging table takes: the columns given values, in order, and the key. */
export interface StagedShape {
  readonly name: string;
  readonly columns: readonly string[];
  readonly key: readonly string[];
}

/** One field of COPY's text format: \N for NULL, backslash escapes for the rest. */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

/** copyField in DuckDB SQL, for a VARCHAR expression. */
export function copyFieldSql(value: string): string {
  // Few values hold a character to escape, and one scan for them costs less than four replaces.
  const escaped = `replace(replace(replace(replace(${value}, '\\', '\\\\'), chr(10), '\\n'), chr(13), '\\r'), chr(9), '\\t')`;
  return `coalesce(CASE WHEN regexp_matches(${value}, '[\\\\\\n\\r\\t]') THEN ${escaped} ELSE ${value} END, '\\N')`;
}

/**
 * DuckDB SQL for an exported line TargetLines reads: the schema version a row was
 * written under, its tenant and an undo's later change (both COPY fields already),
 * its key's JSON, and its row's JSON, or nothing for a key that must be absent.
 */
export function exportedLineSql(parts: {
  readonly schemaId: string;
  readonly tenant: string;
  readonly later: string;
  readonly key: string;
  readonly row: string;
}): string {
  return [`${parts.schemaId}::VARCHAR`, copyFieldSql(parts.tenant), parts.later, parts.key, `coalesce(${parts.row}, '')`].join(
    ' || chr(9) || ',
  );
}

/** Where a staged column's value comes from in rows of one schema version: a member of the row, or a constant field. */
type FieldSource = { readonly member: string } | { readonly constant: Buffer };

/** How rows of one schema version become staged columns. */
interface RowPlan {
  readonly sources: readonly FieldSource[];
  /** The staged columns each member feeds, by the member's name as its JSON bytes read in latin1. */
  readonly slots: ReadonlyMap<string, readonly number[]>;
  /** Bytes the constants add to a line. */
  readonly constantBytes: number;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const NULL_FIELD = Buffer.from('\\N');
const PRESENT = Buffer.from('\tt\t');
const ABSENT = Buffer.from('\tf\t');

/**
 * Turns exported lines (exportedLineSql) of one table into its staging table's COPY
 * lines: the staged columns (from the row, laid out in the table's layout at
 * `layoutLsn`; or, for an absent key, the key columns alone), then "recall.present",
 * "recall.group" and "recall.later". Pieces may be cut anywhere: a line cut off is
 * kept for the next.
 */
export class TargetLines {
  private readonly plans = new Map<number, RowPlan>();
  private rest: Buffer = Buffer.alloc(0);
  private out: Buffer = Buffer.allocUnsafe(1 << 16);
  /** Where each staged column's value lies in the line being rendered. */
  private readonly spans: (ValueSpan | undefined)[];

  constructor(
    private readonly reader: Pick<VaultReader, 'manifest' | 'layoutAt'>,
    private readonly shape: StagedShape,
    private readonly layoutLsn: bigint,
  ) {
    this.spans = new Array<ValueSpan | undefined>(shape.columns.length);
  }

  /** The COPY text of the lines `piece` completes, and how many. */
  push(piece: Buffer): { text: Buffer; rows: number } {
    const text = this.rest.length === 0 ? piece : Buffer.concat([this.rest, piece]);
    const last = text.lastIndexOf(NEWLINE);
    this.rest = Buffer.from(text.subarray(last + 1));
    let at = 0;
    let rows = 0;
    for (let line = 0; line <= last; rows++) {
      const eol = text.indexOf(NEWLINE, line);
      at = this.line(text, line, eol, at);
      line = eol + 1;
    }
    return { text: Buffer.from(this.out.subarray(0, at)), rows };
  }

  /** Refuses an export that ended inside a line (DuckDB ends every line it writes). */
  end(): void {
    if (this.rest.length > 0) throw new InternalError(`an exported line of ${this.shape.name} was cut off`);
  }

  /** Renders the line text[start, eol) into the output at `at`; returns where the output ends. */
  private line(text: Buffer, start: number, eol: number, at: number): number {
    const tenantAt = text.indexOf(TAB, start) + 1;
    const laterAt = text.indexOf(TAB, tenantAt) + 1;
    const keyAt = text.indexOf(TAB, laterAt) + 1;
    const rowAt = text.indexOf(TAB, keyAt) + 1;
    const absent = rowAt === eol;
    const plan = absent ? undefined : this.planOf(Number(text.toString('latin1', start, tenantAt - 1)));
    // No field is longer than its JSON; each column adds at most a tab and \N.
    at = this.room(at, eol - start + this.shape.columns.length * 3 + (plan?.constantBytes ?? 0) + ABSENT.length + 1);
    at = plan === undefined ? this.keyFields(text, keyAt, rowAt - 1, at) : this.rowFields(plan, text, rowAt, eol, at);
    at += (absent ? ABSENT : PRESENT).copy(this.out, at);
    at += text.copy(this.out, at, tenantAt, laterAt - 1);
    this.out[at++] = TAB;
    at += text.copy(this.out, at, laterAt, keyAt - 1);
    this.out[at++] = NEWLINE;
    return at;
  }

  /** The staged columns of a row, from its JSON in json[start, end). */
  private rowFields(plan: RowPlan, json: Buffer, start: number, end: number, at: number): number {
    const spans = this.spans.fill(undefined);
    const compact = scanObject(json, start, end, (keyStart, keyEnd, value) => {
      for (const slot of plan.slots.get(json.toString('latin1', keyStart, keyEnd)) ?? []) spans[slot] = value;
    });
    if (!compact) {
      const parsed = JSON.parse(json.toString('utf8', start, end)) as Record<string, unknown>;
      return this.text(
        plan.sources.map((source) => ('member' in source ? fieldOf(parsed[source.member]) : source.constant.toString())),
        at,
      );
    }
    plan.sources.forEach((source, i) => {
      if (i > 0) this.out[at++] = TAB;
      at = 'member' in source ? this.field(json, spans[i], at) : at + source.constant.copy(this.out, at);
    });
    return at;
  }

  /** The staged columns of a key that must be absent, from its JSON: the key columns set, the others \N. */
  private keyFields(json: Buffer, start: number, end: number, at: number): number {
    const values: ValueSpan[] = [];
    if (!scanArray(json, start, end, (index, value) => (values[index] = value))) {
      const parsed = JSON.parse(json.toString('utf8', start, end)) as unknown[];
      return this.text(
        this.shape.columns.map((name) => fieldOf(parsed[this.shape.key.indexOf(name)])),
        at,
      );
    }
    this.shape.columns.forEach((name, i) => {
      if (i > 0) this.out[at++] = TAB;
      at = this.field(json, values[this.shape.key.indexOf(name)], at);
    });
    return at;
  }

  private field(json: Buffer, span: ValueSpan | undefined, at: number): number {
    return span === null || span === undefined ? at + NULL_FIELD.copy(this.out, at) : copyFieldInto(json, span[0], span[1], this.out, at);
  }

  /** Fields rendered from parsed values (JSON in another form than capture's), joined by tabs. */
  private text(fields: readonly string[], at: number): number {
    const bytes = Buffer.from(fields.join('\t'));
    at = this.room(at, bytes.length);
    return at + bytes.copy(this.out, at);
  }

  /** How rows of a schema version become the staged columns; a column the row predates takes the layout's default. */
  private planOf(schemaId: number): RowPlan {
    let plan = this.plans.get(schemaId);
    if (plan === undefined) {
      const written = this.reader.manifest.schemas[schemaId];
      const layout = this.reader.layoutAt(this.shape.name, this.layoutLsn);
      const sources = this.shape.columns.map((name): FieldSource => {
        const column = layout?.columns.find((c) => c.name === name);
        const source =
          written === undefined
            ? undefined
            : column === undefined
              ? written.columns.find((c) => c.name === name)
              : sourceColumn(written, column);
        return source !== undefined ? { member: source.name } : { constant: Buffer.from(copyField(column?.missing ?? null)) };
      });
      const slots = new Map<string, number[]>();
      sources.forEach((source, i) => {
        if (!('member' in source)) return;
        const name = Buffer.from(JSON.stringify(source.member).slice(1, -1)).toString('latin1');
        slots.set(name, [...(slots.get(name) ?? []), i]);
      });
      const constantBytes = sources.reduce((sum, source) => sum + ('constant' in source ? source.constant.length : 0), 0);
      plan = { sources, slots, constantBytes };
      this.plans.set(schemaId, plan);
    }
    return plan;
  }

  /** Makes room for `bytes` more after `at` in the output buffer; returns `at`. */
  private room(at: number, bytes: number): number {
    if (at + bytes > this.out.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.out.length * 2, at + bytes));
      this.out.copy(grown, 0, 0, at);
      this.out = grown;
    }
    return at;
  }
}

/** A parsed JSON value as a COPY field: strings as they are, other values as their JSON (as DuckDB's json_extract_string gave them). */
function fieldOf(value: unknown): string {
  return copyField(value === null || value === undefined ? null : typeof value === 'string' ? value : JSON.stringify(value));
}
