/**
 * What the farm shares about WS-BaseNotification subscriptions and pull points: durable
 * per-subscription queues, delivery claims fenced by an epoch, dead letters, and the watches
 * that move a session's outputs from the grid into those queues.
 *
 * Sequence numbers are per subscription (and per pull point), assigned by the store when a
 * message is queued, so that every proxy numbers the same message the same way and a consumer
 * can drop a repeat by (subscription, seq).
 */

/** A topic filter: Simple matches the topic and its children, Concrete exactly one topic. */
export interface TopicFilter {
  /** Slash-separated local names below the sym topic namespace: `TaskStateChanged/Done`. */
  path: string;
  exact: boolean;
}

/** Where a subscription's messages go. */
export type SubscriptionSink =
  | {
      kind: 'http';
      /** The ConsumerReference Address, checked against the consumer's allowed destinations. */
      address: string;
      /** The ConsumerReference's reference parameters, serialized: echoed as headers on each Notify. */
      parameters: string;
    }
  | { kind: 'pullpoint'; id: string };

export interface SubscriptionRecord {
  /** The subscribing consumer: only it may manage the subscription. */
  consumer: string;
  /** The producer: `session:{id}` or `connection:{id}`. */
  resource: string;
  /** Empty: every topic. */
  topics: TopicFilter[];
  sink: SubscriptionSink;
  soapVersion: '1.1' | '1.2';
  /** Epoch ms. */
  created: number;
  /** Epoch ms when the subscription ends unless renewed. */
  terminationAt: number;
  /** The service base URL its references are written under (…/symphony), the same on every proxy. */
  base: string;
  serviceVersion?: string;
}

/** A subscription as stored, with its delivery counters. */
export interface SubscriptionState extends SubscriptionRecord {
  paused: boolean;
  /** Last sequence number assigned. */
  seq: number;
  /** Last sequence number delivered or dead-lettered: the queue holds seq > acked. */
  acked: number;
  /** Failed attempts at the head batch. */
  attempts: number;
  /** Messages dropped because the queue was full, since the last delivered Notify. */
  dropped: number;
  /** The producer ended: the subscription ends once its queue is drained. */
  ending: boolean;
}

/** A message as the producer publishes it (the sequence number is the store's). */
export interface NotificationEvent {
  /** Topic path, as in TopicFilter. */
  topic: string;
  /** Epoch ms when the event happened. */
  at: number;
  /** The wsnt:Message child, serialized, with its namespace declarations. */
  xml: string;
  /** Delivered to every subscription of the resource whatever its filter (ResourceTerminated). */
  always?: boolean;
}

export interface QueuedMessage {
  seq: number;
  topic: string;
  at: number;
  xml: string;
}

/** A pull point's message: it keeps the subscription it came through and that subscription's seq. */
export interface PulledMessage extends QueuedMessage {
  subscription: string;
  /** The subscription's own sequence number (QueuedMessage.seq is the pull point's). */
  subscriptionSeq: number;
}

export interface PublishResult {
  /** Messages queued (one per matching subscription and event). */
  queued: number;
  /** Messages dropped because a queue was full. */
  dropped: number;
}

/** The outcome of one delivery attempt, written only by the claim holder (checked by epoch). */
export type DeliveryOutcome =
  /** Messages up to `upto` reached the consumer. */
  | { kind: 'delivered'; upto: number }
  /** The attempt failed: try again at `atMs`. */
  | { kind: 'retry'; attempts: number; atMs: number }
  /** Given up on messages up to `upto`: they move to the dead letters. */
  | { kind: 'dead'; upto: number; reason: string; attempts: number };

export interface SettleResult {
  /** 'fenced': another proxy holds the subscription now; 'gone': it was removed meanwhile. */
  status: 'ok' | 'fenced' | 'gone';
  /** More messages wait and the claim is still ours (renewed): send the next batch now. */
  more: boolean;
}

export interface DeadLetter {
  subscription: string;
  consumer: string;
  seq: number;
  topic: string;
  /** When the event happened, and when it was given up on. */
  at: number;
  deadAt: number;
  attempts: number;
  reason: string;
}

export interface PullPointRecord {
  consumer: string;
  created: number;
  /** Epoch ms when it ends unless used (every GetMessages renews it). */
  expiresAt: number;
  base: string;
  serviceVersion?: string;
}

