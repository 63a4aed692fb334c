/** The shared store against a real redis-server: records, replay claims, exact rate limits, outages. */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis-store';
import { StoreUnavailableError, type RateDecision, type RateLimit } from '../../src/store/store';
import { requirePeer } from '../helpers/peers';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';

function limit(
  key: string,
  threshold: number,
  intervalMs: number,
  intervalType: 'fixed' | 'moving',
  enforce = true,
): RateLimit {
  return { key, threshold, intervalMs, intervalType, enforce };
}

/** A key of its own for each test, with characters a consumer DN may carry. */
function uniqueKey(name: string): string {
  return `sla|/svc/${name}|CN=Client ${randomUUID()}, O=Bank, C=GB|`;
}

/**
 * Waits, if need be, for a fixed window to begin, so that `needMs` of work fits in one window.
 * Redis runs on this host, so its TIME and Date.now() read the same clock.
 */
async function alignToWindow(intervalMs: number, needMs: number): Promise<void> {
  const left = intervalMs - (Date.now() % intervalMs);
  if (left < needMs) await sleep(left + 5);
}

async function rejectsUnavailable(p: Promise<unknown>): Promise<StoreUnavailableError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(StoreUnavailableError);
    return e as StoreUnavailableError;
  }
  throw new Error('expected StoreUnavailableError, but the call succeeded');
}

async function unusedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (typeof addr !== 'object' || !addr) throw new Error('no port');
  return addr.port;
}

