// The versions capture completes changes from: the newest version of every key in the
// vault (each bucket's newest image and the changes since), the parts spilled since the
// last commit, and the staging table. Finding a key's newest version costs the live
// state, not the vault's age; fetching exact versions reads only the files whose
// commit-LSN span holds one of them.

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
    /** SQL over a file's row: not shadowed by its bucket's image (older versions in files that straddle one). */
    private readonly aboveFloor: string,
  ) {}

  /** Every version that may be a key's newest, as a SQL source. */
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
    return `(${this.read(this.files)})`;
  }

  /** The versions committed at any of `lsns`, and others of the same files, as a SQL source: the staging table and the files whose span holds one of them. */
  holding(lsns: readonly bigint[]): string {
    const sorted = [...lsns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.over(this.files.filter((file) => spans(sorted, file)));
  }

  private over(files: readonly HistoryFile[]): string {
    if (files.length === 0) return this.staged;
    return `(${this.read(files)} UNION ALL SELECT * FROM ${this.staged})`;
  }

  private read(files: readonly HistoryFile[]): string {
    return `SELECT ${LAYER_COLUMN_NAMES}, NULL::VARCHAR AS unchanged FROM read_parquet(${fileList(files.map((file) => file.local))}) WHERE ${this.aboveFloor}`;
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
