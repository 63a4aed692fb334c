/**
 * Publishes what happens to sessions and connections into the subscriptions' queues. It never
 * fails the call that caused the event: a store that cannot take the message is logged and
 * counted (the state can still be read with getSessionStatus or the resource properties).
 */
import { log } from '../log';
import type { EndCause } from '../lifetime/lifetimes';
import type { NotificationEvent, QueueCaps } from '../store/notification-store';
import type { StateStore } from '../store/store';
import { sessionStateEvent, terminatedEvent, type SessionState } from './messages';

export interface NotifierMetrics {
  published(queued: number, dropped: number): void;
  publishFailed(): void;
}

export class Notifier {
  constructor(
    private readonly store: StateStore,
    private readonly caps: QueueCaps,
    private readonly metrics: NotifierMetrics | null = null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Queues events for the resource's subscriptions (and, for a session, its connection's). */
  async publish(
    resources: string[],
    events: NotificationEvent[],
    ending = false,
  ): Promise<{ queued: number; dropped: number }> {
    const r = await this.store.publish(resources, events, this.caps, this.now(), ending);
    this.metrics?.published(r.queued, r.dropped);
    return r;
  }

  private async quietly(what: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (e) {
      this.metrics?.publishFailed();
      log.warn(`could not publish a notification (${what}); subscribers will not see it`, {
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  sessionState(sessionId: string, connectionId: string | undefined, state: SessionState): Promise<void> {
    const event = sessionStateEvent(sessionId, state, this.now());
    const resources = [`session:${sessionId}`, ...(connectionId ? [`connection:${connectionId}`] : [])];
    return this.quietly('session state', () => this.publish(resources, [event]));
  }

  /**
   * The session ended: its own subscriptions get Closed (if they asked) and ResourceTerminated
   * (whatever they asked), then end once delivered; its connection's subscribers see it closed.
   */
  sessionEnded(sessionId: string, connectionId: string | undefined, cause: EndCause): Promise<void> {
    const at = this.now();
    const closed = sessionStateEvent(sessionId, 'Closed', at);
    return this.quietly('session ended', async () => {
      await this.publish(
        [`session:${sessionId}`],
        [closed, terminatedEvent('session', sessionId, cause, at)],
        true,
      );
      if (connectionId) await this.publish([`connection:${connectionId}`], [closed]);
    });
  }

  connectionEnded(connectionId: string, cause: EndCause): Promise<void> {
    const event = terminatedEvent('connection', connectionId, cause, this.now());
    return this.quietly('connection ended', () =>
      this.publish([`connection:${connectionId}`], [event], true),
    );
  }
}
