/**
 * The single-process store: plain maps. Records and leased outputs live until closed or
 * released, like the grid's; claimed keys and remembered replies expire.
 */
import { MemoryAccounting } from './accounting-store';
import { MemoryLeases } from './memory-leases';
import { MemoryNotifications } from './memory-notifications';
import { DelegatedNotifications } from './notification-delegation';
import { RateWindows } from './rate-window';
import type {
  EnumerationRecord,
  EnumerationState,
  TerminationSetter,
  ClaimResult,
  ConnectionRecord,
  FetchLease,
  FetchStart,
  RateDecision,
  RateLimit,
  RememberedReply,
  SessionRecord,
  StateStore,
  StoredOutput,
} from './store';

/**
 * An expired enumeration context is kept this much longer, so that a Pull just after its expiry
 * is told InvalidEnumerationContext by the handler's own expiry check rather than by chance.
 */
export const ENUMERATION_GRACE_MS = 60_000;

/** Keyed entries that lapse, swept lazily so that an idle proxy does no work. */
class Expiring<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();
  private nextSweep = 0;

  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    return e && e.until > now ? e.value : undefined;
  }

  set(key: string, value: V, until: number, now: number): void {
    if (now >= this.nextSweep) {
      // Insertion order is close to expiry order, so stop at the first live entry; a
      // straggler left behind is still refused by its expiry check in get().
      for (const [k, e] of this.entries) {
        if (e.until > now) break;
        this.entries.delete(k);
      }
      this.nextSweep = now + 1000;
    }
    this.entries.delete(key);
    this.entries.set(key, { value, until });
  }

  clear(): void {
    this.entries.clear();
  }
}

export class MemoryStore extends DelegatedNotifications implements StateStore {
  private readonly connections = new Map<string, ConnectionRecord>();
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly claims = new Expiring<string>();
  private readonly replies = new Expiring<RememberedReply>();
  private readonly leases = new MemoryLeases();
  private readonly rates = new RateWindows();
  private readonly dueAt = new Map<string, number>();
  private readonly claimedUntil = new Map<string, number>();
  private readonly setByClient = new Set<string>();
  private readonly enumerations = new Map<string, EnumerationState>();
  protected readonly notifications = new MemoryNotifications();
  readonly accounting = new MemoryAccounting();

