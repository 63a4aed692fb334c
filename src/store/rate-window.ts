/**
 * The in-process rate decision, with the same semantics as the Redis script
 * (src/store/redis-scripts.ts): fixed windows aligned to the epoch, exact sliding logs for
 * moving windows, and an all-or-nothing decision over the limits of one request.
 */
import type { RateDecision, RateLimit } from './store';

interface FixedCounter {
  intervalMs: number;
  window: number;
  count: number;
}

/** Admission times in ascending order; entries before `head` have left the window. */
interface MovingLog {
  intervalMs: number;
  times: number[];
  head: number;
}

/** How often idle counters are looked for; an idle proxy does no work at all. */
const SWEEP_EVERY_MS = 1000;

export class RateWindows {
  private readonly fixed = new Map<string, FixedCounter>();
  private readonly moving = new Map<string, MovingLog>();
  private nextSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** How many counters are held: for tests of the idle cleanup. */
  get size(): number {
    return this.fixed.size + this.moving.size;
  }

  admit(limits: RateLimit[]): RateDecision {
    const now = this.now();
    if (now >= this.nextSweep) this.sweep(now);

    const over: boolean[] = [];
    let retryAfterMs = 0;
    for (const l of limits) {
      if (!(l.intervalMs > 0)) throw new RangeError(`rate limit ${l.key}: intervalMs must be positive`);
      let count: number;
      let retry: number;
      if (l.intervalType === 'fixed') {
        const window = Math.floor(now / l.intervalMs);
        const c = this.fixed.get(l.key);
        count = c && c.window === window && c.intervalMs === l.intervalMs ? c.count : 0;
        retry = (window + 1) * l.intervalMs - now;
      } else {
        const log = this.pruned(l.key, now - l.intervalMs);
        count = log ? log.times.length - log.head : 0;
        retry = l.intervalMs;
        if (log && count > 0) {
          // The entry whose departure brings the count down to threshold - 1.
          const k = Math.min(count - 1, Math.max(0, count - l.threshold));
          retry = log.times[log.head + k]! + l.intervalMs - now;
        }
      }
      const isOver = count >= l.threshold;
      over.push(isOver);
      if (isOver && l.enforce) retryAfterMs = Math.max(retryAfterMs, Math.max(1, Math.ceil(retry)));
    }
    if (retryAfterMs > 0) return { admitted: false, over, retryAfterMs };

    for (const l of limits) {
      if (l.intervalType === 'fixed') {
        const window = Math.floor(now / l.intervalMs);
        const c = this.fixed.get(l.key);
        if (c && c.window === window && c.intervalMs === l.intervalMs) c.count++;
        else this.fixed.set(l.key, { intervalMs: l.intervalMs, window, count: 1 });
      } else {
        let log = this.moving.get(l.key);
        if (!log) this.moving.set(l.key, (log = { intervalMs: l.intervalMs, times: [], head: 0 }));
        log.intervalMs = l.intervalMs;
        insertSorted(log, now);
      }
    }
    return { admitted: true, over, retryAfterMs: 0 };
  }

  /** Drops the entries at or before `cutoff` (they have left the window) and returns the log. */
  private pruned(key: string, cutoff: number): MovingLog | undefined {
    const log = this.moving.get(key);
    if (!log) return undefined;
    const t = log.times;
    while (log.head < t.length && t[log.head]! <= cutoff) log.head++;
    // Compact once the dead prefix dominates, so that pruning stays amortised O(1).
    if (log.head > 32 && log.head * 2 > t.length) {
      t.splice(0, log.head);
      log.head = 0;
    }
    return log;
  }

  private sweep(now: number): void {
    for (const [key, c] of this.fixed) {
      if ((c.window + 1) * c.intervalMs <= now) this.fixed.delete(key);
    }
    for (const [key, log] of this.moving) {
      // The newest entry is the last to leave, like the Redis key's expiry after inactivity.
      const last = log.times[log.times.length - 1];
      if (last === undefined || last + log.intervalMs <= now) this.moving.delete(key);
    }
    this.nextSweep = now + SWEEP_EVERY_MS;
  }
}

/** Appends `t`, keeping the order should the clock step back. */
function insertSorted(log: MovingLog, t: number): void {
  const times = log.times;
  let i = times.length;
  while (i > log.head && times[i - 1]! > t) i--;
  if (i === times.length) times.push(t);
  else times.splice(i, 0, t);
}
