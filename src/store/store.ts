/**
 * Everything a proxy must remember between calls, behind one interface so that a shared
 * store (Redis) can replace the in-process one and let any proxy continue any client's work.
 */
import type { AccountingStore } from './accounting-store';
import type { NotificationStore } from './notification-store';

/** Who schedules a termination: the idle lease, or the resource's client (SetTerminationTime). */
export type TerminationSetter = 'lease' | 'client';

export interface ConnectionRecord {
  cluster: string;
  owner: string;
  application: string;
  /** The ServiceVersion uri it was created at, when an SLA control file is in effect. */
  serviceVersion?: string;
  /** When it was opened (ms since the epoch); records written before it was kept lack it. */
  created?: number;
}

export interface SessionRecord {
  cluster: string;
  owner: string;
  connectionId: string;
  serviceVersion?: string;
  /** The connection's application (records written before it was kept lack it). */
  application?: string;
  /** When it was created or last opened (ms since the epoch). */
  created?: number;
  /** RFC 4514 subject of the certificate that created or opened it (usage records name it). */
  subject?: string;
}

/** A WS-Enumeration context, shared by the farm so that any proxy answers the next Pull. */
export interface EnumerationRecord {
  consumer: string;
  /** The WS-Enumeration namespace the consumer speaks: answers and faults use the same. */
  version: '2004' | '2011';
  /** What is enumerated: a session's task outputs, or the consumer's sessions (a snapshot). */
  source: 'outputs' | 'sessions';
  sessionId?: string;
  sessions?: string[];
  /** An XPath 1.0 filter over each item (sessions only). */
  filter?: { expression: string; namespaces: Record<string, string> };
  /** Epoch ms when the context expires unless renewed. */
  expiresAt: number;
  /** The service version it was started at, when an SLA control file is in effect. */
  serviceVersion?: string;
  /** Where EnumerationEnd goes when the context expires (an allowed EndTo), and in which SOAP version. */
  endTo?: { address: string; ns: string; parameters: string };
  soapVersion?: '1.1' | '1.2';
}

/** An enumeration context as stored, with the number of the last page handed out. */
export interface EnumerationState extends EnumerationRecord {
  /** Pages handed out so far (a context names the page it follows). */
  seq: number;
  /** Bumped when a page came back empty, so that the same page number is fetched afresh. */
  attempt: number;
}

/** One limit taking part in a rate decision. */
export interface RateLimit {
  /** Identifies the counter; the same key on every proxy shares one count. */
  key: string;
  threshold: number;
  intervalMs: number;
  /** fixed: windows aligned to the epoch; moving: the last intervalMs, exactly. */
  intervalType: 'fixed' | 'moving';
  /** false for limits that are only observed (notify): they never cause a refusal. */
  enforce: boolean;
}

export interface RateDecision {
  admitted: boolean;
  /** Per limit, in order: true when it was already at its threshold before this request. */
  over: boolean[];
  /** When refused: milliseconds until every refusing limit would admit one more request. */
  retryAfterMs: number;
}

/** The shared store could not be reached or did not answer in time. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** The replay cache's answer: first sight, a faithful resend (same tag), or a replay. */
export type ClaimResult = 'claimed' | 'resend' | 'taken';

/** What an earlier call with the same client key answered: retries get it again. */
export interface RememberedReply {
  /** Hash of the operation and its arguments: a key reused for a different request is refused. */
  fingerprint: string;
  /** The operation's result, as JSON. */
  reply: string;
}

/** One fetchTaskOutput, as the output leases see it. */
export interface FetchLease {
  sessionId: string;
  /** The previous fetch's token: its outputs are released for good before anything else. */
  acknowledge: string | undefined;
  /** The token this fetch's outputs are leased under. */
  token: string;
  /** 0: not leased, so outputs handed out are forgotten (Symphony's own at-most-once). */
  leaseMs: number;
  /** A leased fetch that acknowledges nothing: every unacknowledged output comes back. */
  reclaimAll: boolean;
  countMax: number;
  /** The fetch's client key: a repeat answers the earlier fetch's lease instead of a new one. */
  repeatKey: string | undefined;
  repeatTtlMs: number;
}

export interface FetchStart {
  /** A repeat of an earlier fetch: token and outputs are that fetch's, and nothing else is taken. */
  repeat: boolean;
  token: string;
  /** Serialized outputs: leases that lapsed and now belong to this fetch, or the repeated lease. */
  outputs: string[];
}

/** An output just collected from the grid, serialized for the store. */
export interface StoredOutput {
  taskId: string;
  data: string;
}

