/**
 * Output leases for one process, with the same semantics as the Redis scripts
 * (redis-scripts.ts): outputs stay until acknowledged, and a lease that lapses hands its
 * outputs to the next fetch.
 */
import type { FetchLease, FetchStart, StoredOutput } from './store';

interface Lease {
  /** Epoch ms after which the outputs belong to the next fetch; 0 for already lapsed. */
  deadline: number;
  ids: string[];
  /** A repeat has answered this lease: later outputs go to a lapsed lease instead. */
  sealed: boolean;
}

interface SessionOutputs {
  leases: Map<string, Lease>;
  outputs: Map<string, string>;
}

/** Suffix of the lapsed lease that receives outputs arriving after a repeat sealed theirs. */
export const LATE_SUFFIX = '.late';
/** Suffix of the lapsed lease that takes back what a trimmed lease no longer holds. */
export const SPILL_SUFFIX = '.spill';

export class MemoryLeases {
  private readonly sessions = new Map<string, SessionOutputs>();
  private readonly repeats = new Map<string, { token: string; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  beginFetch(f: FetchLease): FetchStart {
    const now = this.now();
    const s = this.session(f.sessionId);
    if (f.acknowledge) this.release(s, f.acknowledge);
    if (f.repeatKey !== undefined) {
      const prev = this.repeats.get(f.repeatKey);
      if (prev && prev.until > now) {
        const lease = s.leases.get(prev.token);
        if (!lease) return { repeat: true, token: prev.token, outputs: [] };
        lease.sealed = true;
        return { repeat: true, token: prev.token, outputs: this.values(s, lease.ids) };
      }
      this.repeats.set(f.repeatKey, { token: f.token, until: now + f.repeatTtlMs });
      if (this.repeats.size > 4096) this.sweepRepeats(now);
    }
    const taken: string[] = [];
    // What a trimmed page handed back goes first: it was next in line.
    const ordered = [...s.leases].sort(
      ([a], [b]) => Number(b.endsWith(SPILL_SUFFIX)) - Number(a.endsWith(SPILL_SUFFIX)),
    );
    for (const [token, lease] of ordered) {
      if (taken.length >= f.countMax) break;
      if (!(lease.deadline <= now || (f.reclaimAll && f.leaseMs > 0))) continue;
      const room = f.countMax - taken.length;
      taken.push(...lease.ids.slice(0, room));
      if (lease.ids.length > room) {
        lease.ids = lease.ids.slice(room);
        lease.deadline = 0;
      } else s.leases.delete(token);
    }
    const outputs = this.values(s, taken);
    if (f.leaseMs > 0) {
      s.leases.set(f.token, { deadline: now + f.leaseMs, ids: taken, sealed: false });
    } else {
      for (const id of taken) s.outputs.delete(id);
      this.forgetIfEmpty(f.sessionId, s);
    }
    return { repeat: false, token: f.token, outputs };
  }

  leaseOutputs(sessionId: string, token: string, outputs: StoredOutput[], leaseMs: number): void {
    const s = this.session(sessionId);
    let lease = s.leases.get(token);
    if (lease?.sealed) {
      token += LATE_SUFFIX;
      lease = s.leases.get(token);
      if (lease) lease.deadline = 0;
    }
    if (!lease) {
      lease = { deadline: token.endsWith(LATE_SUFFIX) ? 0 : this.now() + leaseMs, ids: [], sealed: false };
      s.leases.set(token, lease);
    }
    for (const o of outputs) {
      s.outputs.set(o.taskId, o.data);
      lease.ids.push(o.taskId);
    }
  }

  trim(sessionId: string, token: string, keep: number): void {
    const s = this.sessions.get(sessionId);
    const lease = s?.leases.get(token);
    if (!s || !lease || lease.ids.length <= keep) return;
    const rest = lease.ids.slice(keep);
    lease.ids = lease.ids.slice(0, keep);
    const spill = s.leases.get(token + SPILL_SUFFIX);
    if (spill) spill.ids.push(...rest);
    else s.leases.set(token + SPILL_SUFFIX, { deadline: 0, ids: rest, sealed: false });
  }

  acknowledge(sessionId: string, token: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    this.release(s, token);
    this.forgetIfEmpty(sessionId, s);
  }

  drop(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  clear(): void {
    this.sessions.clear();
    this.repeats.clear();
  }

  private session(id: string): SessionOutputs {
    let s = this.sessions.get(id);
    if (!s) {
      s = { leases: new Map(), outputs: new Map() };
      this.sessions.set(id, s);
    }
    return s;
  }

  private release(s: SessionOutputs, token: string): void {
    const lease = s.leases.get(token);
    if (!lease) return;
    for (const id of lease.ids) s.outputs.delete(id);
    s.leases.delete(token);
  }

  private values(s: SessionOutputs, ids: string[]): string[] {
    const out: string[] = [];
    for (const id of ids) {
      const v = s.outputs.get(id);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  private forgetIfEmpty(id: string, s: SessionOutputs): void {
    if (s.leases.size === 0 && s.outputs.size === 0) this.sessions.delete(id);
  }

  private sweepRepeats(now: number): void {
    for (const [k, v] of this.repeats) if (v.until <= now) this.repeats.delete(k);
  }
}
