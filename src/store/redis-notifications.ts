/**
 * The shared NotificationStore: the layout and the scripts are in redis-notification-scripts.ts.
 * It runs on RedisStore's client and prefix, and through its `call`, so that a failure to get an
 * answer rejects with StoreUnavailableError as every other store call does.
 */
import type { Redis } from 'ioredis';
import { DEAD_LETTERS_KEPT } from './memory-notifications';
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
import { NOTIFICATION_SCRIPTS, type NotificationScript } from './redis-notification-scripts';
import { StoreUnavailableError } from './store';

/** RedisStore's error mapping: any failure to get an answer becomes StoreUnavailableError. */
export type StoreCall = <T>(what: string, op: () => Promise<T>) => Promise<T>;

type Scripts = Record<NotificationScript, (...args: string[]) => Promise<unknown>>;

/** Leases in whole milliseconds, at least 1: a claim must end after the `now` it was made at. */
function leaseOf(ms: number): string {
  return String(Math.max(1, Math.ceil(ms)));
}

export class RedisNotifications implements NotificationStore {
  private readonly scripts: Scripts;

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly call: StoreCall,
    private readonly where: string,
  ) {
    for (const [name, lua] of Object.entries(NOTIFICATION_SCRIPTS)) {
      client.defineCommand(name, { lua, numberOfKeys: 0 });
    }
    this.scripts = client as unknown as Scripts;
  }

  async putSubscription(id: string, rec: SubscriptionRecord): Promise<void> {
    const pp = rec.sink.kind === 'pullpoint' ? rec.sink.id : '';
    await this.run(
      'put subscription',
      'sspPutSubscription',
      id,
      JSON.stringify(rec),
      rec.resource,
      rec.consumer,
      pp,
      String(rec.terminationAt),
    );
  }

  async getSubscription(id: string): Promise<SubscriptionState | undefined> {
    const fields = ['rec', 'term', 'paused', 'seq', 'acked', 'attempts', 'dropped', 'ending'] as const;
    const v = await this.call('get subscription', () => this.client.hmget(this.key(`sub:${id}`), ...fields));
    const [rec, term, paused, seq, acked, attempts, dropped, ending] = v;
    if (!rec) return undefined;
    return {
      ...this.parse<SubscriptionRecord>(rec, 'subscription'),
      terminationAt: Number(term),
      paused: paused === '1',
      seq: Number(seq),
      acked: Number(acked),
      attempts: Number(attempts),
      dropped: Number(dropped),
      ending: ending === '1',
    };
  }

  async renewSubscription(id: string, terminationAt: number): Promise<boolean> {
    return (await this.run('renew subscription', 'sspRenewSubscription', id, String(terminationAt))) === 1;
  }

  async setSubscriptionPaused(id: string, paused: boolean, nowMs: number): Promise<boolean> {
    const r = await this.run('pause subscription', 'sspSetPaused', id, paused ? '1' : '0', String(nowMs));
    return r === 1;
  }

  async deleteSubscription(id: string): Promise<boolean> {
    return (await this.run('delete subscription', 'sspDeleteSubscription', id)) === 1;
  }

  async subscriptionsOf(resource: string): Promise<string[]> {
    const ids = await this.call('list subscriptions', () =>
      this.client.smembers(this.key(`subs:res:${resource}`)),
    );
    return ids.sort();
  }

  async countSubscriptions(consumer: string): Promise<number> {
    return this.call('count subscriptions', () => this.client.scard(this.key(`subs:owner:${consumer}`)));
  }

  async publish(
    resources: string[],
    events: NotificationEvent[],
    caps: QueueCaps,
    nowMs: number,
    ending = false,
  ): Promise<PublishResult> {
    const args = [
      String(nowMs),
      String(caps.maxMessages),
      ending ? '1' : '0',
      String(resources.length),
      ...resources,
    ];
    for (const e of events) {
      // The queue entry without its opening brace: the script puts the seq it assigns in front.
      const body = JSON.stringify({ topic: e.topic, at: e.at, xml: e.xml }).slice(1);
      args.push(e.topic, e.always ? '1' : '0', body);
    }
    const r = await this.run('publish', 'sspPublish', ...args);
    if (!Array.isArray(r) || r.length !== 2) throw this.unexpected('publish');
    return { queued: Number(r[0]), dropped: Number(r[1]) };
  }

  async claimDeliveries(
    nowMs: number,
    leaseMs: number,
    max: number,
  ): Promise<{ id: string; epoch: number }[]> {
    const r = await this.run(
      'claim deliveries',
      'sspClaimDeliveries',
      String(nowMs),
      leaseOf(leaseMs),
      String(Math.floor(max)),
    );
    if (!Array.isArray(r) || r.length % 2 !== 0) throw this.unexpected('claim deliveries');
    const out: { id: string; epoch: number }[] = [];
    for (let i = 0; i < r.length; i += 2) out.push({ id: String(r[i]), epoch: Number(r[i + 1]) });
    return out;
  }

  async peekQueue(id: string, max: number): Promise<QueuedMessage[]> {
    // LRANGE 0 -1 would be everything: max 0 asks for nothing.
    if (max < 1) return [];
    const raw = await this.call('peek queue', () => this.client.lrange(this.key(`sub:${id}:q`), 0, max - 1));
    return raw.map((m) => this.parse<QueuedMessage>(m, 'queued message'));
  }

  async settleDelivery(
    id: string,
    epoch: number,
    outcome: DeliveryOutcome,
    nowMs: number,
    leaseMs: number,
  ): Promise<SettleResult> {
    const o = outcome;
    const r = await this.run(
      'settle delivery',
      'sspSettleDelivery',
      id,
      String(epoch),
      o.kind,
      String(o.kind === 'retry' ? 0 : o.upto),
      String(o.kind === 'delivered' ? 0 : o.attempts),
      String(o.kind === 'retry' ? o.atMs : 0),
      o.kind === 'dead' ? o.reason : '',
      String(nowMs),
      leaseOf(leaseMs),
      String(DEAD_LETTERS_KEPT),
    );
    if (!Array.isArray(r) || r.length !== 2 || !['ok', 'fenced', 'gone'].includes(String(r[0]))) {
      throw this.unexpected('settle delivery');
    }
    return { status: r[0] as SettleResult['status'], more: r[1] === 1 };
  }

  async listDeadLetters(max: number): Promise<DeadLetter[]> {
    if (max < 1) return [];
    const raw = await this.call('list dead letters', () =>
      this.client.lrange(this.key('notify:dead'), 0, max - 1),
    );
    return raw.map((m) => this.parse<DeadLetter>(m, 'dead letter'));
  }

  async putPullPoint(id: string, rec: PullPointRecord): Promise<void> {
    await this.run(
      'put pull point',
      'sspPutPullPoint',
      id,
      JSON.stringify(rec),
      rec.consumer,
      String(rec.expiresAt),
    );
  }

  async getPullPoint(id: string): Promise<PullPointState | undefined> {
    const fields = ['rec', 'exp', 'seq', 'acked', 'outstanding', 'dropped'] as const;
    const v = await this.call('get pull point', () => this.client.hmget(this.key(`pp:${id}`), ...fields));
    const [rec, exp, seq, acked, outstanding, dropped] = v;
    if (!rec) return undefined;
    return {
      ...this.parse<PullPointRecord>(rec, 'pull point'),
      expiresAt: Number(exp),
      seq: Number(seq),
      acked: Number(acked),
      outstanding: Number(outstanding),
      dropped: Number(dropped),
    };
  }

  async getMessages(id: string, req: GetMessagesRequest): Promise<GetMessagesResult> {
    const ack = req.ack === 'implicit' ? '' : String(Math.floor(req.ack));
    const r = await this.run(
      'get messages',
      'sspGetMessages',
      id,
      ack,
      String(Math.floor(req.max)),
      String(req.expiresAt),
    );
    if (!Array.isArray(r) || r.length < 2 || !['ok', 'gone', 'beyond'].includes(String(r[0]))) {
      throw this.unexpected('get messages');
    }
    return {
      status: r[0] as GetMessagesResult['status'],
      messages: r.slice(2).map((m) => this.parse<PulledMessage>(String(m), 'pulled message')),
      dropped: Number(r[1]),
    };
  }

  async deletePullPoint(id: string): Promise<boolean> {
    return (await this.run('delete pull point', 'sspDeletePullPoint', id)) === 1;
  }

  async countPullPoints(consumer: string): Promise<number> {
    return this.call('count pull points', () => this.client.scard(this.key(`pps:owner:${consumer}`)));
  }

  async setWatch(sessionId: string, watch: boolean): Promise<void> {
    const key = this.key('watch:leases');
    // NX: watching again keeps a running lease, so its holder goes on.
    await this.call('set watch', () =>
      watch ? this.client.zadd(key, 'NX', 0, sessionId) : this.client.zrem(key, sessionId),
    );
  }

  async claimWatches(nowMs: number, leaseMs: number, max: number): Promise<string[]> {
    const r = await this.run(
      'claim watches',
      'sspClaimWatches',
      String(nowMs),
      leaseOf(leaseMs),
      String(Math.floor(max)),
    );
    if (!Array.isArray(r)) throw this.unexpected('claim watches');
    return r.map(String);
  }

  async renewWatch(sessionId: string, nowMs: number, leaseMs: number): Promise<boolean> {
    return (await this.run('renew watch', 'sspRenewWatch', sessionId, String(nowMs), leaseOf(leaseMs))) === 1;
  }

  /** Every script takes the prefix first (they build their keys from it). */
  private run(what: string, script: NotificationScript, ...args: string[]): Promise<unknown> {
    return this.call(what, () => this.scripts[script](this.prefix, ...args));
  }

  private key(rest: string): string {
    return `${this.prefix}${rest}`;
  }

  private parse<T>(raw: string, what: string): T {
    const v: unknown = JSON.parse(raw);
    if (typeof v !== 'object' || v === null) throw this.unexpected(`corrupt ${what}`);
    return v as T;
  }

  private unexpected(what: string): StoreUnavailableError {
    return new StoreUnavailableError(`Redis store at ${this.where}: unexpected ${what} reply`);
  }
}