/** Notification subscriptions and pull points (NotificationStore) are shared the same way. */
export interface StateStore extends NotificationStore {
  /** Record claims, monthly usage totals and the summary writer's lease (accounting). */
  readonly accounting: AccountingStore;
  getConnection(id: string): Promise<ConnectionRecord | undefined>;
  putConnection(id: string, rec: ConnectionRecord): Promise<void>;
  deleteConnection(id: string): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  putSession(id: string, rec: SessionRecord): Promise<void>;
  deleteSession(id: string): Promise<void>;
  /**
   * Records `key` with `tag` for `ttlMs`: the WS-Security replay cache, shared by all proxies
   * once the store is. A key already recorded answers 'resend' when its tag is the same (the
   * identical message sent again, e.g. by a load balancer's retry) and 'taken' otherwise.
   */
  claimOnce(key: string, ttlMs: number, tag?: string): Promise<ClaimResult>;
  getReply(key: string): Promise<RememberedReply | undefined>;
  putReply(key: string, rec: RememberedReply, ttlMs: number): Promise<void>;
  /**
   * Starts a fetch atomically: acknowledges the previous lease, answers a repeat from its
   * lease, and hands lapsed leases (or all, for reclaimAll) to this fetch, up to countMax.
   */
  beginFetch(f: FetchLease): Promise<FetchStart>;
  /** Adds outputs just collected from the grid to a lease (or, if a repeat already answered it, to a lapsed one). */
  leaseOutputs(sessionId: string, token: string, outputs: StoredOutput[], leaseMs: number): Promise<void>;
  /** Releases a lease's outputs for good; an unknown token is a no-op. */
  acknowledge(sessionId: string, token: string): Promise<void>;
  /** Forgets a destroyed session's leased outputs. */
  dropOutputs(sessionId: string): Promise<void>;
  /**
   * Keeps the first `keep` outputs of a lease and hands the rest back at once (they go to the
   * next fetch): a page cut short to fit a reply's size bound loses nothing.
   */
  trimLease(sessionId: string, token: string, keep: number): Promise<void>;
  /**
   * Ids of sessions recorded for a consumer, at most `max` (a session closed meanwhile may still
   * be listed: read its record before using it).
   */
  listSessions(owner: string, max: number): Promise<string[]>;
  /** Stores a new enumeration context; it lives until expiresAt (plus a grace) unless renewed. */
  putEnumeration(id: string, rec: EnumerationRecord): Promise<void>;
  getEnumeration(id: string): Promise<EnumerationState | undefined>;
  /** Moves the expiry; false when the context is gone. */
  renewEnumeration(id: string, expiresAt: number): Promise<boolean>;
  /**
   * A Pull after page `after`: 'fresh' when it is the next page (now reserved), 'repeat' when that
   * page was already handed out (a Pull whose reply was lost), 'stale' otherwise; with the
   * context's attempt number.
   */
  advanceEnumeration(
    id: string,
    after: number,
  ): Promise<{ step: 'fresh' | 'repeat' | 'stale'; attempt: number }>;
  /** Page `page` came back empty: the next Pull after page - 1 fetches it afresh. */
  rewindEnumeration(id: string, page: number): Promise<void>;
  deleteEnumeration(id: string): Promise<void>;
  /**
   * Schedules the end of a resource (`session:{id}`, `connection:{id}`) at `atMs`, replacing any
   * earlier schedule or claim on it; null cancels it. The lifetime reaper acts on it when due.
   *
   * `by` says who asks. 'lease' (the idle lease, the default) does nothing to a resource whose
   * client has set its termination time; null from it means the resource has ended, and clears
   * everything. 'client' (WS-ResourceLifetime SetTerminationTime) sets the time and marks it as
   * the client's; null from it removes the client's time (the idle lease may start again) and
   * lets the resource's record live on without an expiry.
   */
  scheduleTermination(key: string, atMs: number | null, by?: TerminationSetter): Promise<void>;
  /** When a resource is scheduled to end, or null (nothing scheduled, or being carried out). */
  terminationOf(key: string): Promise<number | null>;
  /** Whether the resource's client set its termination time (and the idle lease stands aside). */
  terminationSetByClient(key: string): Promise<boolean>;
  /**
   * Hands out up to `max` terminations due at `nowMs`, each claimed for `leaseMs`, so that one
   * proxy of the farm acts on each. A claim not finished within its lease (the proxy that held
   * it died) is handed out again.
   */
  claimTerminations(nowMs: number, leaseMs: number, max: number): Promise<string[]>;
  /** Ends a claim once carried out. A resource scheduled again meanwhile stays scheduled. */
  finishTermination(key: string): Promise<void>;
  /**
   * One atomic decision over all limits: either the request is admitted and counted in every
   * limit, or it is refused and counted in none (refused requests never use up a quota).
   * Rejects with StoreUnavailableError when the store cannot decide.
   */
  admit(limits: RateLimit[]): Promise<RateDecision>;
  close(): Promise<void>;
}
