/**
 * WS-BaseNotification at start-up: what the operations need (bounds, allowed destinations, the
 * publisher), and the two background loops every proxy of the farm runs: the session watcher
 * (grid outputs into the queues) and the dispatcher (queues to consumers).
 */
import type { UsageSink } from '../accounting/sink';
import type { ProxyConfig } from '../config';
import type { GridRouter } from '../backend/grid-router';
import { Destinations } from '../notifications/destinations';
import { NotificationDispatcher, type NotifyWriter } from '../notifications/delivery';
import type { NotificationLimits } from '../notifications/handlers';
import { Notifier } from '../notifications/notifier';
import { SessionWatcher } from '../notifications/watcher';
import type { AuditLog } from '../observability/audit-log';
import type { ProxyMetrics } from '../observability/metrics';
import type { TaskOutputItem } from '../pipeline/operation';
import type { EnvelopeSigner } from '../security/envelope-signer';
import { envelope } from '../soap/envelope';
import type { StateStore } from '../store/store';
import type { Resources } from './resources';

export interface NotificationParts {
  notifier: Notifier;
  limits: NotificationLimits;
  destinations: Destinations;
  /** Ends a subscription or pull point whose time came (the reaper calls it). */
  endExpired(key: string): Promise<string>;
  dispatcher: NotificationDispatcher;
  watcher: SessionWatcher;
}

/** Signed by the proxy's response key (headers included) when it has one; otherwise plain. */
function notifyWriter(signer: EnvelopeSigner | null): NotifyWriter {
  if (signer)
    return (version, body, header, signed) => signer.envelope(version, body, header, Date.now(), signed);
  return (version, body, header, signed) =>
    envelope(
      version,
      body,
      signed
        .map((h) => {
          const prefix = h.qname.slice(0, h.qname.indexOf(':'));
          return `<${h.qname} xmlns:${prefix}="${h.ns}"${h.attrs ?? ''}>${h.content}</${h.qname}>`;
        })
        .join('') + header,
    );
}

export function startNotifications(
  config: ProxyConfig,
  store: StateStore,
  router: GridRouter,
  signer: EnvelopeSigner | null,
  writeOutput: (item: TaskOutputItem) => string,
  metrics: ProxyMetrics,
  audit: AuditLog | null,
  res: Resources,
  usage: UsageSink | null = null,
): NotificationParts {
  const n = config.notifications;
  const notifier = new Notifier(
    store,
    { maxMessages: n.queueMaxMessages },
    {
      published: (queued, dropped) => {
        metrics.notificationsQueued.inc({ result: 'queued' }, queued);
        if (dropped > 0) metrics.notificationsQueued.inc({ result: 'dropped' }, dropped);
        if (queued > 0) dispatcher.wake();
      },
      publishFailed: () => metrics.notificationsQueued.inc({ result: 'failed' }),
    },
  );
  const destinations = new Destinations(n.destinations);
  const dispatcher = new NotificationDispatcher(
    store,
    destinations,
    notifyWriter(signer),
    n.delivery,
    {
      sent: (outcome, messages, ms) => {
        metrics.notificationsSent.inc({ outcome }, messages);
        if (outcome !== 'dead') metrics.notifySeconds.observe(ms / 1000);
      },
    },
    audit ? (r) => audit.write(r) : null,
  );
  const watcher = new SessionWatcher(
    store,
    router,
    notifier,
    writeOutput,
    {
      ...n.watch,
      gridHoldMs: config.reliability.gridHoldMs,
      inlineOutputMaxChars: n.inlineOutputMaxChars,
      pollMs: Math.max(n.delivery.pollMs, 100),
    },
    { collected: (count) => metrics.outputsCollected.inc(count) },
    usage,
  );
  dispatcher.start();
  watcher.start();
  res.add('notification dispatcher', dispatcher, (d) => d.stop());
  res.add('session watcher', watcher, (w) => w.stop());

  async function endExpired(key: string): Promise<string> {
    const colon = key.indexOf(':');
    const id = key.slice(colon + 1);
    const now = Date.now();
    if (key.startsWith('subscription:')) {
      const sub = await store.getSubscription(id);
      if (!sub) return 'gone';
      // Renewed meanwhile on another proxy: its new time is scheduled again.
      if (sub.terminationAt > now) {
        await store.scheduleTermination(key, sub.terminationAt);
        return 'early';
      }
      await store.deleteSubscription(id);
      return 'ended';
    }
    const pp = await store.getPullPoint(id);
    if (!pp) return 'gone';
    if (pp.expiresAt > now) {
      await store.scheduleTermination(key, pp.expiresAt);
      return 'early';
    }
    await store.deletePullPoint(id);
    return 'ended';
  }

  return {
    notifier,
    limits: n,
    destinations,
    endExpired,
    dispatcher,
    watcher,
  };
}
