/**
 * The shared store: records, the replay cache and rate counters in one Redis, so that any
 * proxy can continue any client's work and limits count exactly across proxies.
 *
 * It fails fast: with Redis unreachable every call rejects with StoreUnavailableError within
 * about commandTimeoutMs (nothing is queued), while reconnection goes on in the background.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { log } from '../log';
import { ADMIT_SCRIPT } from './redis-scripts';
import {
  StoreUnavailableError,
  type ConnectionRecord,
  type RateDecision,
  type RateLimit,
  type SessionRecord,
  type StateStore,
} from './store';

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL; it may carry a password, so it is never logged. */
  url: string;
  keyPrefix: string;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

/** The command ioredis adds for ADMIT_SCRIPT (EVALSHA, falling back to EVAL after a restart). */
interface AdmitCommand {
  sspAdmit(numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}

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

export class RedisStore implements StateStore {
  private readonly admitter: AdmitCommand;
  private wasReady = true;
  private closing = false;
  private lastError: unknown;

  private constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly where: string,
  ) {
    client.defineCommand('sspAdmit', { lua: ADMIT_SCRIPT });
    this.admitter = client as unknown as AdmitCommand;
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
    const where = redisAddress(opts.url);
    const client = new Redis(opts.url, clientOptions(opts));
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
    return new RedisStore(client, opts.keyPrefix, where);
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
    const raw = await this.call('GET connection', () => this.client.get(`${this.prefix}conn:${id}`));
    return raw === null ? undefined : parseRecord<ConnectionRecord>(raw, ['cluster', 'owner', 'application']);
  }
  async putConnection(id: string, rec: ConnectionRecord): Promise<void> {
    await this.call('SET connection', () => this.client.set(`${this.prefix}conn:${id}`, JSON.stringify(rec)));
  }
  async deleteConnection(id: string): Promise<void> {
    await this.call('DEL connection', () => this.client.del(`${this.prefix}conn:${id}`));
  }
  async getSession(id: string): Promise<SessionRecord | undefined> {
    const raw = await this.call('GET session', () => this.client.get(`${this.prefix}sess:${id}`));
    return raw === null ? undefined : parseRecord<SessionRecord>(raw, ['cluster', 'owner', 'connectionId']);
  }
  async putSession(id: string, rec: SessionRecord): Promise<void> {
    await this.call('SET session', () => this.client.set(`${this.prefix}sess:${id}`, JSON.stringify(rec)));
  }
  async deleteSession(id: string): Promise<void> {
    await this.call('DEL session', () => this.client.del(`${this.prefix}sess:${id}`));
  }

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const r = await this.call('claim', () =>
      this.client.set(`${this.prefix}claim:${key}`, '1', 'PX', ttl, 'NX'),
    );
    return r === 'OK';
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
      this.admitter.sspAdmit(keys.length, ...keys, ...args),
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
