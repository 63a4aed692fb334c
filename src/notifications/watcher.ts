/**
 * Moves the outputs of subscribed sessions from the grid into the subscriptions' queues.
 *
 * A watched session is held by one proxy of the farm at a time, under a lease in the store; if
 * that proxy dies, another takes the session over once the lease lapses. Outputs are fetched
 * with a grid hold and acknowledged to the grid only after the store has them, so a proxy that
 * dies in between loses nothing: the grid hands the outputs out again (a consumer may then see a
 * task's output twice, recognisable by its task id).
 *
 * An output a notification does not carry (too large, nobody subscribed to outputs, or a queue
 * was full) is parked in the session's output leases, where fetchTaskOutput finds it.
 */
import { sessionFacts, type UsageSink } from '../accounting/sink';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskOutput } from '../backend/protocol';
import type { GridRouter } from '../backend/grid-router';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import { render, serializeOutput } from '../operations/task-output';
import type { TaskOutputItem } from '../pipeline/operation';
import type { NotificationEvent } from '../store/notification-store';
import type { SessionRecord, StateStore } from '../store/store';
import { taskOutputEvent, taskStateEvent } from './messages';
import type { Notifier } from './notifier';
import { topicMatches } from './topics';

export interface WatcherConfig {
  waitMs: number;
  leaseMs: number;
  maxSessions: number;
  /** How long the grid holds fetched outputs for us (the time to store them and acknowledge). */
  gridHoldMs: number;
  inlineOutputMaxChars: number;
  /** How often to look for sessions nobody watches. */
  pollMs: number;
  /** Outputs per grid fetch. */
  batch: number;
}

export interface WatcherMetrics {
  collected(n: number): void;
}

export class SessionWatcher {
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private claiming = false;

  constructor(
    private readonly store: StateStore,
    private readonly router: GridRouter,
    private readonly notifier: Notifier,
    private readonly writeOutput: (item: TaskOutputItem) => string,
    private readonly cfg: WatcherConfig,
    private readonly metrics: WatcherMetrics | null = null,
    private readonly usage: UsageSink | null = null,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.claim(), this.cfg.pollMs);
    this.timer.unref();
  }

  /** Sessions this proxy watches now. */
  get watching(): number {
    return this.held.size;
  }

  private async claim(): Promise<void> {
    if (this.claiming || this.stopped) return;
    const room = this.cfg.maxSessions - this.held.size;
    if (room <= 0) return;
    this.claiming = true;
    try {
      for (const id of await this.store.claimWatches(Date.now(), this.cfg.leaseMs, room)) {
        if (this.held.has(id)) continue;
        this.held.add(id);
        void this.watch(id).finally(() => this.held.delete(id));
      }
    } catch (e) {
      log.debug('could not look for sessions to watch; trying again', {
        error: e instanceof Error ? e.message : String(e),
      });
    } finally {
      this.claiming = false;
    }
  }

  /** One session, until it has no subscription left, ends, or another proxy holds it. */
  private async watch(sessionId: string): Promise<void> {
    while (!this.stopped) {
      try {
        if (!(await this.store.renewWatch(sessionId, Date.now(), this.cfg.leaseMs))) return;
        const subs = await this.subscriptions(sessionId);
        const rec = subs.length > 0 ? await this.store.getSession(sessionId) : undefined;
        if (!rec) {
          await this.store.setWatch(sessionId, false);
          return;
        }
        await this.collect(sessionId, rec, subs);
      } catch (e) {
        if (e instanceof GatewayError && e.code === 'SSP_UNKNOWN_SESSION') {
          await this.store.setWatch(sessionId, false).catch(() => undefined);
          return;
        }
        log.debug('watching a session failed; trying again', {
          error: e instanceof Error ? e.message : String(e),
        });
        // Errors are likely to repeat (grid or store away): do not spin.
        await sleep(Math.min(1000, this.cfg.leaseMs / 4), undefined, { ref: false });
      }
    }
  }

  /** Topic filters of the session's subscriptions (each list empty for "every topic"). */
  private async subscriptions(sessionId: string): Promise<{ topics: { path: string; exact: boolean }[] }[]> {
    const ids = await this.store.subscriptionsOf(`session:${sessionId}`);
    const out: { topics: { path: string; exact: boolean }[] }[] = [];
    for (const id of ids) {
      const s = await this.store.getSubscription(id);
      if (s && !s.ending) out.push({ topics: s.topics });
    }
    return out;
  }

  private async collect(
    sessionId: string,
    rec: SessionRecord,
    subs: { topics: { path: string; exact: boolean }[] }[],
  ): Promise<void> {
    const { cluster, connectionId } = rec;
    const client = this.router.client(cluster);
    const reply = await client.call(
      'fetchOutputs',
      { sessionId, countMax: this.cfg.batch, waitMs: this.cfg.waitMs, holdMs: this.cfg.gridHoldMs },
      this.cfg.waitMs + client.opts.requestTimeoutMs,
    );
    if (reply.outputs.length === 0) return;
    const carriesOutputs = subs.some(
      (s) => s.topics.length === 0 || s.topics.some((t) => topicMatches(t, 'TaskOutputAvailable')),
    );
    const at = Date.now();
    const events: NotificationEvent[] = [];
    const parked: TaskOutput[] = [];
    for (const o of reply.outputs) {
      const item = render(o);
      const xml = this.writeOutput(item);
      const inline = xml.length <= this.cfg.inlineOutputMaxChars;
      if (!carriesOutputs || !inline) parked.push(o);
      events.push(
        taskOutputEvent(sessionId, item, xml, inline, at),
        taskStateEvent(sessionId, o.taskId, item.successful ? 'Done' : 'Failed', at),
      );
    }
    const r = await this.notifier.publish([`session:${sessionId}`, `connection:${connectionId}`], events);
    // A full queue dropped some: which ones is not known here, so every output waits for a fetch too.
    const keep = r.dropped > 0 ? reply.outputs : parked;
    if (keep.length > 0) {
      await this.store.leaseOutputs(
        sessionId,
        `watch.${randomBytes(12).toString('base64url')}`,
        keep.map(serializeOutput),
        1,
      );
    }
    // Before the grid's hold is released, as on the fetch path (task-output.ts).
    if (this.usage) await this.usage.record(sessionFacts(sessionId, rec), reply.outputs);
    this.metrics?.collected(reply.outputs.length);
    // Not awaited: the next fetch cannot get these outputs while they are held, and a lost ack
    // only means the grid hands them out again after the hold (a repeat, never a loss).
    if (reply.deliveryId) {
      void client.call('ackOutputs', { sessionId, deliveryId: reply.deliveryId }).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }
}
