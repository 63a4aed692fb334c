/**
 * Subscriptions, pull points and watches for one process, with the same semantics as the Redis
 * scripts (redis-notification-scripts.ts): where one of them changes, so must the other, and
 * test/store/notification-store-contract.test.ts runs the same cases on both.
 */
import type {
  DeadLetter,
  DeliveryOutcome,
  GetMessagesRequest,
  GetMessagesResult,
  NotificationEvent,
  NotificationStore,
  PublishResult,
  PulledMessage,
  PullPointRecord,
  PullPointState,
  QueuedMessage,
  QueueCaps,
  SettleResult,
  SubscriptionRecord,
  SubscriptionState,
} from './notification-store';
import { topicMatches } from './topic-match';

/** The dead letters kept, newest first (older ones are forgotten): the same bound in Redis. */
export const DEAD_LETTERS_KEPT = 10_000;

interface Subscription extends Omit<SubscriptionState, keyof SubscriptionRecord> {
  rec: SubscriptionRecord;
  /** Bumped by every claim: a settle must name the current one (fencing). */
  epoch: number;
  /** seq acked+1 .. seq, in order (http sinks; a pull-point sink queues into the pull point). */
  queue: QueuedMessage[];
}

interface PullPoint extends Omit<PullPointState, keyof PullPointRecord> {
  rec: PullPointRecord;
  /** seq acked+1 .. seq, in order. */
  queue: PulledMessage[];
}

function index(m: Map<string, Set<string>>, key: string, id: string): void {
  let ids = m.get(key);
  if (!ids) m.set(key, (ids = new Set()));
  ids.add(id);
}

/** Empty sets are dropped, as Redis drops an empty set key. */
function unindex(m: Map<string, Set<string>>, key: string, id: string): void {
  const ids = m.get(key);
  if (!ids) return;
  ids.delete(id);
  if (ids.size === 0) m.delete(key);
}

/** Keys scored at most `now`, lowest score first, ties by key: the order ZRANGEBYSCORE gives. */
function dueKeys(scores: Map<string, number>, now: number): string[] {
  return [...scores]
    .filter(([, s]) => s <= now)
    .sort(([a, x], [b, y]) => x - y || (a < b ? -1 : a > b ? 1 : 0))
    .map(([k]) => k);
}

export class MemoryNotifications implements NotificationStore {
  private readonly subs = new Map<string, Subscription>();
  private readonly byResource = new Map<string, Set<string>>();
  private readonly byOwner = new Map<string, Set<string>>();
  /** Subscriptions with messages to send: when they are due, and until when a claim holds. */
  private readonly due = new Map<string, number>();
  private readonly claimed = new Map<string, number>();
  /** Oldest first (listDeadLetters reverses). */
  private dead: DeadLetter[] = [];
  private readonly pps = new Map<string, PullPoint>();
  private readonly ppsByOwner = new Map<string, Set<string>>();
  /** Pull point id → subscriptions feeding it; kept apart, as in Redis, so a re-put keeps them. */
  private readonly feeds = new Map<string, Set<string>>();
  /** Watched session → lease end (0: nobody holds it). */
  private readonly watches = new Map<string, number>();

  async putSubscription(id: string, rec: SubscriptionRecord): Promise<void> {
    // A put over an existing id starts afresh: the old incarnation's indexes and claim go.
    this.dropSubscription(id);
    this.subs.set(id, {
      rec: structuredClone(rec),
      paused: false,
      seq: 0,
      acked: 0,
      attempts: 0,
      dropped: 0,
      ending: false,
      epoch: 0,
      queue: [],
    });
    index(this.byResource, rec.resource, id);
    index(this.byOwner, rec.consumer, id);
    if (rec.sink.kind === 'pullpoint') index(this.feeds, rec.sink.id, id);
  }

