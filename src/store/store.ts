/**
 * Everything a proxy must remember between calls, behind one interface so that a shared
 * store (Redis) can replace the in-process one and let any proxy continue any client's work.
 */
export interface ConnectionRecord {
  cluster: string;
  owner: string;
  application: string;
  /** The ServiceVersion uri it was created at, when an SLA control file is in effect. */
  serviceVersion?: string;
}

export interface SessionRecord {
  cluster: string;
  owner: string;
  connectionId: string;
  serviceVersion?: string;
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

export interface StateStore {
  getConnection(id: string): Promise<ConnectionRecord | undefined>;
  putConnection(id: string, rec: ConnectionRecord): Promise<void>;
  deleteConnection(id: string): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  putSession(id: string, rec: SessionRecord): Promise<void>;
  deleteSession(id: string): Promise<void>;
  /**
   * Records `key` for `ttlMs` and resolves true, or resolves false when it is already
   * recorded: the WS-Security replay cache, shared by all proxies once the store is.
   */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  /**
   * One atomic decision over all limits: either the request is admitted and counted in every
   * limit, or it is refused and counted in none (refused requests never use up a quota).
   * Rejects with StoreUnavailableError when the store cannot decide.
   */
  admit(limits: RateLimit[]): Promise<RateDecision>;
  close(): Promise<void>;
}