describe('RedisStore (real redis-server)', function () {
  let redis: RedisProcess | undefined;
  const stores: RedisStore[] = [];
  let opts: RedisStoreOptions;

  async function open(): Promise<RedisStore> {
    const s = await RedisStore.connect(opts);
    stores.push(s);
    return s;
  }

  before(async function () {
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    redis = await startRedis();
    opts = {
      url: redis.url,
      keyPrefix: `test:${randomUUID()}:`,
      commandTimeoutMs: 300,
      connectTimeoutMs: 2000,
    };
  });

  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await redis?.stop();
  });

  describe('connect', () => {
    it('names host:port, never the password, when Redis cannot be reached in time', async () => {
      const port = await unusedPort();
      const started = Date.now();
      const e = await rejectsUnavailable(
        RedisStore.connect({
          url: `redis://proxy:s3cr3t-pw@127.0.0.1:${port}`,
          keyPrefix: 'x:',
          commandTimeoutMs: 300,
          connectTimeoutMs: 500,
        }),
      );
      expect(Date.now() - started).to.be.below(1500);
      expect(e.message).to.include(`127.0.0.1:${port}`);
      expect(e.message).not.to.include('s3cr3t-pw');
      expect(e.cause).to.be.instanceOf(Error);
    });

    it('is ready once connected', async () => {
      const s = await open();
      expect(s.connected).to.equal(true);
      expect(await s.ping()).to.equal(true);
    });
  });

  describe('records', () => {
    it('round-trips connection and session records with every field', async () => {
      const s = await open();
      const conn = {
        cluster: 'default',
        owner: 'CN=Client A',
        application: 'echo',
        serviceVersion: '/v1',
        extra: 7,
      };
      await s.putConnection('c1', conn);
      expect(await s.getConnection('c1')).to.deep.equal(conn);
      const sess = { cluster: 'default', owner: 'CN=Client A', connectionId: 'c1' };
      await s.putSession('s1', sess);
      expect(await s.getSession('s1')).to.deep.equal(sess);

      // Another proxy sees them.
      const other = await open();
      expect(await other.getConnection('c1')).to.deep.equal(conn);

      await s.deleteConnection('c1');
      await s.deleteSession('s1');
      expect(await s.getConnection('c1')).to.equal(undefined);
      expect(await s.getSession('s1')).to.equal(undefined);
      // A proxy that read them keeps them for a few seconds (records never change, and the
      // grid refuses a closed id); one that had not read them sees them gone at once.
      const third = await open();
      expect(await third.getConnection('c1')).to.equal(undefined);
      expect(await third.getSession('s1')).to.equal(undefined);
    });

    it('ties a record to its scheduled termination: it expires a grace period after it, never sooner', async () => {
      const s = await open();
      const raw = new Redis(redis!.url);
      try {
        await s.putSession('s-ttl', { cluster: 'default', owner: 'CN=Client A', connectionId: 'c' });
        expect(await raw.pttl(`${opts.keyPrefix}sess:s-ttl`), 'no lifetime yet: no expiry').to.equal(-1);
        const at = Date.now() + 60_000;
        await s.scheduleTermination('session:s-ttl', at);
        const ttl = await raw.pttl(`${opts.keyPrefix}sess:s-ttl`);
        // 24 h of grace beyond the termination, so that the reaper still finds the record.
        expect(ttl).to.be.within(60_000 + 24 * 3600_000 - 5000, 60_000 + 24 * 3600_000);
        await s.putConnection('c-ttl', { cluster: 'default', owner: 'CN=Client A', application: 'echo' });
        await s.scheduleTermination('connection:c-ttl', Date.now() + 1000);
        expect(await raw.pttl(`${opts.keyPrefix}conn:c-ttl`)).to.be.above(24 * 3600_000 - 5000);
      } finally {
        raw.disconnect();
      }
    });

    it('claims a key once until its ttl passes, across stores', async () => {
      const [a, b] = [await open(), await open()];
      const key = `nonce-${randomUUID()}`;
      expect(await a.claimOnce(key, 200)).to.equal('claimed');
      expect(await b.claimOnce(key, 200)).to.equal('resend');
      expect(await a.claimOnce(key, 200, 'msg-1')).to.equal('taken');
      await sleep(250);
      expect(await b.claimOnce(key, 200, 'msg-1')).to.equal('claimed');
      expect(await a.claimOnce(key, 200, 'msg-1')).to.equal('resend');
      expect(await a.claimOnce(key, 200, 'msg-2')).to.equal('taken');
      expect(await a.claimOnce(key, 200)).to.equal('taken');
    });
  });

  describe('admit', () => {
    let s: RedisStore;
    before(async () => {
      s = await open();
    });

    it('fixed: admits the threshold per epoch-aligned window, refuses until its end', async () => {
      const l = [limit(uniqueKey('fixed'), 3, 1000, 'fixed')];
      await alignToWindow(1000, 400);
      for (let i = 0; i < 3; i++)
        expect(await s.admit(l)).to.deep.equal({ admitted: true, over: [false], retryAfterMs: 0 });
      const before = Date.now();
      const d = await s.admit(l);
      const windowLeft = 1000 - (before % 1000);
      expect(d.admitted).to.equal(false);
      expect(d.over).to.deep.equal([true]);
      expect(d.retryAfterMs).to.be.within(Math.max(1, windowLeft - 30), windowLeft + 5);
      await sleep(d.retryAfterMs);
      expect((await s.admit(l)).admitted).to.equal(true);
    });

    it('moving: refuses until the oldest entry leaves, then admits exactly one more', async () => {
      const l = [limit(uniqueKey('moving'), 3, 600, 'moving')];
      const first = Date.now();
      expect((await s.admit(l)).admitted).to.equal(true);
      await sleep(100);
      expect((await s.admit(l)).admitted).to.equal(true);
      expect((await s.admit(l)).admitted).to.equal(true);
      const at = Date.now();
      const d = await s.admit(l);
      expect(d.admitted).to.equal(false);
      expect(d.over).to.deep.equal([true]);
      // The first entry was stamped between `first` and its reply: it leaves at stamp + 600.
      expect(d.retryAfterMs).to.be.within(first + 600 - at - 30, first + 600 - at + 30);
      await sleep(d.retryAfterMs);
      expect((await s.admit(l)).admitted).to.equal(true);
      expect((await s.admit(l)).admitted).to.equal(false);
    });

    it('does not count refused requests (fixed and moving)', async () => {
      const fixed = [limit(uniqueKey('f-refused'), 5, 1000, 'fixed')];
      const moving = [limit(uniqueKey('m-refused'), 5, 500, 'moving')];
      const admitted = async (l: RateLimit[], n: number): Promise<number> => {
        let ok = 0;
        for (let i = 0; i < n; i++) if ((await s.admit(l)).admitted) ok++;
        return ok;
      };
      await alignToWindow(1000, 300);
      expect(await admitted(fixed, 25)).to.equal(5);
      expect(await admitted(moving, 25)).to.equal(5);
      await sleep(1000 - (Date.now() % 1000) + 5);
      expect(await admitted(fixed, 25)).to.equal(5);
      await sleep(550);
      expect(await admitted(moving, 25)).to.equal(5);
    });

    it('charges no limit when one refuses: an SLA is not charged when the SLD refuses', async () => {
      const sla = limit(uniqueKey('sla'), 10, 5000, 'moving');
      const sld = limit(uniqueKey('sld'), 2, 5000, 'moving');
      expect((await s.admit([sla, sld])).admitted).to.equal(true);
      expect((await s.admit([sla, sld])).admitted).to.equal(true);
      for (let i = 0; i < 5; i++) {
        const d = await s.admit([sla, sld]);
        expect(d.admitted).to.equal(false);
        expect(d.over).to.deep.equal([false, true]);
      }
      let ok = 0;
      for (let i = 0; i < 20; i++) if ((await s.admit([sla])).admitted) ok++;
      expect(ok).to.equal(8);
    });

    it('reports the longest wait among refusing limits and ignores observed ones', async () => {
      const short = limit(uniqueKey('short'), 1, 400, 'moving');
      const long = limit(uniqueKey('long'), 1, 900, 'moving');
      const notify = limit(uniqueKey('notify'), 1, 5000, 'moving', false);
      expect((await s.admit([short, long, notify])).admitted).to.equal(true);
      const d = await s.admit([short, long, notify]);
      expect(d.admitted).to.equal(false);
      expect(d.over).to.deep.equal([true, true, true]);
      expect(d.retryAfterMs).to.be.within(800, 900);
    });

    it('never refuses for observed limits, counts them and reports them in over', async () => {
      const notify = limit(uniqueKey('observed'), 2, 5000, 'moving', false);
      const overs: boolean[] = [];
      for (let i = 0; i < 4; i++) {
        const d = await s.admit([notify]);
        expect(d.admitted).to.equal(true);
        expect(d.retryAfterMs).to.equal(0);
        overs.push(d.over[0]!);
      }
      expect(overs).to.deep.equal([false, false, true, true]);
      // All four were counted in the same log.
      expect((await s.admit([{ ...notify, threshold: 4, enforce: true }])).admitted).to.equal(false);
      expect((await s.admit([{ ...notify, threshold: 5, enforce: true }])).admitted).to.equal(true);
    });

    it('admits an empty list without a round trip', async () => {
      expect(await s.admit([])).to.deep.equal({ admitted: true, over: [], retryAfterMs: 0 });
    });
  });

  describe('exactness across proxies', () => {
    const N = 200;
    const THRESHOLD = 25;

    async function storm(l: RateLimit[]): Promise<RateDecision[]> {
      const three = [await open(), await open(), await open()];
      return Promise.all(Array.from({ length: N }, (_, i) => three[i % 3]!.admit(l)));
    }

    it(`fixed: ${N} concurrent admits from three stores on a limit of ${THRESHOLD} admit exactly ${THRESHOLD}`, async () => {
      const l = [limit(uniqueKey('storm-fixed'), THRESHOLD, 3000, 'fixed')];
      // The storm takes well under a second; start it early in a window so it cannot straddle one.
      await alignToWindow(3000, 2000);
      const ds = await storm(l);
      expect(ds.filter((d) => d.admitted).length).to.equal(THRESHOLD);
      for (const d of ds) {
        if (d.admitted) expect(d.over).to.deep.equal([false]);
        else expect(d.retryAfterMs).to.be.within(1, 3000);
      }
    });

    it(`moving: ${N} concurrent admits from three stores admit exactly ${THRESHOLD}, and again after the interval`, async () => {
      const l = [limit(uniqueKey('storm-moving'), THRESHOLD, 800, 'moving')];
      const first = await storm(l);
      expect(first.filter((d) => d.admitted).length).to.equal(THRESHOLD);
      for (const d of first) if (!d.admitted) expect(d.retryAfterMs).to.be.within(1, 800);
      // Every admission of the storm has left the log by then.
      await sleep(850);
      // Refusals were not logged: a full threshold fits again.
      const second = await storm(l);
      expect(second.filter((d) => d.admitted).length).to.equal(THRESHOLD);
    });
  });

  // Last: it restarts Redis, which drops every key.
  describe('outage', () => {
    it('rejects fast with StoreUnavailableError while Redis is down, and recovers by itself', async () => {
      // One store is enough to watch, and keeps the log quiet.
      await Promise.all(stores.splice(0).map((x) => x.close()));
      const s = await open();
      const l = [limit(uniqueKey('outage'), 100, 1000, 'moving')];
      expect((await s.admit(l)).admitted).to.equal(true);

      await redis!.stop();
      for (const op of [
        () => s.admit(l),
        () => s.getConnection('c1'),
        () => s.claimOnce('k', 1000),
        // The notification store runs on the same client, through the same error mapping.
        () => s.claimDeliveries(Date.now(), 1000, 10),
        () => s.getSubscription('sub-1'),
      ]) {
        const started = Date.now();
        const e = await rejectsUnavailable(op());
        expect(Date.now() - started).to.be.below(2000);
        expect(e.cause).to.be.instanceOf(Error);
      }
      expect(s.connected).to.equal(false);
      expect(await s.ping()).to.equal(false);
      // Long enough for several reconnect attempts, so recovery goes through the backoff.
      await sleep(1500);

      await redis!.restart();
      const deadline = Date.now() + 10000;
      let d: RateDecision | undefined;
      while (!d && Date.now() < deadline) {
        try {
          d = await s.admit(l);
        } catch (e) {
          expect(e).to.be.instanceOf(StoreUnavailableError);
          await sleep(100);
        }
      }
      expect(d, 'the store did not recover within 10 s').to.not.equal(undefined);
      // The restarted Redis lost the script cache: the EVAL fallback reloaded it.
      expect(d!.admitted).to.equal(true);
      expect(s.connected).to.equal(true);
      expect(await s.ping()).to.equal(true);
      await s.putConnection('c2', { cluster: 'default', owner: 'o', application: 'a' });
      expect(await s.getConnection('c2')).to.deep.equal({ cluster: 'default', owner: 'o', application: 'a' });
      expect(
        await s.claimDeliveries(Date.now(), 1000, 10),
        'notification scripts reloaded too',
      ).to.deep.equal([]);
    });
  });
});
