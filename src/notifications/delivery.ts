/**
 * Push delivery: each proxy claims subscriptions with messages due, under a lease fenced by an
 * epoch (a proxy that stalls past its lease can no longer acknowledge or reorder anything), and
 * sends their queues in order, one signed Notify in flight per subscription.
 *
 * Bounded on every side: `senders` Notify calls in flight per proxy, `perHost` of them to one
 * consumer host (a slow consumer delays its own subscriptions only), a timeout per call,
 * keep-alive connections per consumer origin. A failure is retried after a random delay up to an
 * exponential bound ("full jitter"); after `maxAttempts`, or once messages are older than
 * `maxAgeMs`, they go to the dead letters (listed by the admin API, written to the audit log).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { log } from '../log';
import type { AuditRecord } from '../observability/audit-log';
import { CONTENT_TYPE, type SoapVersion } from '../soap/envelope';
import type { SignedHeader } from '../security/envelope-signer';
import type { QueuedMessage, SubscriptionState } from '../store/notification-store';
import type { StateStore } from '../store/store';
import type { Destinations } from './destinations';
import { NOTIFY_ACTION, notifyParts } from './messages';

export interface DeliveryConfig {
  senders: number;
  perHost: number;
  batchMax: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  maxAttempts: number;
  clientErrorAttempts: number;
  maxAgeMs: number;
  claimLeaseMs: number;
  pollMs: number;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** Writes a Notify envelope: signed by the proxy's response key when it has one. */
export type NotifyWriter = (
  version: SoapVersion,
  body: string,
  header: string,
  signed: readonly SignedHeader[],
) => string;

export interface DeliveryMetrics {
  sent(outcome: 'delivered' | 'retry' | 'dead', messages: number, ms: number): void;
}

type Attempt =
  | { ok: true; status: number }
  | { ok: false; status: number | undefined; reason: string; clientError: boolean; retryAfterMs?: number };

/** The delay before attempt `attempts + 1`: random in [0, min(cap, base·2^attempts)]. */
export function backoffMs(attempts: number, baseMs: number, capMs: number, random = Math.random): number {
  const bound = Math.min(capMs, baseMs * 2 ** Math.min(attempts, 30));
  return Math.floor(random() * bound);
}