  async getSubscription(id: string): Promise<SubscriptionState | undefined> {
    const s = this.subs.get(id);
    if (!s) return undefined;
    const { paused, seq, acked, attempts, dropped, ending } = s;
    return { ...structuredClone(s.rec), paused, seq, acked, attempts, dropped, ending };
  }

  async renewSubscription(id: string, terminationAt: number): Promise<boolean> {
    const s = this.subs.get(id);
    if (s) s.rec.terminationAt = terminationAt;
    return s !== undefined;
  }

  async setSubscriptionPaused(id: string, paused: boolean, nowMs: number): Promise<boolean> {
    const s = this.subs.get(id);
    if (!s) return false;
    s.paused = paused;
    // A pull point's subscription: what queued while paused goes to the pull point on resume.
    if (s.rec.sink.kind === 'pullpoint') {
      if (!paused) this.flushToPullPoint(id, s);
      return true;
    }
    // A claim in flight is left to its holder, whose settle then releases it.
    if (paused) this.due.delete(id);
    else if (s.seq > s.acked && !this.claimed.has(id)) this.due.set(id, nowMs);
    return true;
  }

  async deleteSubscription(id: string): Promise<boolean> {
    return this.dropSubscription(id);
  }

  async subscriptionsOf(resource: string): Promise<string[]> {
    // Sorted: Redis lists a set in no particular order, so both stores answer in this one.
    return [...(this.byResource.get(resource) ?? [])].sort();
  }

  async countSubscriptions(consumer: string): Promise<number> {
    return this.byOwner.get(consumer)?.size ?? 0;
  }

  async publish(
    resources: string[],
    events: NotificationEvent[],
    caps: QueueCaps,
    nowMs: number,
    ending = false,
  ): Promise<PublishResult> {
    const ids = new Set<string>();
    for (const r of resources) for (const id of this.byResource.get(r) ?? []) ids.add(id);
    // Sorted, as the script sorts SMEMBERS: several subscriptions feeding one pull point then
    // number its messages in the same order in both stores.
    const live: [string, Subscription][] = [];
    for (const id of [...ids].sort()) {
      const s = this.subs.get(id);
      if (s && !s.ending) live.push([id, s]);
    }
    let queued = 0;
    let dropped = 0;
    for (const e of events) {
      const msg = { topic: e.topic, at: e.at, xml: e.xml };
      for (const [id, s] of live) {
        if (!e.always && !topicMatches(s.rec.topics, e.topic)) continue;
        // A paused pull point's subscription keeps its messages in its own queue until resumed.
        if (s.rec.sink.kind === 'pullpoint' && !s.paused) {
          const pp = this.pps.get(s.rec.sink.id);
          // A pull point not (or no longer) there takes nothing; deleting it ends its feeds anyway.
          if (!pp) continue;
          if (pp.seq - pp.acked >= caps.maxMessages) {
            pp.dropped++;
            dropped++;
            continue;
          }
          // Handed over at once: the subscription's own queue stays empty (acked = seq).
          s.acked = ++s.seq;
          pp.queue.push({ seq: ++pp.seq, subscription: id, subscriptionSeq: s.seq, ...msg });
        } else {
          if (s.seq - s.acked >= caps.maxMessages) {
            s.dropped++;
            dropped++;
            continue;
          }
          s.queue.push({ seq: ++s.seq, ...msg });
          // Due now unless already due (a retry's backoff stands), claimed (the holder's settle
          // sees the new messages: no second sender) or paused.
          if (!s.paused && !this.claimed.has(id) && !this.due.has(id)) this.due.set(id, nowMs);
        }
        queued++;
      }
    }
    if (ending) {
      for (const id of [...(this.byResource.get(resources[0] ?? '') ?? [])].sort()) {
        const s = this.subs.get(id);
        if (!s) continue;
        s.ending = true;
        // Ending: even a paused one hands its pull point everything, ResourceTerminated last.
        if (s.rec.sink.kind === 'pullpoint') this.flushToPullPoint(id, s);
        // Nothing left to send (a pull point already has everything): it ends now, as a settle
        // that drains it would end it; a claimed one ends at its holder's settle.
        if (s.rec.sink.kind === 'pullpoint' || (s.seq === s.acked && !this.claimed.has(id))) {
          this.dropSubscription(id);
        }
      }
    }
    return { queued, dropped };
  }

