/**
 * The RedisStore side of a store contract suite: one real redis-server for the suite, a fresh
 * key prefix per store (so per test), and a raw client to read keys behind the store's back.
 */
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { RedisStore } from '../../src/store/redis-store';
import { requirePeer } from './peers';
import { hasRedis, startRedis, type RedisProcess } from './redis';

export interface RedisStoreHarness {
  setup(ctx: Mocha.Context): Promise<void>;
  make(): Promise<RedisStore>;
  teardown(): Promise<void>;
  /** The raw client, once set up. */
  raw(): Redis;
  /** The prefix of the store made last. */
  prefix(): string;
}

export function redisStoreHarness(name: string): RedisStoreHarness {
  let redis: RedisProcess | undefined;
  let raw: Redis | undefined;
  let prefix = '';
  return {
    async setup(ctx) {
      requirePeer(ctx, 'redis-server', hasRedis(), 'apt-get install redis-server');
      redis = await startRedis();
      raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await raw.connect();
    },
    make() {
      // A prefix of its own per store (so per test): nothing is shared between tests.
      prefix = `${name}:${randomUUID()}:`;
      return RedisStore.connect({
        url: redis!.url,
        keyPrefix: prefix,
        commandTimeoutMs: 5000,
        connectTimeoutMs: 5000,
      });
    },
    async teardown() {
      raw?.disconnect();
      await redis?.stop();
    },
    raw: () => raw!,
    prefix: () => prefix,
  };
}
