/** Bounded waiting and metric reading for the suites that watch real processes. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `condition` every `everyMs` until it holds or `timeoutMs` has passed; true if it held. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** The value of one sample in a Prometheus text exposition (0 when absent). */
export function sample(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}
