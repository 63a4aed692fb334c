/**
 * Idle leases of connections and sessions. Every resource a client opens is scheduled to end in
 * the shared store (StateStore.scheduleTermination) one idle period after it was last used; the
 * reaper (reaper.ts) closes on the grid whatever comes due, so an abandoned session does not hold
 * grid capacity, and its records leave the store, for ever.
 */
import { log } from '../log';
import type { StateStore } from '../store/store';

export type ResourceKind = 'session' | 'connection';

export interface LifetimeConfig {
  /** Idle time after which an unused session is closed on the grid; 0: never. */
  sessionIdleMs: number;
  /** Idle time after which an unused connection is closed on the grid; 0: never. */
  connectionIdleMs: number;
  /** Per application, overriding the two above. */
  applications: { name: string; sessionIdleMs?: number | undefined; connectionIdleMs?: number | undefined }[];
}

/** Why a resource ended: closed or destroyed by its client, its idle lease or its set time ran out, or the grid had forgotten it. */
export type EndCause = 'client' | 'idle' | 'scheduled' | 'gone';

/** Where opened and ended resources are counted (the usage metrics). */
export interface ResourceUsage {
  opened(kind: ResourceKind, application: string | undefined): void;
  ended(kind: ResourceKind, application: string | undefined, cause: EndCause): void;
}

/** Nothing lapses: for embedders and tests that manage lifetimes themselves. */
export const NEVER_IDLE: LifetimeConfig = { sessionIdleMs: 0, connectionIdleMs: 0, applications: [] };

export function resourceKey(kind: ResourceKind, id: string): string {
  return `${kind}:${id}`;
}

/** The kind and id of a resource key, or null for a key this version does not know. */
export function parseResourceKey(key: string): { kind: ResourceKind; id: string } | null {
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  const id = key.slice(colon + 1);
  if (colon <= 0 || id === '' || (kind !== 'session' && kind !== 'connection')) return null;
  return { kind, id };
}

/** A lease is pushed forward at most this often (as a share of the idle time) per proxy and resource. */
const TOUCH_EVERY = 0.1;
/** Resources whose last push this proxy remembers; the oldest are forgotten first. */
const TOUCH_MEMORY = 100_000;

export class Lifetimes {
  private readonly lastPush = new Map<string, number>();

  constructor(
    private readonly store: StateStore,
    private readonly config: LifetimeConfig,
    private readonly now: () => number = Date.now,
    private readonly usage: ResourceUsage | null = null,
    /** The SLA control file's idle time for an application, when it names one (it wins over config). */
    private readonly fromPolicy: (kind: ResourceKind, application: string) => number | undefined = () =>
      undefined,
  ) {}

  /** The idle time of a resource of this kind and application; 0 means it never lapses. */
  idleMs(kind: ResourceKind, application: string | undefined): number {
    const named = application === undefined ? undefined : this.fromPolicy(kind, application);
    if (named !== undefined) return named;
    const app =
      application === undefined ? undefined : this.config.applications.find((a) => a.name === application);
    const own = kind === 'session' ? app?.sessionIdleMs : app?.connectionIdleMs;
    return own ?? (kind === 'session' ? this.config.sessionIdleMs : this.config.connectionIdleMs);
  }

  /**
   * A resource was opened: its first idle period starts. A store failure here does not fail the
   * call (the resource exists on the grid by now): the next call on it schedules it instead.
   */
  async started(
    kind: ResourceKind,
    id: string,
    application: string | undefined,
    fresh = false,
  ): Promise<void> {
    // fresh: new to the farm (connect, createSession), not a session opened again.
    if (fresh) this.usage?.opened(kind, application);
    const idle = this.idleMs(kind, application);
    if (idle <= 0) return;
    const key = resourceKey(kind, id);
    const now = this.now();
    try {
      await this.store.scheduleTermination(key, now + idle);
      this.remember(key, now);
    } catch (e) {
      log.warn('could not start an idle lease; the next call on the resource starts it', {
        resource: kind,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  /**
   * A resource was used: its lease moves to one idle period from now. Cheap on the hot path: the
   * store is written at most once per tenth of the idle time per proxy, and a failed write only
   * shortens the lease, so it never fails the client's call.
   */
  touch(kind: ResourceKind, id: string, application: string | undefined): void {
    const idle = this.idleMs(kind, application);
    if (idle <= 0) return;
    const key = resourceKey(kind, id);
    const now = this.now();
    const last = this.lastPush.get(key);
    if (last !== undefined && now - last < idle * TOUCH_EVERY) return;
    this.remember(key, now);
    this.store.scheduleTermination(key, now + idle).catch((e: unknown) => {
      this.lastPush.delete(key);
      log.warn('could not extend an idle lease; it is tried again on the next call', {
        resource: kind,
        error: e instanceof Error ? e.message : String(e),
      });
    });
  }

  /**
   * The client sets the resource's termination time (WS-ResourceLifetime SetTerminationTime): at
   * `atMs`, or, with null, no time of its own, so that the application's idle lease applies again.
   * Answers the termination time now in effect (null: none). A store failure fails the call: the
   * client must know whether its time holds.
   */
  async set(
    kind: ResourceKind,
    id: string,
    atMs: number | null,
    application: string | undefined,
  ): Promise<number | null> {
    const key = resourceKey(kind, id);
    this.lastPush.delete(key);
    await this.store.scheduleTermination(key, atMs, 'client');
    if (atMs !== null) return atMs;
    await this.started(kind, id, application);
    return this.store.terminationOf(key);
  }

  /** When the resource is due to end (null: never), and whether its client chose that time. */
  async termination(kind: ResourceKind, id: string): Promise<{ atMs: number | null; byClient: boolean }> {
    const key = resourceKey(kind, id);
    const [atMs, byClient] = await Promise.all([
      this.store.terminationOf(key),
      this.store.terminationSetByClient(key),
    ]);
    return { atMs, byClient };
  }

  /** A resource has ended (closed by its client, or by the reaper): nothing is left to end. */
  async ended(
    kind: ResourceKind,
    id: string,
    application: string | undefined,
    cause: EndCause,
  ): Promise<void> {
    this.usage?.ended(kind, application, cause);
    const key = resourceKey(kind, id);
    this.lastPush.delete(key);
    try {
      await this.store.scheduleTermination(key, null);
    } catch (e) {
      // The reaper finds no record when the time comes and just forgets the entry.
      log.warn('could not cancel the idle lease of a closed resource; the reaper will drop it', {
        resource: kind,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  private remember(key: string, now: number): void {
    this.lastPush.delete(key);
    if (this.lastPush.size >= TOUCH_MEMORY) {
      const oldest = this.lastPush.keys().next();
      if (!oldest.done) this.lastPush.delete(oldest.value);
    }
    this.lastPush.set(key, now);
  }
}
