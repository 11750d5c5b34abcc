// COPY text for the staging tables rendered in Node, for rows too wide for DuckDB's
// JSON functions under the budget: DuckDB exports the rows as they are stored (their
// JSON) with a few COPY fields of its own, and TargetLines turns each exported line
// into the staging table's, byte for byte, without decoding the values into strings
// (json-fields.ts says why that is exact).

import { InternalError } from '../errors.js';
import { sourceColumn, type VaultReader } from '../timeline/index.js';
import { copyField, copyFieldSql, type StagedShape } from './copy-text.js';
import { copyBytes, copyFieldInto, find, sameBytes, scanArray, scanObject } from './json-fields.js';

/**
 * DuckDB SQL for the columns of an exported line TargetLines reads, which the CSV
 * writer joins with tabs (so no row's text is copied into a line first): the schema
 * version a row was written under, its tenant and an undo's later change (both COPY
 * fields already), its key's JSON, and its row's JSON, or nothing for a key that must
 * be absent.
 */
export function exportedLineSql(parts: {
  readonly schemaId: string;
  readonly tenant: string;
  readonly later: string;
  readonly key: string;
  readonly row: string;
}): string {
  return [`${parts.schemaId}::VARCHAR`, copyFieldSql(parts.tenant), parts.later, parts.key, `coalesce(${parts.row}, '')`].join(', ');
}

/** Where a staged column's value comes from in rows of one schema version: a member of the row, or a constant field. */
type FieldSource = { readonly member: string } | { readonly constant: Buffer };

/** How rows of one schema version become staged columns. */
interface RowPlan {
  readonly sources: readonly FieldSource[];
  /** The staged columns each member feeds, by the member's name as its JSON bytes read in latin1. */
  readonly slots: ReadonlyMap<string, readonly number[]>;
  /** The members in the order the first row held them, with their JSON bytes: later rows hold the same. */
  order: readonly { readonly name: Buffer; readonly slots: readonly number[] }[];
  /** Bytes the constants add to a line. */
  readonly constantBytes: number;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
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
  /** Where each member's key and value lie in the JSON being read (scanObject, scanArray). */
  private spans = new Int32Array(4 * 64);
  /** Where each staged column's value lies in the row being rendered: start, end (-1: null; -2: none). */
  private readonly fields: Int32Array;

  constructor(
    private readonly reader: Pick<VaultReader, 'manifest' | 'layoutAt'>,
    private readonly shape: StagedShape,
    private readonly layoutLsn: bigint,
  ) {
    this.fields = new Int32Array(2 * shape.columns.length);
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
    const tenantAt = find(text, TAB, start, eol) + 1;
    const laterAt = find(text, TAB, tenantAt, eol) + 1;
    const keyAt = find(text, TAB, laterAt, eol) + 1;
    const rowAt = find(text, TAB, keyAt, eol) + 1;
    const absent = rowAt === eol;
    const plan = absent ? undefined : this.planOf(digits(text, start, tenantAt - 1));
    // No field is longer than its JSON; each column adds at most a tab and \N.
    at = this.room(at, eol - start + this.shape.columns.length * 3 + (plan?.constantBytes ?? 0) + ABSENT.length + 1);
    at = plan === undefined ? this.keyFields(text, keyAt, rowAt - 1, at) : this.rowFields(plan, text, rowAt, eol, at);
    at = copyBytes(absent ? ABSENT : PRESENT, 0, PRESENT.length, this.out, at);
    at = copyBytes(text, tenantAt, laterAt - 1, this.out, at);
    this.out[at++] = TAB;
    at = copyBytes(text, laterAt, keyAt - 1, this.out, at);
    this.out[at++] = NEWLINE;
    return at;
  }

