/**
 * WS-BaseNotification operations: Subscribe at a session or connection, the subscription
 * manager (Renew, Unsubscribe, Pause, Resume), and pull points (CreatePullPoint, GetMessages,
 * DestroyPullPoint).
 *
 * Subscriptions and pull points belong to the consumer that made them. Another consumer's id
 * gets ResourceUnknownFault, as an unknown one does, so ids are not confirmed to strangers.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler } from '../pipeline/operation';
import { addressedResource } from '../resources/address';
import { addDuration, parseDateTime } from '../soap/xs-time';
import { endpointUrl, type PublicAddress } from '../server/endpoint-url';
import type { ConnectionRecord, SessionRecord, StateStore } from '../store/store';
import type { SubscriptionSink, TopicFilter } from '../store/notification-store';
import type { Lifetimes } from '../lifetime/lifetimes';
import { ownedConnection, ownedSession } from '../operations/ownership';
import type { GetMessagesAnswer, RenewAnswer, SubscribeAnswer } from './codecs';
import type { Destinations } from './destinations';
import { notificationMessage } from './messages';
import { checkTopicFor, wantsTaskEvents } from './topics';

export interface NotificationLimits {
  defaultSubscriptionMs: number;
  maxSubscriptionMs: number;
  maxSubscriptionsPerConsumer: number;
  maxPullPointsPerConsumer: number;
  pullPointIdleMs: number;
  maxMessagesPerPull: number;
  queueMaxMessages: number;
}

export interface NotificationDeps {
  store: StateStore;
  lifetimes: Lifetimes;
  destinations: Destinations;
  limits: NotificationLimits;
  publicAddress?: PublicAddress;
  now?: () => number;
}

/** Schedule keys: the reaper ends subscriptions and idle pull points when they come due. */
export const subscriptionKey = (id: string): string => `subscription:${id}`;
export const pullPointKey = (id: string): string => `pullpoint:${id}`;

type RequestedTime = { kind: 'infinite' } | { kind: 'time' | 'duration'; text: string };

interface SubscribeArgs {
  consumer: { address: string; parameters: string };
  topics: TopicFilter[];
  initial?: RequestedTime;
}

const ID = /^[A-Za-z0-9_-]{22}$/;

