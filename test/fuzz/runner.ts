/**
 * Time-budgeted property runs for the fuzz targets. fast-check drives generation and shrinking;
 * this file only turns "numRuns" into "seconds": it runs the property in chunks of fast-check
 * runs, each with its own seed derived from one printed base seed, until the budget is used.
 *
 * Chunks, rather than fast-check's own interruptAfterTimeLimit, so that a failure found near the
 * end of the budget is still shrunk completely (the time limit would cut shrinking short). The
 * failing chunk's seed is in fast-check's message; FUZZ_SEED=<that seed> replays it as chunk 0.
 *
 *   FUZZ_SECONDS  budget per target (default 15: the four targets take about a minute in the suite)
 *   FUZZ_SEED     base seed; a number replays, 'random' picks a fresh one (npm run fuzz does);
 *                 unset, each target uses its fixed default so suite runs are reproducible
 */
import fc from 'fast-check';
import { performance } from 'node:perf_hooks';

export function fuzzSeconds(): number {
  const v = Number(process.env.FUZZ_SECONDS);
  return Number.isFinite(v) && v > 0 ? v : 15;
}

export function fuzzSeed(fixedDefault: number): number {
  const env = process.env.FUZZ_SEED;
  if (env === undefined || env === '') return fixedDefault;
  if (env === 'random') return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
  const v = Number(env);
  if (!Number.isInteger(v)) throw new Error(`FUZZ_SEED must be an integer or 'random', not '${env}'`);
  return v | 0;
}

/** Mocha timeout for a target: its budget, the slowest shrink we expect, and set-up. */
export function mochaTimeoutMs(): number {
  return fuzzSeconds() * 1000 + 300_000;
}

export interface FuzzReport {
  executions: number;
  seconds: number;
  perSecond: number;
}

export interface FuzzOptions {
  /** Printed name of the target. */
  name: string;
  /** Fixed default base seed of this target (used when FUZZ_SEED is unset). */
  seed: number;
  /** fast-check runs per chunk. */
  chunk?: number;
  /** One execution taking longer than this is a failure (a hang or super-linear behaviour). */
  maxExecutionMs?: number;
  /** Called at the end to print target-specific counters. */
  stats?: () => string;
}

/** Runs `predicate` on values of `arb` until FUZZ_SECONDS have passed; throws fast-check's report. */
export async function fuzz<T>(
  arb: fc.Arbitrary<T>,
  predicate: (v: T) => Promise<void> | void,
  o: FuzzOptions,
): Promise<FuzzReport> {
  const base = fuzzSeed(o.seed);
  const budgetMs = fuzzSeconds() * 1000;
  const maxMs = o.maxExecutionMs ?? 5000;
  console.log(
    `      fuzz ${o.name}: base seed ${base} (replay with FUZZ_SEED=${base}), ${budgetMs / 1000} s`,
  );
  let executions = 0;
  const started = performance.now();
  const property = fc.asyncProperty(arb, async (v) => {
    executions++;
    const t0 = performance.now();
    await predicate(v);
    const took = performance.now() - t0;
    if (took > maxMs) throw new Error(`one execution took ${Math.round(took)} ms (bound ${maxMs} ms)`);
  });
  for (let i = 0; performance.now() - started < budgetMs; i++) {
    // Chunk 0 uses the base seed itself, so a chunk seed from a failure message replays directly.
    const seed = (base + Math.imul(i, 0x9e3779b1)) | 0;
    await fc.assert(property, { seed, numRuns: o.chunk ?? 100 });
  }
  const seconds = (performance.now() - started) / 1000;
  const perSecond = executions / seconds;
  console.log(
    `      fuzz ${o.name}: ${executions} executions in ${seconds.toFixed(1)} s = ${perSecond.toFixed(0)}/s` +
      (o.stats ? `; ${o.stats()}` : ''),
  );
  return { executions, seconds, perSecond };
}

/** A readable rendering of bytes for counterexamples: printable ASCII as is, the rest as \xNN. */
export function showBytes(b: Uint8Array): string {
  let s = '';
  for (const c of b) {
    if (c === 0x5c) s += '\\\\';
    else if (c === 0x22) s += '\\"';
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x0d) s += '\\r';
    else if (c === 0x09) s += '\\t';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return `"${s}"`;
}
