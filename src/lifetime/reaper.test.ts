import { expect } from 'chai';
import { op, startHarness, type Harness } from '../../test/helpers/in-process';
import { GridRouter } from '../backend/grid-router';
import { log } from '../log';
import { MemoryStore } from '../store/memory-store';
import { Lifetimes, resourceKey, type LifetimeConfig } from './lifetimes';
import { Reaper, type ReaperOptions } from './reaper';

const IDLE: LifetimeConfig = {
  sessionIdleMs: 60_000,
  connectionIdleMs: 120_000,
  applications: [{ name: 'cpu', sessionIdleMs: 5_000 }],
};
const REAP: ReaperOptions = { sweepIntervalMs: 60_000, claimLeaseMs: 10_000, onSessionExpiry: 'destroy' };
const MINUTE = 60_000;

/** ssp_resource_terminations_total for one label set. */
async function terminations(h: Harness, labels: Record<string, string>): Promise<number> {
  const metric = await h.metrics.terminations.get();
  const hit = metric.values.find((v) =>
    Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x),
  );
  return hit?.value ?? 0;
}

describe('lifetime: idle connections and sessions are ended on the grid, once', function () {
  this.timeout(20000);
  let h: Harness;
  const wasSilent = log.silent;
  before(() => {
    log.silent = true; // the reaper logs each resource it ends; the assertions read the metrics
  });
  after(() => {
    log.silent = wasSilent;
  });

  beforeEach(async () => {
    h = await startHarness({ lifetime: IDLE });
  });
  afterEach(() => h.close());

  function reaper(opts: Partial<ReaperOptions> = {}): Reaper {
    return new Reaper(h.store, h.router, h.lifetimes, h.metrics, { ...REAP, ...opts });
  }

  it('schedules a new session and connection one idle period ahead, per application', async () => {
    const t0 = Date.now();
    const { connectionId, sessionId } = await h.openSession();
    const s = await h.store.terminationOf(resourceKey('session', sessionId));
    const c = await h.store.terminationOf(resourceKey('connection', connectionId));
    expect(s).to.be.within(t0 + IDLE.sessionIdleMs, Date.now() + IDLE.sessionIdleMs);
    expect(c).to.be.within(t0 + IDLE.connectionIdleMs, Date.now() + IDLE.connectionIdleMs);
    expect(h.lifetimes.idleMs('session', 'cpu')).to.equal(5_000);
    expect(h.lifetimes.idleMs('connection', 'cpu'), 'not overridden: the default').to.equal(120_000);
    expect(h.lifetimes.idleMs('session', 'echo')).to.equal(60_000);
  });

  it('ends an abandoned session and connection on the grid and forgets them; nothing is left to do twice', async () => {
    const { connectionId, sessionId } = await h.openSession();
    expect(h.grid.stats()).to.include({ connections: 1, sessions: 1 });
    const done = await reaper().sweep(Date.now() + 3 * MINUTE);
    expect(done.map((d) => d.outcome)).to.deep.equal(['destroyed', 'destroyed']);
    expect(h.grid.stats()).to.include({ connections: 0, sessions: 0 });
    expect(await h.store.getSession(sessionId)).to.equal(undefined);
    expect(await h.store.getConnection(connectionId)).to.equal(undefined);
    expect(await reaper().sweep(Date.now() + 60 * MINUTE)).to.deep.equal([]);
    expect(await terminations(h, { kind: 'session', cause: 'idle', outcome: 'destroyed' })).to.equal(1);
    // The client, coming back too late, is told the session is gone.
    const late = await h.post(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`));
    expect(late.answer.body).to.contain('SSP_UNKNOWN_SESSION');
  });

  it('a session in use is not ended: its lease follows its calls', async () => {
    const { sessionId } = await h.openSession();
    let now = Date.now();
    const clock = { now: (): number => now };
    const lifetimes = new Lifetimes(h.store, IDLE, clock.now);
    const first = await h.store.terminationOf(resourceKey('session', sessionId));
    now += 50_000;
    lifetimes.touch('session', sessionId, 'echo');
    await new Promise((r) => setImmediate(r));
    const moved = await h.store.terminationOf(resourceKey('session', sessionId));
    expect(moved).to.equal(now + IDLE.sessionIdleMs);
    expect(moved! - first!).to.be.at.least(49_000);
    // Nothing is due at the session's first time: it was used since, and the connection lives longer.
    const done = await reaper().sweep(first! + 1000);
    expect(done).to.deep.equal([]);
  });

  it('pushes the lease forward from the real call path (ownership lookups), at most once per tenth of the idle time', async () => {
    const quick = await startHarness({ lifetime: { ...IDLE, sessionIdleMs: 2000 } });
    try {
      const { sessionId } = await quick.openSession();
      const key = resourceKey('session', sessionId);
      const status = op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`);
      const atCreate = (await quick.store.terminationOf(key))!;
      await quick.post(status); // within a tenth of the idle time of createSession: no write
      expect(await quick.store.terminationOf(key)).to.equal(atCreate);
      await new Promise((r) => setTimeout(r, 250));
      const before = Date.now();
      await quick.post(status);
      await new Promise((r) => setImmediate(r));
      expect(await quick.store.terminationOf(key)).to.be.at.least(before + 2000);
    } finally {
      await quick.close();
    }
  });

  it('a session the client closes is no longer scheduled; a detached one still is', async () => {
    const a = await h.openSession();
    await h.post(
      op(
        'closeSession',
        `<sym:sessionId>${a.sessionId}</sym:sessionId><sym:closeFlags>DestroyOnClose</sym:closeFlags>`,
      ),
    );
    expect(await h.store.terminationOf(resourceKey('session', a.sessionId))).to.equal(null);
    const b = await h.openSession();
    await h.post(
      op(
        'closeSession',
        `<sym:sessionId>${b.sessionId}</sym:sessionId><sym:closeFlags>DetachOnClose</sym:closeFlags>`,
      ),
    );
    expect(await h.store.terminationOf(resourceKey('session', b.sessionId))).to.be.a('number');
    await h.post(op('closeConnection', `<sym:connectionId>${a.connectionId}</sym:connectionId>`));
    expect(await h.store.terminationOf(resourceKey('connection', a.connectionId))).to.equal(null);
  });

  it('onSessionExpiry detach: the session is detached on the grid and kept for its owner, then forgotten once the grid is done with it', async () => {
    const { sessionId } = await h.openSession();
    const r = reaper({ onSessionExpiry: 'detach' });
    const later = Date.now() + IDLE.sessionIdleMs + 1000;
    const done = await r.sweep(later);
    expect(done).to.deep.include({ key: resourceKey('session', sessionId), outcome: 'detached' });
    expect(await h.store.getSession(sessionId), 'kept for openSession').to.not.equal(undefined);
    expect(await h.store.terminationOf(resourceKey('session', sessionId))).to.be.a('number');
    // The grid destroys it (here: its owner's connection went away with it); the next period forgets it.
    await h.router.call({ gridMs: 0 }, 'default', 'closeSession', { sessionId, mode: 0 });
    const again = await r.sweep(Date.now() + 10 * MINUTE);
    expect(again).to.deep.include({ key: resourceKey('session', sessionId), outcome: 'gone' });
    expect(await h.store.getSession(sessionId)).to.equal(undefined);
  });

  it('a grid that cannot be reached keeps the termination: another sweep carries it out after the claim lapses', async () => {
    const { sessionId } = await h.openSession();
    const key = resourceKey('session', sessionId);
    // The same cluster name on an address where nothing listens, with short timeouts.
    const unreachable = new GridRouter(
      [
        {
          name: 'default',
          urls: [],
          addresses: ['127.0.0.1:1'],
          sharedSecret: '',
          poolSize: 1,
          connectTimeoutMs: 100,
          requestTimeoutMs: 200,
          plaintext: false,
        },
      ],
      'default',
    );
    try {
      const cut = new Reaper(h.store, unreachable, h.lifetimes, h.metrics, REAP);
      const t = Date.now() + 2 * MINUTE;
      const done = await cut.sweep(t);
      expect(done).to.deep.include({ key, outcome: 'retry' });
      expect(await h.store.getSession(sessionId), 'nothing forgotten').to.not.equal(undefined);
      expect(await terminations(h, { kind: 'session', outcome: 'retry' })).to.equal(1);
      expect(await reaper().sweep(t + 1), 'still claimed').to.deep.equal([]);
      // The proxy holding the claim is gone; after the lease another one (here: with the grid) ends it.
      const retried = await reaper().sweep(t + REAP.claimLeaseMs);
      expect(retried).to.deep.include({ key, outcome: 'destroyed' });
      expect(h.grid.stats().sessions).to.equal(0);
    } finally {
      unreachable.close();
    }
  });

  it('two proxies sweeping one store end each resource exactly once', async () => {
    const opened = await Promise.all(Array.from({ length: 6 }, () => h.openSession()));
    const later = Date.now() + 3 * MINUTE;
    const [a, b] = await Promise.all([reaper({ batch: 5 }).sweep(later), reaper({ batch: 5 }).sweep(later)]);
    const rest = await reaper().sweep(later);
    const keys = [...a, ...b, ...rest].map((d) => d.key).sort();
    const expected = opened
      .flatMap((o) => [resourceKey('session', o.sessionId), resourceKey('connection', o.connectionId)])
      .sort();
    expect(keys).to.deep.equal(expected);
    expect(h.grid.stats()).to.include({ connections: 0, sessions: 0 });
  });

  it('a store outage is logged once, not every sweep, and its end is logged too', async () => {
    let down = true;
    const store = new MemoryStore();
    const flaky = Object.assign(Object.create(store) as MemoryStore, {
      claimTerminations: (now: number, lease: number, max: number): Promise<string[]> =>
        down ? Promise.reject(new Error('store unreachable')) : store.claimTerminations(now, lease, max),
    });
    const said: string[] = [];
    const { warn, info } = log;
    log.warn = ((m: string) => (said.push(`warn: ${m}`), log)) as typeof log.warn;
    log.info = ((m: string) => (said.push(`info: ${m}`), log)) as typeof log.info;
    const r = new Reaper(flaky, h.router, new Lifetimes(flaky, IDLE), null, { ...REAP, sweepIntervalMs: 10 });
    try {
      r.start();
      await new Promise((res) => setTimeout(res, 120));
      down = false;
      await new Promise((res) => setTimeout(res, 60));
    } finally {
      await r.stop();
      log.warn = warn;
      log.info = info;
    }
    expect(said.filter((m) => m.startsWith('warn: lifetime sweep failed'))).to.have.length(1);
    expect(said).to.include('info: lifetime sweeps work again');
  });

  it('an idle time the SLA control file names for an application wins over the configuration', () => {
    const l = new Lifetimes(new MemoryStore(), IDLE, Date.now, null, (kind, app) =>
      app === 'math' && kind === 'session' ? 1234 : undefined,
    );
    expect(l.idleMs('session', 'math')).to.equal(1234);
    expect(l.idleMs('connection', 'math')).to.equal(l.idleMs('connection', 'other'));
    expect(l.idleMs('session', 'other')).to.not.equal(1234);
  });

  it('drops an entry it does not understand', async () => {
    const store = new MemoryStore();
    await store.scheduleTermination('bogus', 1);
    const r = new Reaper(store, h.router, new Lifetimes(store, IDLE), null, REAP);
    expect(await r.sweep(2)).to.deep.equal([{ key: 'bogus', outcome: 'gone' }]);
    expect(await r.sweep(REAP.claimLeaseMs + 10)).to.deep.equal([]);
  });
});