function newId(): string {
  return randomBytes(16).toString('base64url');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The service's base URL (…/symphony), the same on every proxy when server.publicUrl is set. */
function serviceBase(ctx: ResolvedCall, at: PublicAddress | undefined): string {
  return endpointUrl(ctx.req, ctx.path, at ?? { path: ctx.path, tls: false }).replace(/\/$/, '');
}

function unknown(kind: 'subscription' | 'pull point', id: string): GatewayError {
  return new GatewayError('SSP_SUBSCRIPTION_UNKNOWN', `${kind} ${id.slice(0, 40)} is unknown or has ended`);
}

/** The id the address (or, failing that, a reference-parameter header) names. */
function addressedId(ctx: ResolvedCall, kind: 'subscription' | 'pullpoint'): string {
  const label = kind === 'subscription' ? 'subscription' : 'pull point';
  if (ctx.resource?.kind !== kind || ctx.resource.id === undefined) {
    const segment = kind === 'subscription' ? 'subscriptions' : 'pullpoints';
    throw new GatewayError(
      'SSP_SUBSCRIPTION_UNKNOWN',
      `no ${label} is addressed; send the request to the Address of its endpoint reference (…/${segment}/{id})`,
    );
  }
  return ctx.resource.id;
}

/**
 * When a requested end is granted: nil and anything beyond the maximum get the maximum, absent
 * gets the default; a time in the past (or an unreadable one) is refused with `code`.
 */
function grantedEnd(
  requested: RequestedTime | undefined,
  limits: NotificationLimits,
  now: number,
  code: 'SSP_INITIAL_TERMINATION_INVALID' | 'SSP_RENEW_TERMINATION_INVALID',
): number {
  const max = now + limits.maxSubscriptionMs;
  if (!requested) return Math.min(now + limits.defaultSubscriptionMs, max);
  if (requested.kind === 'infinite') return max;
  let at: number;
  try {
    at =
      requested.kind === 'time'
        ? parseDateTime(requested.text, 'TerminationTime')
        : addDuration(now, requested.text, 'TerminationTime');
  } catch (e) {
    throw new GatewayError(code, e instanceof Error ? e.message : String(e), {
      faultExtension: `<wsnt:MinimumTime>${iso(now + 1000)}</wsnt:MinimumTime><wsnt:MaximumTime>${iso(max)}</wsnt:MaximumTime>`,
    });
  }
  if (at <= now) {
    throw new GatewayError(code, `the termination time ${iso(at)} is not in the future`, {
      faultExtension: `<wsnt:MinimumTime>${iso(now + 1000)}</wsnt:MinimumTime><wsnt:MaximumTime>${iso(max)}</wsnt:MaximumTime>`,
    });
  }
  return Math.min(at, max);
}

export interface NotificationHandlers {
  Subscribe: Handler<SubscribeArgs, SubscribeAnswer>;
  Renew: Handler<{ termination: RequestedTime }, RenewAnswer>;
  Unsubscribe: Handler<Record<string, never>, Record<string, never>>;
  PauseSubscription: Handler<Record<string, never>, Record<string, never>>;
  ResumeSubscription: Handler<Record<string, never>, Record<string, never>>;
  CreatePullPoint: Handler<Record<string, never>, { address: string; id: string }>;
  GetMessages: Handler<{ max?: number; ack?: number }, GetMessagesAnswer>;
  DestroyPullPoint: Handler<Record<string, never>, Record<string, never>>;
}

export function notificationHandlers(deps: NotificationDeps): NotificationHandlers {
  const { store, limits } = deps;
  const now = deps.now ?? Date.now;

  /** The subscription the call addresses, if it is the caller's. */
  async function ownSubscription(ctx: ResolvedCall): Promise<string> {
    const id = addressedId(ctx, 'subscription');
    const sub = ID.test(id) ? await store.getSubscription(id) : undefined;
    if (!sub || sub.consumer !== ctx.consumer.id) throw unknown('subscription', id);
    return id;
  }

  async function ownPullPoint(ctx: ResolvedCall): Promise<string> {
    const id = addressedId(ctx, 'pullpoint');
    const pp = ID.test(id) ? await store.getPullPoint(id) : undefined;
    if (!pp || pp.consumer !== ctx.consumer.id) throw unknown('pull point', id);
    return id;
  }

  /** One of the caller's own pull points, named by its address: messages then stay in the store. */
  async function pullPointSink(ctx: ResolvedCall, address: string): Promise<SubscriptionSink | null> {
    let path: string;
    try {
      path = new URL(address).pathname;
    } catch {
      return null;
    }
    const m = /^(.*)\/pullpoints\/([^/]+)$/.exec(path);
    if (!m || m[1] !== ctx.path) return null;
    const id = decodeURIComponent(m[2]!);
    const pp = ID.test(id) ? await store.getPullPoint(id) : undefined;
    if (!pp) return null;
    if (pp.consumer !== ctx.consumer.id)
      throw new GatewayError(
        'SSP_CONSUMER_REFUSED',
        'the ConsumerReference names a pull point that is not yours',
      );
    return { kind: 'pullpoint', id };
  }

  return {
    async Subscribe(args, ctx) {
      const resource = addressedResource(ctx);
      let rec: SessionRecord | ConnectionRecord;
      if (resource.kind === 'session') rec = await ownedSession(deps, ctx, resource.id);
      else rec = await ownedConnection(deps, ctx, resource.id);
      for (const t of args.topics) checkTopicFor(t, resource.kind);
      const sink: SubscriptionSink = (await pullPointSink(ctx, args.consumer.address)) ?? {
        kind: 'http',
        address: deps.destinations.check(ctx.consumer.id, args.consumer.address).toString(),
        parameters: args.consumer.parameters,
      };
      const t = now();
      const terminationAt = grantedEnd(args.initial, limits, t, 'SSP_INITIAL_TERMINATION_INVALID');
      if ((await store.countSubscriptions(ctx.consumer.id)) >= limits.maxSubscriptionsPerConsumer) {
        throw new GatewayError(
          'SSP_SUBSCRIPTION_QUOTA',
          `at most ${limits.maxSubscriptionsPerConsumer} subscriptions per consumer`,
        );
      }
      const id = newId();
      const base = serviceBase(ctx, deps.publicAddress);
      await store.putSubscription(id, {
        consumer: ctx.consumer.id,
        resource: `${resource.kind}:${resource.id}`,
        topics: args.topics,
        sink,
        soapVersion: ctx.soapVersion,
        created: t,
        terminationAt,
        base,
        ...(rec.serviceVersion !== undefined ? { serviceVersion: rec.serviceVersion } : {}),
      });
      await store.scheduleTermination(subscriptionKey(id), terminationAt);
      if (resource.kind === 'session' && wantsTaskEvents(args.topics))
        await store.setWatch(resource.id, true);
      return {
        address: `${base}/subscriptions/${id}`,
        id,
        currentTime: iso(t),
        terminationTime: iso(terminationAt),
      };
    },

    async Renew(args, ctx) {
      const id = await ownSubscription(ctx);
      const t = now();
      const at = grantedEnd(args.termination, limits, t, 'SSP_RENEW_TERMINATION_INVALID');
      if (!(await store.renewSubscription(id, at))) throw unknown('subscription', id);
      await store.scheduleTermination(subscriptionKey(id), at);
      return { terminationTime: iso(at), currentTime: iso(t) };
    },

    async Unsubscribe(_args, ctx) {
      const id = await ownSubscription(ctx);
      await store.deleteSubscription(id);
      await store.scheduleTermination(subscriptionKey(id), null);
      return {};
    },

    async PauseSubscription(_args, ctx) {
      const id = await ownSubscription(ctx);
      if (!(await store.setSubscriptionPaused(id, true, now()))) throw unknown('subscription', id);
      return {};
    },

    async ResumeSubscription(_args, ctx) {
      const id = await ownSubscription(ctx);
      if (!(await store.setSubscriptionPaused(id, false, now()))) throw unknown('subscription', id);
      return {};
    },

    async CreatePullPoint(_args, ctx) {
      if (ctx.resource && !(ctx.resource.kind === 'pullpoint' && ctx.resource.id === undefined)) {
        throw new GatewayError('SSP_SUBSCRIPTION_UNKNOWN', 'send CreatePullPoint to …/pullpoints');
      }
      if ((await store.countPullPoints(ctx.consumer.id)) >= limits.maxPullPointsPerConsumer) {
        throw new GatewayError(
          'SSP_SUBSCRIPTION_QUOTA',
          `at most ${limits.maxPullPointsPerConsumer} pull points per consumer`,
          { detail: 'wsnt:UnableToCreatePullPointFault' },
        );
      }
      const id = newId();
      const t = now();
      const base = serviceBase(ctx, deps.publicAddress);
      const expiresAt = t + limits.pullPointIdleMs;
      await store.putPullPoint(id, {
        consumer: ctx.consumer.id,
        created: t,
        expiresAt,
        base,
        ...(ctx.policy ? { serviceVersion: ctx.policy.version.version.uri } : {}),
      });
      await store.scheduleTermination(pullPointKey(id), expiresAt);
      return { address: `${base}/pullpoints/${id}`, id };
    },

    async GetMessages(args, ctx) {
      const id = await ownPullPoint(ctx);
      const max = Math.min(args.max ?? limits.maxMessagesPerPull, limits.maxMessagesPerPull);
      const expiresAt = now() + limits.pullPointIdleMs;
      const r = await store.getMessages(id, {
        ack: args.ack ?? 'implicit',
        max,
        expiresAt,
      });
      if (r.status === 'gone') throw unknown('pull point', id);
      if (r.status === 'beyond')
        throw new GatewayError(
          'SSP_GET_MESSAGES_REFUSED',
          `sym:Ack ${args.ack} is beyond the last message handed out`,
        );
      await store.scheduleTermination(pullPointKey(id), expiresAt);
      const base = serviceBase(ctx, deps.publicAddress);
      const subs = new Map<string, string | undefined>();
      const messages: string[] = [];
      for (const m of r.messages) {
        if (!subs.has(m.subscription))
          subs.set(m.subscription, (await store.getSubscription(m.subscription))?.resource);
        // A subscription that ended meanwhile no longer names its producer (which is optional).
        const resource = subs.get(m.subscription);
        messages.push(notificationMessage(base, m.subscription, resource, m, m.subscriptionSeq));
      }
      const first = r.messages[0];
      const last = r.messages[r.messages.length - 1];
      return {
        messages,
        dropped: r.dropped,
        ...(first && last ? { batch: { first: first.seq, last: last.seq } } : {}),
      };
    },

    async DestroyPullPoint(_args, ctx) {
      const id = await ownPullPoint(ctx);
      await store.deletePullPoint(id);
      await store.scheduleTermination(pullPointKey(id), null);
      return {};
    },
  };
}
