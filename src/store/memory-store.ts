/**
 * The single-process store: plain maps. Records live until closed, like the grid's; claimed
 * keys expire, swept lazily so that an idle proxy does no work.
 */
import { RateWindows } from './rate-window';
import type { ConnectionRecord, RateDecision, RateLimit, SessionRecord, StateStore } from './store';

export class MemoryStore implements StateStore {
  private readonly connections = new Map<string, ConnectionRecord>();
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly claims = new Map<string, number>();
  private nextSweep = 0;
  private readonly rates = new RateWindows();

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
  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    if (now >= this.nextSweep) {
      // Insertion order is close to expiry order, so stop at the first live entry; a
      // straggler left behind is still refused by its expiry check below.
      for (const [k, until] of this.claims) {
        if (until > now) break;
        this.claims.delete(k);
      }
      this.nextSweep = now + 1000;
    }
    const until = this.claims.get(key);
    if (until !== undefined && until > now) return false;
    this.claims.set(key, now + ttlMs);
    return true;
  }
  async admit(limits: RateLimit[]): Promise<RateDecision> {
    return this.rates.admit(limits);
  }
  async close(): Promise<void> {
    this.claims.clear();
    this.connections.clear();
    this.sessions.clear();
  }
}