  async claimDeliveries(
    nowMs: number,
    leaseMs: number,
    max: number,
  ): Promise<{ id: string; epoch: number }[]> {
    const out: { id: string; epoch: number }[] = [];
    // Claims whose holder let the lease pass first, as for terminations.
    for (const from of [this.claimed, this.due]) {
      for (const id of dueKeys(from, nowMs)) {
        if (out.length >= Math.floor(max)) return out;
        from.delete(id);
        const s = this.subs.get(id);
        // Paused or drained: nobody holds it; resume or a publish makes it due again.
        if (!s || s.paused || s.seq <= s.acked) continue;
        this.claimed.set(id, nowMs + leaseMs);
        out.push({ id, epoch: ++s.epoch });
      }
    }
    return out;
  }

  async peekQueue(id: string, max: number): Promise<QueuedMessage[]> {
    // Messages hold strings and numbers only: a shallow copy keeps the store's own untouched.
    return (this.subs.get(id)?.queue.slice(0, Math.max(0, max)) ?? []).map((m) => ({ ...m }));
  }

  async settleDelivery(
    id: string,
    epoch: number,
    outcome: DeliveryOutcome,
    nowMs: number,
    leaseMs: number,
  ): Promise<SettleResult> {
    const s = this.subs.get(id);
    if (!s) return { status: 'gone', more: false };
    // A claim released (settled) or taken over since: this attempt's word no longer counts.
    if (!this.claimed.has(id) || s.epoch !== epoch) return { status: 'fenced', more: false };
    if (outcome.kind === 'retry') {
      s.attempts = outcome.attempts;
      this.claimed.delete(id);
      if (!s.paused) this.due.set(id, outcome.atMs);
      return { status: 'ok', more: false };
    }
    const upto = Math.min(outcome.upto, s.seq);
    if (upto > s.acked) {
      const done = s.queue.splice(0, upto - s.acked);
      if (outcome.kind === 'dead') {
        for (const m of done) {
          this.dead.push({
            subscription: id,
            consumer: s.rec.consumer,
            seq: m.seq,
            topic: m.topic,
            at: m.at,
            deadAt: nowMs,
            attempts: outcome.attempts,
            reason: outcome.reason,
          });
        }
        if (this.dead.length > DEAD_LETTERS_KEPT) this.dead = this.dead.slice(-DEAD_LETTERS_KEPT);
      }
      s.acked = upto;
    }
    s.attempts = 0;
    s.dropped = 0;
    if (s.seq > s.acked && !s.paused) {
      this.claimed.set(id, nowMs + leaseMs);
      return { status: 'ok', more: true };
    }
    this.claimed.delete(id);
    if (s.seq === s.acked && s.ending) this.dropSubscription(id);
    return { status: 'ok', more: false };
  }

  async listDeadLetters(max: number): Promise<DeadLetter[]> {
    return max < 1 ? [] : structuredClone(this.dead.slice(-max).reverse());
  }

  async putPullPoint(id: string, rec: PullPointRecord): Promise<void> {
    // A put over an existing id starts afresh, but the subscriptions feeding it stay.
    const old = this.pps.get(id);
    if (old) unindex(this.ppsByOwner, old.rec.consumer, id);
    this.pps.set(id, { rec: structuredClone(rec), seq: 0, acked: 0, outstanding: 0, dropped: 0, queue: [] });
    index(this.ppsByOwner, rec.consumer, id);
  }