export interface PullPointState extends PullPointRecord {
  /** Last pull-point sequence number assigned, and the last acknowledged. */
  seq: number;
  acked: number;
  /** Last sequence number handed out and not yet acknowledged (acked when none). */
  outstanding: number;
  dropped: number;
}

/** One GetMessages: acknowledge, then hand out the next batch. */
export interface GetMessagesRequest {
  /**
   * 'implicit': the outstanding batch is acknowledged (a plain WS-BaseNotification client);
   * a number: everything up to it is (a client that echoes sym:Ack; a repeat gets the same batch).
   */
  ack: 'implicit' | number;
  max: number;
  /** The new expiry of the pull point. */
  expiresAt: number;
}

export interface GetMessagesResult {
  /** 'beyond': the ack names messages never handed out; nothing was changed. */
  status: 'ok' | 'gone' | 'beyond';
  messages: PulledMessage[];
  dropped: number;
}

/** Queue bounds: a full queue drops new messages (counted) rather than grow without end. */
export interface QueueCaps {
  maxMessages: number;
}

export interface NotificationStore {
  /** Creates a subscription, indexed by its resource and consumer. */
  putSubscription(id: string, rec: SubscriptionRecord): Promise<void>;
  getSubscription(id: string): Promise<SubscriptionState | undefined>;
  /** false when the subscription is gone. */
  renewSubscription(id: string, terminationAt: number): Promise<boolean>;
  /** Pausing stops delivery (messages still queue); resuming makes it due now. false when gone. */
  setSubscriptionPaused(id: string, paused: boolean, nowMs: number): Promise<boolean>;
  /** Removes the subscription and its queue (dead letters stay). false when it was not there. */
  deleteSubscription(id: string): Promise<boolean>;
  /** Subscriptions of a producer resource (`session:{id}`). */
  subscriptionsOf(resource: string): Promise<string[]>;
  countSubscriptions(consumer: string): Promise<number>;
  /**
   * Queues each event for every subscription of the resources whose filter matches, atomically
   * per call, assigning sequence numbers. Subscriptions whose producer has ended take nothing more.
   * With `ending`, the subscriptions of the first resource are marked to end once drained.
   */
  publish(
    resources: string[],
    events: NotificationEvent[],
    caps: QueueCaps,
    nowMs: number,
    ending?: boolean,
  ): Promise<PublishResult>;
  /**
   * Hands out up to `max` subscriptions with messages due at `nowMs`, each claimed for `leaseMs`
   * under a new epoch. A claim not settled or renewed within its lease is handed out again.
   */
  claimDeliveries(nowMs: number, leaseMs: number, max: number): Promise<{ id: string; epoch: number }[]>;
  /** The oldest queued messages (seq > acked), at most `max`. */
  peekQueue(id: string, max: number): Promise<QueuedMessage[]>;
  /** Records an attempt's outcome if `epoch` still holds the claim. */
  settleDelivery(
    id: string,
    epoch: number,
    outcome: DeliveryOutcome,
    nowMs: number,
    leaseMs: number,
  ): Promise<SettleResult>;
  /** The newest dead letters, at most `max`, newest first. */
  listDeadLetters(max: number): Promise<DeadLetter[]>;

  putPullPoint(id: string, rec: PullPointRecord): Promise<void>;
  getPullPoint(id: string): Promise<PullPointState | undefined>;
  getMessages(id: string, req: GetMessagesRequest): Promise<GetMessagesResult>;
  /** Removes the pull point, its queue and the subscriptions that feed it. false when it was not there. */
  deletePullPoint(id: string): Promise<boolean>;
  countPullPoints(consumer: string): Promise<number>;

  /** Starts (true) or stops (false) watching a session's grid outputs for its subscriptions. */
  setWatch(sessionId: string, watch: boolean): Promise<void>;
  /** Hands out up to `max` watched sessions nobody holds, each for `leaseMs`. */
  claimWatches(nowMs: number, leaseMs: number, max: number): Promise<string[]>;
  /** Extends a watch this proxy holds; false when it is no longer watched. */
  renewWatch(sessionId: string, nowMs: number, leaseMs: number): Promise<boolean>;
}