export class NotificationDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private claiming = false;
  private wakeAgain = false;
  private inFlight = 0;
  private readonly perHost = new Map<string, number>();
  private readonly agents = new Map<string, http.Agent>();
  private readonly running = new Set<Promise<void>>();
  private readonly tls: https.AgentOptions;

  constructor(
    private readonly store: StateStore,
    private readonly destinations: Destinations,
    private readonly write: NotifyWriter,
    private readonly cfg: DeliveryConfig,
    private readonly metrics: DeliveryMetrics | null = null,
    private readonly audit: ((r: AuditRecord) => void) | null = null,
  ) {
    this.tls = {
      ...(cfg.caFile ? { ca: readFileSync(cfg.caFile) } : {}),
      ...(cfg.certFile ? { cert: readFileSync(cfg.certFile) } : {}),
      ...(cfg.keyFile ? { key: readFileSync(cfg.keyFile) } : {}),
    };
  }

  start(): void {
    this.timer = setInterval(() => void this.claim(), this.cfg.pollMs);
    this.timer.unref();
  }

  /** Looks for due subscriptions now (after a publish on this proxy, for example). */
  wake(): void {
    // A claim under way may have looked before the publish: look again right after it.
    if (this.claiming) this.wakeAgain = true;
    else void this.claim();
  }

  private async claim(): Promise<void> {
    if (this.claiming || this.stopped) return;
    this.wakeAgain = false;
    const room = this.cfg.senders - this.inFlight;
    if (room <= 0) return;
    this.claiming = true;
    try {
      const claims = await this.store.claimDeliveries(Date.now(), this.cfg.claimLeaseMs, room);
      for (const c of claims) {
        this.inFlight++;
        const run = this.deliver(c.id, c.epoch)
          .catch((e: unknown) => {
            // The store failed mid-way: the claim lapses and this or another proxy takes it again.
            log.warn('notification delivery interrupted; it resumes after the claim lapses', {
              error: e instanceof Error ? e.message : String(e),
            });
          })
          .finally(() => {
            this.inFlight--;
            this.running.delete(run);
            // Its subscription may have become due again meanwhile (a publish during the settle).
            this.wake();
          });
        this.running.add(run);
      }
    } catch (e) {
      log.debug('could not claim notification deliveries; trying again', {
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      this.claiming = false;
    }
    if (this.wakeAgain) void this.claim();
  }

  /** Sends a subscription's queue, batch after batch, while the claim is ours. */
  private async deliver(id: string, epoch: number): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const sub = await this.store.getSubscription(id);
      if (!sub || sub.sink.kind !== 'http') return;
      const queued = await this.store.peekQueue(id, this.cfg.batchMax);
      const now = Date.now();
      if (queued.length === 0) {
        await this.store.settleDelivery(
          id,
          epoch,
          { kind: 'delivered', upto: sub.acked },
          now,
          this.cfg.claimLeaseMs,
        );
        return;
      }
      const old = queued.filter((m) => m.at < now - this.cfg.maxAgeMs);
      let result: { status: 'ok' | 'fenced' | 'gone'; more: boolean };
      if (old.length > 0) {
        result = await this.giveUp(id, epoch, sub, old, sub.attempts, 'older than delivery.maxAgeMs');
      } else {
        const host = new URL(sub.sink.address).host;
        if ((this.perHost.get(host) ?? 0) >= this.cfg.perHost) {
          // Another subscription of this host is being served: step aside rather than hold a sender.
          await this.store.settleDelivery(
            id,
            epoch,
            { kind: 'retry', attempts: sub.attempts, atMs: now + 20 },
            now,
            this.cfg.claimLeaseMs,
          );
          return;
        }
        this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1);
        const started = Date.now();
        let attempt: Attempt;
        try {
          attempt = await this.send(id, sub as SubscriptionState & { sink: { kind: 'http' } }, queued);
        } finally {
          this.perHost.set(host, this.perHost.get(host)! - 1);
        }
        const last = queued[queued.length - 1]!.seq;
        if (attempt.ok) {
          this.metrics?.sent('delivered', queued.length, Date.now() - started);
          result = await this.store.settleDelivery(
            id,
            epoch,
            { kind: 'delivered', upto: last },
            Date.now(),
            this.cfg.claimLeaseMs,
          );
        } else {
          const attempts = sub.attempts + 1;
          const limit = attempt.clientError ? this.cfg.clientErrorAttempts : this.cfg.maxAttempts;
          if (attempts >= limit) {
            result = await this.giveUp(id, epoch, sub, queued, attempts, attempt.reason);
          } else {
            this.metrics?.sent('retry', queued.length, Date.now() - started);
            const delay = Math.max(
              attempt.retryAfterMs ?? 0,
              backoffMs(attempts, this.cfg.retryBaseMs, this.cfg.retryCapMs),
            );
            log.debug('a consumer did not take a Notify; retrying later', {
              subscription: id,
              attempts,
              reason: attempt.reason,
              delayMs: delay,
            });
            await this.store.settleDelivery(
              id,
              epoch,
              { kind: 'retry', attempts, atMs: Date.now() + delay },
              Date.now(),
              this.cfg.claimLeaseMs,
            );
            return;
          }
        }
      }
      if (result.status !== 'ok' || !result.more) return;
    }
  }

  private async giveUp(
    id: string,
    epoch: number,
    sub: SubscriptionState,
    messages: QueuedMessage[],
    attempts: number,
    reason: string,
  ): Promise<{ status: 'ok' | 'fenced' | 'gone'; more: boolean }> {
    const upto = messages[messages.length - 1]!.seq;
    const r = await this.store.settleDelivery(
      id,
      epoch,
      { kind: 'dead', upto, reason, attempts },
      Date.now(),
      this.cfg.claimLeaseMs,
    );
    if (r.status !== 'ok') return r;
    this.metrics?.sent('dead', messages.length, 0);
    log.warn('notifications moved to the dead letters', {
      subscription: id,
      consumer: sub.consumer,
      first: messages[0]!.seq,
      last: upto,
      attempts,
      reason,
    });
    this.audit?.({
      time: new Date().toISOString(),
      correlationId: `${id}:${messages[0]!.seq}-${upto}`,
      consumerId: sub.consumer,
      operation: 'Notify',
      ...(sub.resource.startsWith('session:') ? { sessionId: sub.resource.slice('session:'.length) } : {}),
      ...(sub.resource.startsWith('connection:')
        ? { connectionId: sub.resource.slice('connection:'.length) }
        : {}),
      outcome: 'fault',
      faultCode: 'SSP_NOTIFY_DEAD_LETTER',
      limit: `${messages.length} messages after ${attempts} attempts: ${reason}`.slice(0, 200),
      proxyMs: 0,
      gridMs: 0,
      bytesIn: 0,
      bytesOut: 0,
    });
    return r;
  }

  private agentFor(url: URL, consumer: string): http.Agent {
    const key = `${consumer}\u0000${url.origin}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const common = {
        keepAlive: true,
        maxSockets: this.cfg.perHost,
        // Connects only to an address the consumer may reach, checked when the socket opens.
        lookup: this.destinations.lookupFor(consumer),
      };
      agent =
        url.protocol === 'https:' ? new https.Agent({ ...common, ...this.tls }) : new http.Agent(common);
      this.agents.set(key, agent);
    }
    return agent;
  }

  private send(
    id: string,
    sub: SubscriptionState & { sink: { kind: 'http'; address: string } },
    messages: QueuedMessage[],
  ): Promise<Attempt> {
    const parts = notifyParts(id, sub, messages, sub.dropped);
    const body = Buffer.from(this.write(sub.soapVersion, parts.body, parts.header, parts.signed), 'utf8');
    const url = new URL(sub.sink.address);
    const headers: Record<string, string | number> =
      sub.soapVersion === '1.1'
        ? { 'content-type': CONTENT_TYPE['1.1'], soapaction: `"${NOTIFY_ACTION}"` }
        : { 'content-type': `${CONTENT_TYPE['1.2']}; action="${NOTIFY_ACTION}"` };
    headers['content-length'] = body.length;
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<Attempt>((resolve) => {
      const req = lib.request(
        url,
        { method: 'POST', headers, agent: this.agentFor(url, sub.consumer), timeout: this.cfg.timeoutMs },
        (res) => {
          // The answer's body is not needed; read it (bounded) so the connection can be reused.
          let seen = 0;
          res.on('data', (chunk: Buffer) => {
            seen += chunk.length;
            if (seen > 65_536) res.destroy();
          });
          res.on('error', () => undefined);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve({ ok: true, status });
            const retryAfter = Number(res.headers['retry-after']);
            resolve({
              ok: false,
              status,
              reason: `HTTP ${status}`,
              // A redirect is not followed, and a refusal will not change its mind: both end sooner.
              clientError: status >= 300 && status < 500 && status !== 408 && status !== 429,
              ...(Number.isFinite(retryAfter) && retryAfter > 0
                ? { retryAfterMs: Math.min(retryAfter * 1000, this.cfg.retryCapMs) }
                : {}),
            });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.cfg.timeoutMs} ms`)));
      req.on('error', (e) =>
        resolve({ ok: false, status: undefined, reason: e.message, clientError: false }),
      );
      req.end(body);
    });
  }

  /** Stops claiming; sends in flight finish (bounded by their timeout) or their claims lapse. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
    for (const a of this.agents.values()) a.destroy();
  }
}
