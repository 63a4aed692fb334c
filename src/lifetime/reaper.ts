/**
 * Carries out the terminations that come due (lifetimes.ts): each sweep claims due resources in
 * the shared store with a lease, so that exactly one proxy of the farm acts on each, and a claim
 * whose proxy dies before it is done is handed to another one after its lease.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CloseMode } from '../backend/protocol';
import type { GridRouter } from '../backend/grid-router';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import type { ProxyMetrics } from '../observability/metrics';
import type { StateStore } from '../store/store';
import type { Notifier } from '../notifications/notifier';
import { parseResourceKey, type Lifetimes } from './lifetimes';

export interface ReaperOptions {
  /** How often to look for due terminations. */
  sweepIntervalMs: number;
  /** How long a claimed termination is this proxy's; then another proxy may take it over. */
  claimLeaseMs: number;
  /** What an idle session becomes: destroyed, or detached so that its owner may open it again. */
  onSessionExpiry: 'destroy' | 'detach';
  /** Terminations taken per sweep. */
  batch?: number;
  /** Ends an expired enumeration context (`enumeration:{id}` entries): EnumerationEnd to its EndTo. */
  endEnumeration?: (id: string) => Promise<string>;
  /** Ends a subscription or pull point whose time came (`subscription:{id}`, `pullpoint:{id}` entries). */
  endNotificationResource?: (key: string) => Promise<string>;
  /** Tells subscribers that a session or connection ended or was detached. */
  notifier?: Notifier;
}

/** How long stop() waits for a grid call in flight before it leaves the claim to lapse. */
const STOP_WAIT_MS = 2000;

export type Outcome = 'destroyed' | 'detached' | 'gone' | 'retry';