  /** The staged columns of a row, from its JSON in json[start, end). */
  private rowFields(plan: RowPlan, json: Buffer, start: number, end: number, at: number): number {
    const members = this.scan(() => scanObject(json, start, end, this.spans), 4);
    if (members < 0) {
      const parsed = JSON.parse(json.toString('utf8', start, end)) as Record<string, unknown>;
      return this.text(
        plan.sources.map((source) => ('member' in source ? fieldOf(parsed[source.member]) : source.constant.toString())),
        at,
      );
    }
    const { spans, fields } = this;
    fields.fill(-2);
    if (plan.order.length === 0) plan.order = learnOrder(plan, json, spans, members);
    for (let member = 0; member < members; member++) {
      const [keyStart, keyEnd] = [spans[4 * member] as number, spans[4 * member + 1] as number];
      const known = plan.order[member];
      const slots =
        known !== undefined && sameBytes(json, keyStart, keyEnd, known.name)
          ? known.slots
          : plan.slots.get(json.toString('latin1', keyStart, keyEnd));
      for (const slot of slots ?? []) {
        fields[2 * slot] = spans[4 * member + 2] as number;
        fields[2 * slot + 1] = spans[4 * member + 3] as number;
      }
    }
    const escapes = find(json, BACKSLASH, start, end) >= 0;
    for (let i = 0; i < plan.sources.length; i++) {
      if (i > 0) this.out[at++] = TAB;
      const source = plan.sources[i] as FieldSource;
      at =
        'member' in source
          ? this.field(json, fields[2 * i] as number, fields[2 * i + 1] as number, at, escapes)
          : copyBytes(source.constant, 0, source.constant.length, this.out, at);
    }
    return at;
  }

  /** The staged columns of a key that must be absent, from its JSON: the key columns set, the others \N. */
  private keyFields(json: Buffer, start: number, end: number, at: number): number {
    const elements = this.scan(() => scanArray(json, start, end, this.spans), 2);
    if (elements < 0) {
      const parsed = JSON.parse(json.toString('utf8', start, end)) as unknown[];
      return this.text(
        this.shape.columns.map((name) => fieldOf(parsed[this.shape.key.indexOf(name)])),
        at,
      );
    }
    this.shape.columns.forEach((name, i) => {
      if (i > 0) this.out[at++] = TAB;
      const element = this.shape.key.indexOf(name);
      at =
        element < 0 || element >= elements
          ? this.field(json, -1, -1, at, false)
          : this.field(json, this.spans[2 * element] as number, this.spans[2 * element + 1] as number, at, true);
    });
    return at;
  }

  /** Runs a scan, growing the spans while the JSON has more members than they hold (`size` slots each). */
  private scan(scanning: () => number, size: number): number {
    for (;;) {
      const found = scanning();
      if (found >= 0 || this.spans.length >= size * MAX_MEMBERS) return found;
      // -1 may mean the spans were too few: try again with more before parsing it properly.
      this.spans = new Int32Array(this.spans.length * 4);
    }
  }

  /** A value as a COPY field: \N for null or a member the row lacks. */
  private field(json: Buffer, start: number, end: number, at: number, escapes: boolean): number {
    return start < 0 ? copyBytes(NULL_FIELD, 0, NULL_FIELD.length, this.out, at) : copyFieldInto(json, start, end, this.out, at, escapes);
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
      plan = { sources, slots, order: [], constantBytes };
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

/** Most members a stored row's JSON is read with; a table has at most 1,600 columns. */
const MAX_MEMBERS = 4096;

/** The members of a plan's rows in the order a row holds them, each with its JSON bytes and the columns it feeds. */
function learnOrder(plan: RowPlan, json: Buffer, spans: Int32Array, members: number): RowPlan['order'] {
  return Array.from({ length: members }, (_, member) => {
    const name = Buffer.from(json.subarray(spans[4 * member], spans[4 * member + 1]));
    return { name, slots: plan.slots.get(name.toString('latin1')) ?? [] };
  });
}

/** A decimal number written in text[start, end). */
function digits(text: Buffer, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) value = value * 10 + ((text[i] as number) - 0x30);
  return value;
}

/** A parsed JSON value as a COPY field: strings as they are, other values as their JSON (as DuckDB's json_extract_string gave them). */
function fieldOf(value: unknown): string {
  return copyField(value === null || value === undefined ? null : typeof value === 'string' ? value : JSON.stringify(value));
}
