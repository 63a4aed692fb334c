/**
 * The shared store: records, the replay cache and rate counters in one Redis, so that any
 * proxy can continue any client's work and limits count exactly across proxies.
 *
 * It fails fast: with Redis unreachable every call rejects with StoreUnavailableError within
 * about commandTimeoutMs (nothing is queued), while reconnection goes on in the background.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { log } from '../log';
import {
  ACKNOWLEDGE_SCRIPT,
  ADMIT_SCRIPT,
  BEGIN_FETCH_SCRIPT,
  ADVANCE_ENUMERATION_SCRIPT,
  CLAIM_TERMINATIONS_SCRIPT,
  REWIND_ENUMERATION_SCRIPT,
  TRIM_LEASE_SCRIPT,
  LEASE_OUTPUTS_SCRIPT,
  SCHEDULE_TERMINATION_SCRIPT,
} from './redis-scripts';
import { RedisAccounting } from './redis-accounting';
import { RedisNotifications } from './redis-notifications';
import { DelegatedNotifications } from './notification-delegation';
import {
  StoreUnavailableError,
  type ClaimResult,
  type ConnectionRecord,
  type FetchLease,
  type FetchStart,
  type RateDecision,
  type RateLimit,
  type RememberedReply,
  type SessionRecord,
  type StateStore,
  type StoredOutput,
  TerminationSetter,
  EnumerationRecord,
  EnumerationState,
} from './store';

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL; it may carry a password, so it is never logged. */
  url: string;
  keyPrefix: string;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  /** How long a session's unacknowledged outputs are kept after their last change. */
  outputRetentionMs?: number;
  /** Redis Sentinel: ask these for the primary of masterName instead of connecting to url's host. */
  sentinels?: { host: string; port: number }[];
  masterName?: string;
}

