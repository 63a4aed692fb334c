/**
 * Reading a standalone grid's stats from another process: on SIGUSR2, main.ts prints one line,
 * "grid stats {json}" (a GridStats object), on stdout. Tests that spawn the grid call
 * requestGridStats; in-process grids have Grid.stats().
 */
import type { ChildProcess } from 'node:child_process';
import type { GridStats } from './server';

export const STATS_SIGNAL = 'SIGUSR2';
const PREFIX = 'grid stats ';

export function formatStatsLine(stats: GridStats): string {
  return `${PREFIX}${JSON.stringify(stats)}\n`;
}

/** Signals a grid started from main.js with a stdout pipe and resolves with the stats it prints. */
export function requestGridStats(child: ChildProcess, timeoutMs = 5000): Promise<GridStats> {
  const stdout = child.stdout;
  if (!stdout) return Promise.reject(new Error('the grid process has no stdout pipe'));
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer | string): void => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith(PREFIX)) {
          done();
          resolve(JSON.parse(line.slice(PREFIX.length)) as GridStats);
          return;
        }
      }
    };
    const onExit = (): void => {
      done();
      reject(new Error('the grid exited before printing its stats'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`the grid printed no stats within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      stdout.off('data', onData);
      child.off('exit', onExit);
    };
    // Listen first: the line may arrive before kill() returns.
    stdout.on('data', onData);
    child.once('exit', onExit);
    if (!child.kill(STATS_SIGNAL)) onExit();
  });
}