  async getPullPoint(id: string): Promise<PullPointState | undefined> {
    const pp = this.pps.get(id);
    if (!pp) return undefined;
    const { seq, acked, outstanding, dropped } = pp;
    return { ...structuredClone(pp.rec), seq, acked, outstanding, dropped };
  }

  async getMessages(id: string, req: GetMessagesRequest): Promise<GetMessagesResult> {
    const pp = this.pps.get(id);
    if (!pp) return { status: 'gone', messages: [], dropped: 0 };
    const ack = req.ack === 'implicit' ? pp.outstanding : req.ack;
    if (ack > pp.outstanding) return { status: 'beyond', messages: [], dropped: 0 };
    // An ack below `acked` is an old request repeated: it acknowledges nothing new.
    if (ack > pp.acked) {
      pp.queue.splice(0, ack - pp.acked);
      pp.acked = ack;
    }
    // Always from the oldest unacknowledged: a repeat of the same ack gets the same batch.
    const messages = structuredClone(pp.queue.slice(0, Math.max(0, req.max)));
    pp.outstanding = Math.max(pp.outstanding, pp.acked + messages.length);
    // Reported once, as a subscription's count is reset by a delivered Notify.
    const dropped = pp.dropped;
    pp.dropped = 0;
    pp.rec.expiresAt = req.expiresAt;
    return { status: 'ok', messages, dropped };
  }

  async deletePullPoint(id: string): Promise<boolean> {
    const pp = this.pps.get(id);
    if (!pp) return false;
    for (const sub of [...(this.feeds.get(id) ?? [])]) this.dropSubscription(sub);
    this.feeds.delete(id);
    this.pps.delete(id);
    unindex(this.ppsByOwner, pp.rec.consumer, id);
    return true;
  }

  async countPullPoints(consumer: string): Promise<number> {
    return this.ppsByOwner.get(consumer)?.size ?? 0;
  }

  async setWatch(sessionId: string, watch: boolean): Promise<void> {
    // Watching again keeps a running lease: its holder goes on.
    if (!watch) this.watches.delete(sessionId);
    else if (!this.watches.has(sessionId)) this.watches.set(sessionId, 0);
  }

  async claimWatches(nowMs: number, leaseMs: number, max: number): Promise<string[]> {
    const out = dueKeys(this.watches, nowMs).slice(0, Math.max(0, max));
    for (const s of out) this.watches.set(s, nowMs + leaseMs);
    return out;
  }

  async renewWatch(sessionId: string, nowMs: number, leaseMs: number): Promise<boolean> {
    if (!this.watches.has(sessionId)) return false;
    this.watches.set(sessionId, nowMs + leaseMs);
    return true;
  }

  clear(): void {
    for (const m of [this.subs, this.byResource, this.byOwner, this.due, this.claimed, this.pps]) m.clear();
    for (const m of [this.ppsByOwner, this.feeds, this.watches]) m.clear();
    this.dead = [];
  }

  /** Removes a subscription with its queue, indexes and claim (dead letters stay). */
  /** Hands what a paused subscription queued to its pull point (no cap: each was accepted under the subscription's). */
  private flushToPullPoint(id: string, s: Subscription): void {
    const pp = s.rec.sink.kind === 'pullpoint' ? this.pps.get(s.rec.sink.id) : undefined;
    for (const m of s.queue) {
      if (pp) pp.queue.push({ ...m, seq: ++pp.seq, subscription: id, subscriptionSeq: m.seq });
    }
    s.queue = [];
    s.acked = s.seq;
  }

  private dropSubscription(id: string): boolean {
    const s = this.subs.get(id);
    if (!s) return false;
    this.subs.delete(id);
    unindex(this.byResource, s.rec.resource, id);
    unindex(this.byOwner, s.rec.consumer, id);
    if (s.rec.sink.kind === 'pullpoint') unindex(this.feeds, s.rec.sink.id, id);
    this.due.delete(id);
    this.claimed.delete(id);
    return true;
  }
}
