/** The shared state store: memory for one process, Redis for proxies running active/active. */
import type { ProxyConfig } from '../config';
import { log } from '../log';
import { MemoryStore } from '../store/memory-store';
import { RedisStore } from '../store/redis-store';
import { StoreUnavailableError, type StateStore } from '../store/store';
import type { Resources } from './resources';

export async function openStore(config: ProxyConfig, res: Resources): Promise<StateStore> {
  const store: StateStore =
    config.store.kind === 'redis'
      ? await RedisStore.connect({
          ...config.store.redis,
          outputRetentionMs: config.reliability.outputRetentionMs,
        })
      : new MemoryStore();
  return res.add('state store', store, (s) => s.close());
}

/** The replay cache: the shared store, optionally backed by a per-process one while it is away. */
export function replayCache(store: StateStore, sec: ProxyConfig['security']): Pick<StateStore, 'claimOnce'> {
  if (store instanceof MemoryStore || sec.replayCacheOnStoreFailure === 'refuse') return store;
  const local = new MemoryStore();
  let warnedAt = 0;
  return {
    async claimOnce(key, ttlMs, tag) {
      try {
        return await store.claimOnce(key, ttlMs, tag);
      } catch (e) {
        if (!(e instanceof StoreUnavailableError)) throw e;
        if (Date.now() - warnedAt > 10_000) {
          warnedAt = Date.now();
          log.warn("shared replay cache unreachable; using this proxy's own cache", { error: e.message });
        }
        return local.claimOnce(key, ttlMs, tag);
      }
    },
  };
}