export class Reaper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private failing = false;

  constructor(
    private readonly store: StateStore,
    private readonly router: GridRouter,
    private readonly lifetimes: Lifetimes,
    private readonly metrics: ProxyMetrics | null,
    private readonly opts: ReaperOptions,
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped || this.running) return;
      this.running = this.sweep()
        .then(
          () => {
            if (this.failing) log.info('lifetime sweeps work again');
            this.failing = false;
          },
          (e: unknown) => {
            // A store outage: the due entries stay where they are for the next sweep. Said once,
            // not every sweepIntervalMs.
            if (!this.failing) {
              log.warn('lifetime sweep failed; sweeps go on and will say when they work again', {
                error: e instanceof Error ? e.message : String(e),
              });
            }
            this.failing = true;
          },
        )
        .then(() => {
          this.running = null;
        });
    };
    this.timer = setInterval(tick, this.opts.sweepIntervalMs);
    this.timer.unref();
  }

  /** One sweep: claims what is due now and ends each; resolves with what happened to each. */
  async sweep(now = Date.now()): Promise<{ key: string; outcome: Outcome }[]> {
    const keys = await this.store.claimTerminations(now, this.opts.claimLeaseMs, this.opts.batch ?? 100);
    const done: { key: string; outcome: Outcome }[] = [];
    for (const key of keys) {
      // Stopping: what is left lapses and is carried out by another sweep, here or elsewhere.
      if (this.stopped) break;
      const outcome = await this.terminate(key);
      // A claim left unfinished comes back to a sweep (here or on another proxy) after its lease.
      if (outcome !== 'retry') await this.store.finishTermination(key);
      done.push({ key, outcome });
    }
    return done;
  }

  private async terminate(key: string): Promise<Outcome> {
    if (key.startsWith('enumeration:') && this.opts.endEnumeration) {
      try {
        const outcome = await this.opts.endEnumeration(key.slice('enumeration:'.length));
        this.metrics?.terminations.inc({ kind: 'enumeration', cause: 'expired', outcome });
      } catch (e) {
        // The store failed: the entry comes back after the claim lapses.
        log.warn('could not end an expired enumeration; another sweep will try', {
          error: e instanceof Error ? e.message : String(e),
        });
        return 'retry';
      }
      return 'gone';
    }
    if (
      (key.startsWith('subscription:') || key.startsWith('pullpoint:')) &&
      this.opts.endNotificationResource
    ) {
      try {
        const outcome = await this.opts.endNotificationResource(key);
        this.metrics?.terminations.inc({ kind: key.slice(0, key.indexOf(':')), cause: 'expired', outcome });
      } catch (e) {
        log.warn('could not end an expired subscription or pull point; another sweep will try', {
          error: e instanceof Error ? e.message : String(e),
        });
        return 'retry';
      }
      return 'gone';
    }
    const r = parseResourceKey(key);
    if (!r) {
      log.warn('unknown entry in the termination schedule dropped', { key });
      return 'gone';
    }
    const timing = { gridMs: 0 };
    let cause: 'idle' | 'scheduled' = 'idle';
    try {
      // A time its client set (SetTerminationTime) ends the resource for good, as WS-RL says.
      cause = (await this.store.terminationSetByClient(key)) ? 'scheduled' : 'idle';
      const [outcome, application, connectionId] =
        r.kind === 'session'
          ? await this.endSession(r.id, timing, cause === 'scheduled')
          : await this.endConnection(r.id, timing);
      this.metrics?.terminations.inc({ kind: r.kind, cause, outcome });
      const endCause = outcome === 'gone' ? 'gone' : cause;
      const notifier = this.opts.notifier;
      if (notifier && r.kind === 'session') {
        if (outcome === 'detached') await notifier.sessionState(r.id, connectionId, 'Detached');
        else await notifier.sessionEnded(r.id, connectionId, endCause);
      } else if (notifier) await notifier.connectionEnded(r.id, endCause);
      // Ended: nothing of it stays in the schedule (a detached session was scheduled again).
      // Lifetimes.ended logs a store failure itself: the reaper finds no record next time.
      if (outcome !== 'detached') {
        await this.lifetimes.ended(r.kind, r.id, application, outcome === 'gone' ? 'gone' : cause);
      }
      if (outcome !== 'gone') log.info(`${cause} resource ended`, { resource: r.kind, outcome });
      return outcome;
    } catch (e) {
      this.metrics?.terminations.inc({ kind: r.kind, cause, outcome: 'retry' });
      log.warn(`could not end a resource (${cause}); another sweep will try`, {
        resource: r.kind,
        error: e instanceof Error ? e.message : String(e),
      });
      return 'retry';
    }
  }

  /** What became of the session, and its application (for the usage figures). */
  private async endSession(
    id: string,
    timing: { gridMs: number },
    destroy: boolean,
  ): Promise<[Outcome, string | undefined, string | undefined]> {
    const rec = await this.store.getSession(id);
    if (!rec) return ['gone', undefined, undefined];
    const detach = !destroy && this.opts.onSessionExpiry === 'detach';
    try {
      await this.router.call(timing, rec.cluster, 'closeSession', {
        sessionId: id,
        mode: detach ? CloseMode.DETACH : CloseMode.DESTROY,
      });
    } catch (e) {
      if (!(e instanceof GatewayError && e.code === 'SSP_UNKNOWN_SESSION')) throw e;
      await this.forgetSession(id);
      return ['gone', rec.application, rec.connectionId];
    }
    if (detach) {
      // Kept for its owner's openSession; if nobody comes back, the next period finds it gone.
      await this.lifetimes.started('session', id, rec.application);
      return ['detached', rec.application, rec.connectionId];
    }
    await this.forgetSession(id);
    return ['destroyed', rec.application, rec.connectionId];
  }

  private async forgetSession(id: string): Promise<void> {
    await this.store.deleteSession(id);
    await this.store.dropOutputs(id);
  }

  private async endConnection(
    id: string,
    timing: { gridMs: number },
  ): Promise<[Outcome, string | undefined, undefined?]> {
    const rec = await this.store.getConnection(id);
    if (!rec) return ['gone', undefined];
    try {
      await this.router.call(timing, rec.cluster, 'closeConnection', { connectionId: id });
    } catch (e) {
      if (!(e instanceof GatewayError && e.code === 'SSP_UNKNOWN_CONNECTION')) throw e;
      await this.store.deleteConnection(id);
      return ['gone', rec.application];
    }
    await this.store.deleteConnection(id);
    return ['destroyed', rec.application];
  }

  /** Stops sweeping; waits briefly for the resource being ended (unfinished claims lapse). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.running) await Promise.race([this.running, sleep(STOP_WAIT_MS, undefined, { ref: false })]);
  }
}