/** The commands ioredis adds for our scripts (EVALSHA, falling back to EVAL after a restart). */
interface ScriptCommands {
  sspAdmit(numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  sspBeginFetch(numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Two keys, fixed: the session's lease and output hashes. */
  sspLeaseOutputs(...keysAndArgs: string[]): Promise<unknown>;
  sspAcknowledge(...keysAndArgs: string[]): Promise<unknown>;
  /** Four keys, fixed: the due and claimed termination zsets, the resource's record, the client-set hash. */
  sspScheduleTermination(...keysAndArgs: string[]): Promise<unknown>;
  sspClaimTerminations(...keysAndArgs: string[]): Promise<unknown>;
  /** One key each: the lease hash; the enumeration context hash (twice). */
  sspTrimLease(...keysAndArgs: string[]): Promise<unknown>;
  sspAdvanceEnumeration(...keysAndArgs: string[]): Promise<unknown>;
  sspRewindEnumeration(...keysAndArgs: string[]): Promise<unknown>;
}

const DEFAULT_OUTPUT_RETENTION_MS = 24 * 3600_000;
/** See MemoryStore: a context outlives its expiry by this much, so the handler's check decides. */
const ENUMERATION_GRACE_MS = 60_000;
/**
 * Connection and session records never change once written (a close deletes them), so a
 * proxy may keep what it read for a while: a record deleted by another proxy is then still
 * used here for at most this long, and the grid refuses the closed id anyway.
 */
const RECORD_CACHE_MS = 5000;
const RECORD_CACHE_MAX = 10000;

/**
 * A record outlives its scheduled termination by this much, so that the reaper still finds it
 * after an outage of every proxy; past it the record goes by itself, and the store never keeps
 * a resource that nothing will end.
 */
const RECORD_GRACE_MS = 24 * 3600_000;

const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2000;

/** host:port of a Redis URL, without credentials, for messages and logs. */
export function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}`;
  } catch {
    return '(unparsable Redis URL)';
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function clientOptions(opts: RedisStoreOptions): RedisOptions {
  return {
    // Nothing waits for a connection that may not come back: callers decide (fail open/closed).
    enableOfflineQueue: false,
    // Commands issued in the same tick by concurrent requests go out in one write: at 30+
    // calls in flight this halves the CPU each store round trip costs on both sides.
    enableAutoPipelining: true,
    // 0: a command in flight when the connection drops fails at once. A resent admit whose
    // first reply was lost could be counted twice, so unanswered commands are never resent.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: opts.connectTimeoutMs,
    retryStrategy: (attempt) => {
      const backoff = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 10));
      // Jitter keeps many proxies from reconnecting in lockstep after an outage.
      return Math.round(backoff * (0.8 + 0.4 * Math.random()));
    },
  };
}

/** A small read cache of immutable records, oldest dropped first. */
class RecordCache<T> {
  private readonly entries = new Map<string, { rec: T; until: number }>();

  get(id: string): T | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (e.until > Date.now()) return e.rec;
    this.entries.delete(id);
    return undefined;
  }

  set(id: string, rec: T): void {
    if (this.entries.size >= RECORD_CACHE_MAX) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(id, { rec, until: Date.now() + RECORD_CACHE_MS });
  }

  delete(id: string): void {
    this.entries.delete(id);
  }
}

/** Credentials and database from the URL; the primary's address from the sentinels. */
function sentinelOptions(opts: RedisStoreOptions, sentinels: { host: string; port: number }[]): RedisOptions {
  const u = new URL(opts.url);
  const db = Number(u.pathname.slice(1) || '0');
  return {
    ...clientOptions(opts),
    sentinels,
    name: opts.masterName ?? 'mymaster',
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) ? { db } : {}),
  };
}

export class RedisStore extends DelegatedNotifications implements StateStore {
  private readonly scripts: ScriptCommands;
  private readonly connections = new RecordCache<ConnectionRecord>();
  private readonly sessions = new RecordCache<SessionRecord>();
  private wasReady = true;
  private closing = false;
  private lastError: unknown;
  /** Subscriptions, pull points and watches: the same client, prefix and error mapping. */
  protected readonly notifications: RedisNotifications;
  readonly accounting: RedisAccounting;

  private constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly where: string,
    private readonly retainMs: number,
  ) {
    super();
    client.defineCommand('sspAdmit', { lua: ADMIT_SCRIPT });
    client.defineCommand('sspBeginFetch', { lua: BEGIN_FETCH_SCRIPT });
    client.defineCommand('sspLeaseOutputs', { lua: LEASE_OUTPUTS_SCRIPT, numberOfKeys: 2 });
    client.defineCommand('sspAcknowledge', { lua: ACKNOWLEDGE_SCRIPT, numberOfKeys: 2 });
    client.defineCommand('sspScheduleTermination', { lua: SCHEDULE_TERMINATION_SCRIPT, numberOfKeys: 4 });
    client.defineCommand('sspClaimTerminations', { lua: CLAIM_TERMINATIONS_SCRIPT, numberOfKeys: 2 });
    client.defineCommand('sspTrimLease', { lua: TRIM_LEASE_SCRIPT, numberOfKeys: 1 });
    client.defineCommand('sspAdvanceEnumeration', { lua: ADVANCE_ENUMERATION_SCRIPT, numberOfKeys: 1 });
    client.defineCommand('sspRewindEnumeration', { lua: REWIND_ENUMERATION_SCRIPT, numberOfKeys: 1 });
    this.scripts = client as unknown as ScriptCommands;
    this.notifications = new RedisNotifications(client, prefix, this.call.bind(this), where);
    this.accounting = new RedisAccounting(client, prefix, this.call.bind(this));
    client.on('error', (e: unknown) => {
      this.lastError = e;
    });
    client.on('close', () => {
      if (!this.wasReady || this.closing) return;
      this.wasReady = false;
      log.warn('Redis store connection lost; reconnecting in the background', {
        redis: this.where,
        error: this.lastError === undefined ? undefined : message(this.lastError),
      });
    });
    client.on('ready', () => {
      if (this.wasReady) return;
      this.wasReady = true;
      this.lastError = undefined;
      log.info('Redis store reconnected', { redis: this.where });
    });
  }

  /** Connects and waits for Redis to be ready, retrying within connectTimeoutMs. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const sentinels = opts.sentinels ?? [];
    const where =
      sentinels.length > 0
        ? `sentinel ${opts.masterName ?? 'mymaster'} via ${sentinels.map((x) => `${x.host}:${x.port}`).join(',')}`
        : redisAddress(opts.url);
    const client =
      sentinels.length > 0
        ? new Redis(sentinelOptions(opts, sentinels))
        : new Redis(opts.url, clientOptions(opts));
    let lastError: unknown;
    const onError = (e: unknown): void => {
      lastError = e;
    };
    client.on('error', onError);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          client.off('ready', onReady);
          const why = lastError === undefined ? 'no answer' : message(lastError);
          reject(
            new StoreUnavailableError(
              `Redis store at ${where} not reachable within ${opts.connectTimeoutMs} ms: ${why}`,
              { cause: lastError },
            ),
          );
        }, opts.connectTimeoutMs);
        const onReady = (): void => {
          clearTimeout(timer);
          resolve();
        };
        client.once('ready', onReady);
      });
    } catch (e) {
      client.disconnect();
      throw e;
    } finally {
      client.off('error', onError);
    }
    log.info('Redis store connected', { redis: where, keyPrefix: opts.keyPrefix });
    return new RedisStore(
      client,
      opts.keyPrefix,
      where,
      opts.outputRetentionMs ?? DEFAULT_OUTPUT_RETENTION_MS,
    );
  }

  /** True while the connection is up and ready for commands. */
  get connected(): boolean {
    return this.client.status === 'ready';
  }

  /** For readiness probes: never throws. */
  async ping(): Promise<boolean> {
    try {
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async getConnection(id: string): Promise<ConnectionRecord | undefined> {
    const cached = this.connections.get(id);
    if (cached) return cached;
    const raw = await this.call('GET connection', () => this.client.get(`${this.prefix}conn:${id}`));
    if (raw === null) return undefined;
    const rec = parseRecord<ConnectionRecord>(raw, ['cluster', 'owner', 'application']);
    this.connections.set(id, rec);
    return rec;
  }
  async putConnection(id: string, rec: ConnectionRecord): Promise<void> {
    await this.call('SET connection', () => this.client.set(`${this.prefix}conn:${id}`, JSON.stringify(rec)));
  }
  async deleteConnection(id: string): Promise<void> {
    this.connections.delete(id);
    await this.call('DEL connection', () => this.client.del(`${this.prefix}conn:${id}`));
  }
  async getSession(id: string): Promise<SessionRecord | undefined> {
    const cached = this.sessions.get(id);
    if (cached) return cached;
    const raw = await this.call('GET session', () => this.client.get(`${this.prefix}sess:${id}`));
    if (raw === null) return undefined;
    const rec = parseRecord<SessionRecord>(raw, ['cluster', 'owner', 'connectionId']);
    this.sessions.set(id, rec);
    return rec;
  }
  async putSession(id: string, rec: SessionRecord): Promise<void> {
    // openSession may rewrite a record (a new connection): what this proxy cached is stale.
    this.sessions.delete(id);
    await this.call('SET session', () =>
      this.client
        .multi()
        .set(`${this.prefix}sess:${id}`, JSON.stringify(rec))
        // The consumer's sessions, for enumeration; members whose record is gone are skipped on read.
        .sadd(this.ownerSessionsKey(rec.owner), id)
        .pexpire(this.ownerSessionsKey(rec.owner), DEFAULT_OUTPUT_RETENTION_MS)
        .exec(),
    );
  }
  async deleteSession(id: string): Promise<void> {
    this.sessions.delete(id);
    await this.call('DEL session', () => this.client.del(`${this.prefix}sess:${id}`));
  }

  async claimOnce(key: string, ttlMs: number, tag = ''): Promise<ClaimResult> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const k = `${this.prefix}claim:${key}`;
    // The value is the tag, so that a faithful resend can be told from a replay. The second
    // round trip is only paid by resends and replays.
    const r = await this.call('claim', () =>
      this.client.set(k, tag === '' ? '-' : `=${tag}`, 'PX', ttl, 'NX'),
    );
    if (r === 'OK') return 'claimed';
    const prev = await this.call('claim', () => this.client.get(k));
    return prev === (tag === '' ? '-' : `=${tag}`) ? 'resend' : 'taken';
  }

  async getReply(key: string): Promise<RememberedReply | undefined> {
    const raw = await this.call('GET reply', () => this.client.get(`${this.prefix}reply:${key}`));
    return raw === null ? undefined : parseRecord<RememberedReply>(raw, ['fingerprint', 'reply']);
  }
  async putReply(key: string, rec: RememberedReply, ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    await this.call('SET reply', () =>
      this.client.set(`${this.prefix}reply:${key}`, JSON.stringify(rec), 'PX', ttl),
    );
  }

  async beginFetch(f: FetchLease): Promise<FetchStart> {
    const keys = this.leaseKeys(f.sessionId);
    if (f.repeatKey !== undefined) keys.push(`${this.prefix}fetch:${f.repeatKey}`);
    const reply = await this.call('begin fetch', () =>
      this.scripts.sspBeginFetch(
        keys.length,
        ...keys,
        f.acknowledge ?? '',
        f.token,
        String(Math.max(0, Math.ceil(f.leaseMs))),
        f.reclaimAll ? '1' : '0',
        String(f.countMax),
        String(Math.max(1, Math.ceil(f.repeatTtlMs))),
        String(this.retainMs),
      ),
    );
    if (!Array.isArray(reply) || reply.length < 2 || !reply.slice(1).every((v) => typeof v === 'string')) {
      throw new StoreUnavailableError(`Redis store at ${this.where}: unexpected begin-fetch reply`);
    }
    const [repeat, token, ...outputs] = reply as [number, string, ...string[]];
    return { repeat: repeat === 1, token, outputs };
  }

  async leaseOutputs(
    sessionId: string,
    token: string,
    outputs: StoredOutput[],
    leaseMs: number,
  ): Promise<void> {
    const args: string[] = [token, String(Math.max(1, Math.ceil(leaseMs))), String(this.retainMs)];
    for (const o of outputs) args.push(o.taskId, o.data);
    await this.call('lease outputs', () =>
      this.scripts.sspLeaseOutputs(...this.leaseKeys(sessionId), ...args),
    );
  }

  async acknowledge(sessionId: string, token: string): Promise<void> {
    await this.call('acknowledge', () => this.scripts.sspAcknowledge(...this.leaseKeys(sessionId), token));
  }

  private ownerSessionsKey(owner: string): string {
    return `${this.prefix}owner-sessions:${owner}`;
  }

  async listSessions(owner: string, max: number): Promise<string[]> {
    const key = this.ownerSessionsKey(owner);
    const live: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.call('list sessions', () =>
        this.client.sscan(key, cursor, 'COUNT', 500),
      );
      cursor = next;
      if (batch.length === 0) continue;
      const recs = await this.call('list sessions', () =>
        this.client.mget(...batch.map((id) => `${this.prefix}sess:${id}`)),
      );
      const stale: string[] = [];
      batch.forEach((id, i) => {
        const raw = recs[i];
        // Gone, or recorded again for another consumer: not this consumer's any more.
        const owned = raw ? (JSON.parse(raw) as { owner?: unknown }).owner === owner : false;
        if (!owned) stale.push(id);
        else if (live.length < max) live.push(id);
      });
      if (stale.length > 0) await this.call('list sessions', () => this.client.srem(key, ...stale));
    } while (cursor !== '0' && live.length < max);
    return live;
  }

  async trimLease(sessionId: string, token: string, keep: number): Promise<void> {
    await this.call('trim lease', () =>
      this.scripts.sspTrimLease(this.leaseKeys(sessionId)[0]!, token, String(Math.max(0, Math.floor(keep)))),
    );
  }

  private enumKey(id: string): string {
    return `${this.prefix}enum:${id}`;
  }

  async putEnumeration(id: string, rec: EnumerationRecord): Promise<void> {
    const k = this.enumKey(id);
    await this.call('put enumeration', () =>
      this.client
        .multi()
        .hset(k, 'rec', JSON.stringify(rec), 'exp', String(rec.expiresAt), 'seq', '0', 'attempt', '0')
        .pexpireat(k, rec.expiresAt + ENUMERATION_GRACE_MS)
        .exec(),
    );
  }

  async getEnumeration(id: string): Promise<EnumerationState | undefined> {
    const v = await this.call('get enumeration', () =>
      this.client.hmget(this.enumKey(id), 'rec', 'exp', 'seq', 'attempt'),
    );
    const [rec, exp, seq, attempt] = v;
    if (!rec || !exp || seq === null || seq === undefined) return undefined;
    const parsed = parseRecord<EnumerationRecord>(rec, ['consumer', 'version', 'source']);
    return { ...parsed, expiresAt: Number(exp), seq: Number(seq), attempt: Number(attempt ?? 0) };
  }

  async renewEnumeration(id: string, expiresAt: number): Promise<boolean> {
    const k = this.enumKey(id);
    // A context deleted between these two steps is left with only 'exp', which reads as gone.
    if ((await this.call('renew enumeration', () => this.client.hexists(k, 'rec'))) !== 1) return false;
    await this.call('renew enumeration', () =>
      this.client
        .multi()
        .hset(k, 'exp', String(expiresAt))
        .pexpireat(k, expiresAt + ENUMERATION_GRACE_MS)
        .exec(),
    );
    return true;
  }

  async advanceEnumeration(
    id: string,
    after: number,
  ): Promise<{ step: 'fresh' | 'repeat' | 'stale'; attempt: number }> {
    const r = await this.call('advance enumeration', () =>
      this.scripts.sspAdvanceEnumeration(this.enumKey(id), String(after)),
    );
    if (!Array.isArray(r) || r.length !== 2) {
      throw new StoreUnavailableError(`Redis store at ${this.where}: unexpected enumeration reply`);
    }
    const step = r[0] === 'fresh' || r[0] === 'repeat' ? r[0] : 'stale';
    return { step, attempt: Number(r[1]) };
  }

  async rewindEnumeration(id: string, page: number): Promise<void> {
    await this.call('rewind enumeration', () =>
      this.scripts.sspRewindEnumeration(this.enumKey(id), String(page)),
    );
  }

  async deleteEnumeration(id: string): Promise<void> {
    await this.call('delete enumeration', () => this.client.del(this.enumKey(id)));
  }

  async dropOutputs(sessionId: string): Promise<void> {
    await this.call('drop outputs', () => this.client.del(...this.leaseKeys(sessionId)));
  }

  private leaseKeys(sessionId: string): string[] {
    return [`${this.prefix}lease:${sessionId}`, `${this.prefix}out:${sessionId}`];
  }

  private terminationKeys(): [string, string] {
    return [`${this.prefix}term:due`, `${this.prefix}term:claimed`];
  }

  /** The record a resource key stands for (session:{id} → sess:{id}), so that it expires with it. */
  private recordKeyOf(key: string): string {
    const colon = key.indexOf(':');
    const kind = key.slice(0, colon);
    const id = key.slice(colon + 1);
    if (kind === 'session') return `${this.prefix}sess:${id}`;
    if (kind === 'connection') return `${this.prefix}conn:${id}`;
    return `${this.prefix}none:${key}`;
  }

  async scheduleTermination(
    key: string,
    atMs: number | null,
    by: TerminationSetter = 'lease',
  ): Promise<void> {
    const ttl = atMs === null ? 0 : Math.max(1, Math.ceil(atMs - Date.now() + RECORD_GRACE_MS));
    await this.call('schedule termination', () =>
      this.scripts.sspScheduleTermination(
        ...this.terminationKeys(),
        this.recordKeyOf(key),
        `${this.prefix}term:client`,
        key,
        atMs === null ? '' : String(Math.round(atMs)),
        String(ttl),
        by,
      ),
    );
  }

  async terminationSetByClient(key: string): Promise<boolean> {
    const v = await this.call('termination setter', () =>
      this.client.hexists(`${this.prefix}term:client`, key),
    );
    return v === 1;
  }

  async terminationOf(key: string): Promise<number | null> {
    const score = await this.call('termination time', () =>
      this.client.zscore(this.terminationKeys()[0], key),
    );
    return score === null ? null : Number(score);
  }

  async claimTerminations(nowMs: number, leaseMs: number, max: number): Promise<string[]> {
    const reply = await this.call('claim terminations', () =>
      this.scripts.sspClaimTerminations(
        ...this.terminationKeys(),
        String(Math.round(nowMs)),
        String(Math.max(1, Math.ceil(leaseMs))),
        String(Math.max(0, Math.floor(max))),
      ),
    );
    if (!Array.isArray(reply) || !reply.every((v) => typeof v === 'string')) {
      throw new StoreUnavailableError(`Redis store at ${this.where}: unexpected claim-terminations reply`);
    }
    return reply as string[];
  }

  async finishTermination(key: string): Promise<void> {
    await this.call('finish termination', () => this.client.zrem(this.terminationKeys()[1], key));
  }

  async admit(limits: RateLimit[]): Promise<RateDecision> {
    if (limits.length === 0) return { admitted: true, over: [], retryAfterMs: 0 };
    const keys: string[] = [];
    const args: string[] = [];
    for (const l of limits) {
      if (!(l.intervalMs > 0)) throw new RangeError(`rate limit ${l.key}: intervalMs must be positive`);
      keys.push(`${this.prefix}rl:${l.key}`);
      args.push(
        String(l.threshold),
        String(l.intervalMs),
        l.intervalType === 'fixed' ? 'f' : 'm',
        l.enforce ? '1' : '0',
      );
    }
    const reply = await this.call('rate decision', () =>
      this.scripts.sspAdmit(keys.length, ...keys, ...args),
    );
    if (
      !Array.isArray(reply) ||
      reply.length !== limits.length + 2 ||
      !reply.every((v) => typeof v === 'number')
    ) {
      throw new StoreUnavailableError(`Redis store at ${this.where}: unexpected rate decision reply`);
    }
    const nums = reply as number[];
    return { admitted: nums[0] === 1, over: nums.slice(2).map((v) => v === 1), retryAfterMs: nums[1]! };
  }

  /** QUIT lets pending replies arrive; a connection that is already down is just dropped. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /** Any failure to get an answer from Redis means the store cannot decide. */
  private async call<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      throw new StoreUnavailableError(`Redis store at ${this.where}: ${what} failed: ${message(e)}`, {
        cause: e,
      });
    }
  }
}

/** Keeps every field (records may carry more than the interface names); checks the required ones. */
function parseRecord<T>(raw: string, required: string[]): T {
  const v: unknown = JSON.parse(raw);
  if (
    typeof v !== 'object' ||
    v === null ||
    required.some((f) => typeof (v as Record<string, unknown>)[f] !== 'string')
  ) {
    throw new Error(`corrupt record in the Redis store (expected ${required.join(', ')})`);
  }
  return v as T;
}
