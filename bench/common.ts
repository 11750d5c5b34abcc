// Pieces every benchmark shares: timing, medians, the peak RSS of a child process,
// and pg_recvlogical set up exactly as Recall streams a slot.

import { readFileSync } from 'node:fs';

/** The median of a set of measurements. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Runs `work`; its value and the seconds it took. */
export async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const value = await work();
  return [value, Number(process.hrtime.bigint() - start) / 1e9];
}

/** Samples a process's peak RSS (VmHWM, which the kernel keeps) until `stop` is called; returns bytes. */
export function peakRss(pid: number | undefined): { stop(): number } {
  let peak = 0;
  const sample = (): void => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) * 1024);
    } catch {
      // the process has ended
    }
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** pg_recvlogical streaming `slot` exactly as Recall does (pgoutput, proto 1, messages on) into /dev/null. */
export function receiverArgs(url: string, slot: string, extra: readonly string[] = []): string[] {
  return [
    '-d',
    url,
    '-S',
    slot,
    '--start',
    '-o',
    'proto_version=1',
    '-o',
    'publication_names=recall',
    '-o',
    'messages=true',
    '-f',
    '/dev/null',
    ...extra,
  ];
}

/** One figure of a benchmark: Recall's, its anchor's from the same run, their ratio, the target. */
export interface BenchResult {
  readonly name: string;
  readonly value: string;
  readonly anchor: string;
  readonly ratio: string;
  readonly target: string;
}

/** Prints the figures as the Markdown table BENCHMARKS.md takes. */
export function printResults(results: readonly BenchResult[]): void {
  console.log('| benchmark | Recall | anchor (same run) | ratio | target |');
  console.log('|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.name} | ${r.value} | ${r.anchor} | ${r.ratio} | ${r.target} |`);
}

/** Runs a benchmark: prints the figures its main returns as the table, or its failure (exit code 1). */
export async function runBench(main: () => Promise<readonly BenchResult[] | void>): Promise<void> {
  try {
    const results = await main();
    if (results !== undefined) printResults(results);
  } catch (error) {
    console.error((error as Error).stack ?? error);
    process.exitCode = 1;
  }
}