  async getConnection(id: string): Promise<ConnectionRecord | undefined> {
    return this.connections.get(id);
  }
  async putConnection(id: string, rec: ConnectionRecord): Promise<void> {
    this.connections.set(id, rec);
  }
  async deleteConnection(id: string): Promise<void> {
    this.connections.delete(id);
  }
  async getSession(id: string): Promise<SessionRecord | undefined> {
    return this.sessions.get(id);
  }
  async putSession(id: string, rec: SessionRecord): Promise<void> {
    this.sessions.set(id, rec);
  }
  async deleteSession(id: string): Promise<void> {
    this.sessions.delete(id);
  }
  async claimOnce(key: string, ttlMs: number, tag = ''): Promise<ClaimResult> {
    const now = Date.now();
    const prev = this.claims.get(key, now);
    if (prev !== undefined) return prev === tag ? 'resend' : 'taken';
    this.claims.set(key, tag, now + ttlMs, now);
    return 'claimed';
  }
  async getReply(key: string): Promise<RememberedReply | undefined> {
    return this.replies.get(key, Date.now());
  }
  async putReply(key: string, rec: RememberedReply, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.replies.set(key, rec, now + ttlMs, now);
  }
  async beginFetch(f: FetchLease): Promise<FetchStart> {
    return this.leases.beginFetch(f);
  }
  async leaseOutputs(
    sessionId: string,
    token: string,
    outputs: StoredOutput[],
    leaseMs: number,
  ): Promise<void> {
    this.leases.leaseOutputs(sessionId, token, outputs, leaseMs);
  }
  async acknowledge(sessionId: string, token: string): Promise<void> {
    this.leases.acknowledge(sessionId, token);
  }
  async listSessions(owner: string, max: number): Promise<string[]> {
    const out: string[] = [];
    for (const [id, rec] of this.sessions) {
      if (out.length >= max) break;
      if (rec.owner === owner) out.push(id);
    }
    return out;
  }
  async trimLease(sessionId: string, token: string, keep: number): Promise<void> {
    this.leases.trim(sessionId, token, keep);
  }
  async putEnumeration(id: string, rec: EnumerationRecord): Promise<void> {
    this.sweepEnumerations();
    this.enumerations.set(id, { ...structuredClone(rec), seq: 0, attempt: 0 });
  }
  async getEnumeration(id: string): Promise<EnumerationState | undefined> {
    const e = this.enumerations.get(id);
    return e && e.expiresAt + ENUMERATION_GRACE_MS > Date.now() ? structuredClone(e) : undefined;
  }
  async renewEnumeration(id: string, expiresAt: number): Promise<boolean> {
    const e = await this.getEnumeration(id);
    if (!e) return false;
    this.enumerations.get(id)!.expiresAt = expiresAt;
    return true;
  }
  async advanceEnumeration(
    id: string,
    after: number,
  ): Promise<{ step: 'fresh' | 'repeat' | 'stale'; attempt: number }> {
    const e = (await this.getEnumeration(id)) && this.enumerations.get(id);
    if (!e) return { step: 'stale', attempt: 0 };
    if (e.seq === after) {
      e.seq = after + 1;
      return { step: 'fresh', attempt: e.attempt };
    }
    return { step: e.seq === after + 1 ? 'repeat' : 'stale', attempt: e.attempt };
  }
  async rewindEnumeration(id: string, page: number): Promise<void> {
    const e = this.enumerations.get(id);
    if (e && e.seq === page) {
      e.seq = page - 1;
      e.attempt++;
    }
  }
  async deleteEnumeration(id: string): Promise<void> {
    this.enumerations.delete(id);
  }
  private sweepEnumerations(): void {
    const now = Date.now();
    for (const [id, e] of this.enumerations) {
      if (e.expiresAt + ENUMERATION_GRACE_MS <= now) this.enumerations.delete(id);
    }
  }
  async dropOutputs(sessionId: string): Promise<void> {
    this.leases.drop(sessionId);
  }
  async scheduleTermination(
    key: string,
    atMs: number | null,
    by: TerminationSetter = 'lease',
  ): Promise<void> {
    if (by === 'lease' && atMs !== null && this.setByClient.has(key)) return;
    this.claimedUntil.delete(key);
    if (by === 'client' && atMs !== null) this.setByClient.add(key);
    else this.setByClient.delete(key);
    if (atMs === null) this.dueAt.delete(key);
    else this.dueAt.set(key, atMs);
  }
  async terminationSetByClient(key: string): Promise<boolean> {
    return this.setByClient.has(key);
  }
  async terminationOf(key: string): Promise<number | null> {
    return this.dueAt.get(key) ?? null;
  }
  async claimTerminations(nowMs: number, leaseMs: number, max: number): Promise<string[]> {
    const out: string[] = [];
    for (const [key, until] of this.claimedUntil) {
      if (out.length >= max) break;
      if (until <= nowMs) out.push(key);
    }
    for (const [key, at] of this.dueAt) {
      if (out.length >= max) break;
      if (at <= nowMs) {
        this.dueAt.delete(key);
        out.push(key);
      }
    }
    for (const key of out) this.claimedUntil.set(key, nowMs + leaseMs);
    return out;
  }
  async finishTermination(key: string): Promise<void> {
    this.claimedUntil.delete(key);
  }
  async admit(limits: RateLimit[]): Promise<RateDecision> {
    return this.rates.admit(limits);
  }
  async close(): Promise<void> {
    this.notifications.clear();
    this.claims.clear();
    this.replies.clear();
    this.leases.clear();
    this.connections.clear();
    this.sessions.clear();
    this.dueAt.clear();
    this.claimedUntil.clear();
  }
}
