// Every version capture knows while it completes changes: the vault's layers, the
// parts spilled since the last commit, and the staging table. Lookups of exact
// versions read only the files whose commit-LSN span holds one of them, so their
// cost follows what they fetch, not the vault's age.

import { LAYER_COLUMN_NAMES, fileList } from '../vault/index.js';

/** A layer or part file and the commit LSNs its rows span. */
export interface HistoryFile {
  readonly local: string;
  readonly minLsn: bigint;
  readonly maxLsn: bigint;
}

export class History {
  constructor(
    private readonly files: readonly HistoryFile[],
    /** The staging table, with its TOAST markers (the `unchanged` column). */
    readonly staging: string,
  ) {}

  /** Every version known, as a SQL source. */
  get sql(): string {
    return this.over(this.files);
  }

  /** The staged versions only, as a SQL source: newer than every version in a file. */
  get staged(): string {
    return `(SELECT ${LAYER_COLUMN_NAMES}, unchanged FROM ${this.staging})`;
  }

  /** The versions in files only (layers and spilled parts), as a SQL source; undefined if there are none. */
  get filed(): string | undefined {
    if (this.files.length === 0) return undefined;
    return `(SELECT ${LAYER_COLUMN_NAMES}, NULL::VARCHAR AS unchanged FROM read_parquet(${fileList(this.files.map((file) => file.local))}))`;
  }

  /** The versions committed at any of `lsns`, and others of the same files, as a SQL source: the staging table and the files whose span holds one of them. */
  holding(lsns: readonly bigint[]): string {
    const sorted = [...lsns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.over(this.files.filter((file) => spans(sorted, file)));
  }

  private over(files: readonly HistoryFile[]): string {
    if (files.length === 0) return this.staged;
    return `(SELECT ${LAYER_COLUMN_NAMES}, NULL::VARCHAR AS unchanged FROM read_parquet(${fileList(files.map((file) => file.local))}) UNION ALL SELECT * FROM ${this.staged})`;
  }
}

/** Whether some LSN of the sorted `lsns` lies within the file's span (a binary search). */
function spans(lsns: readonly bigint[], file: HistoryFile): boolean {
  let low = 0;
  let high = lsns.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (lsns[middle]! < file.minLsn) low = middle + 1;
    else high = middle;
  }
  return low < lsns.length && lsns[low]! <= file.maxLsn;
}
