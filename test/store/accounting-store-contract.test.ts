/**
 * One contract for the accounting part of every store (memory and a real Redis): which proxy
 * makes each record, the monthly totals counting each record once, and the summary lease.
 */
import { expect } from 'chai';
import type { UsageClaim } from '../../src/store/accounting-store';
import { MemoryStore } from '../../src/store/memory-store';
import type { StateStore } from '../../src/store/store';
import { redisStoreHarness } from '../helpers/redis-store';

const DAY = 86_400_000;

function claim(id: string, over: Partial<UsageClaim> = {}): UsageClaim {
  return {
    id,
    month: '2026-11',
    group: '{"vo":"rates"}',
    wallSeconds: 10,
    cpuSeconds: 7,
    endTime: 1_795_000_000,
    ...over,
  };
}

interface Harness {
  setup?(ctx: Mocha.Context): Promise<void>;
  make(): Promise<StateStore>;
  teardown?(): Promise<void>;
}

function contract(name: string, h: Harness): void {
  describe(`accounting store contract: ${name}`, function () {
    let store: StateStore;
    before(async function () {
      await h.setup?.(this);
    });
    after(async () => h.teardown?.());
    beforeEach(async () => {
      store = await h.make();
    });
    afterEach(async () => store.close());

    it('gives each record to the first owner, and again to that owner only', async () => {
      const a = await store.accounting.claimUsageRecords('proxy-a', [claim('t1'), claim('t2')], DAY, DAY);
      expect(a).to.deep.equal([true, true]);
      const b = await store.accounting.claimUsageRecords('proxy-b', [claim('t2'), claim('t3')], DAY, DAY);
      expect(b).to.deep.equal([false, true]);
      // A restarted proxy a retries its own claims: still its own.
      const again = await store.accounting.claimUsageRecords('proxy-a', [claim('t1'), claim('t3')], DAY, DAY);
      expect(again).to.deep.equal([true, false]);
    });

    it('counts each record once in its month, with the earliest and latest end', async () => {
      await store.accounting.claimUsageRecords(
        'p',
        [claim('t1', { endTime: 1_795_000_100 }), claim('t2')],
        DAY,
        DAY,
      );
      await store.accounting.claimUsageRecords('q', [claim('t1', { wallSeconds: 999 })], DAY, DAY);
      await store.accounting.claimUsageRecords(
        'p',
        [claim('t1'), claim('t3', { group: '{"vo":"fx"}', cpuSeconds: 3 })],
        DAY,
        DAY,
      );
      await store.accounting.claimUsageRecords('p', [claim('t4', { month: '2026-12' })], DAY, DAY);
      const totals = (await store.accounting.usageTotals('2026-11')).sort((x, y) =>
        x.group.localeCompare(y.group),
      );
      expect(totals).to.deep.equal([
        {
          group: '{"vo":"fx"}',
          jobs: 1,
          wallSeconds: 10,
          cpuSeconds: 3,
          earliestEnd: 1_795_000_000,
          latestEnd: 1_795_000_000,
        },
        {
          group: '{"vo":"rates"}',
          jobs: 2,
          wallSeconds: 20,
          cpuSeconds: 14,
          earliestEnd: 1_795_000_000,
          latestEnd: 1_795_000_100,
        },
      ]);
      expect(await store.accounting.usageTotals('2026-12')).to.have.length(1);
      expect(await store.accounting.usageTotals('2025-01')).to.deep.equal([]);
    });

    it('claims hundreds of records in one call, in order', async () => {
      const many = Array.from({ length: 450 }, (_, i) => claim(`m${i}`));
      await store.accounting.claimUsageRecords(
        'other',
        many.filter((_, i) => i % 3 === 0),
        DAY,
        DAY,
      );
      const got = await store.accounting.claimUsageRecords('me', many, DAY, DAY);
      expect(got).to.deep.equal(many.map((_, i) => i % 3 !== 0));
      const [t] = await store.accounting.usageTotals('2026-11');
      expect(t!.jobs).to.equal(450);
    });

    it('holds a lease for one owner until it lapses', async () => {
      expect(await store.accounting.holdLease('summaries', 'a', 200)).to.equal(true);
      expect(await store.accounting.holdLease('summaries', 'b', 200)).to.equal(false);
      expect(await store.accounting.holdLease('summaries', 'a', 200)).to.equal(true);
      await new Promise((r) => setTimeout(r, 260));
      expect(await store.accounting.holdLease('summaries', 'b', 200)).to.equal(true);
    });
  });
}

contract('memory', { make: async () => new MemoryStore() });
const redis = redisStoreHarness('acct-contract');
contract('redis', {
  setup: (ctx) => redis.setup(ctx),
  make: () => redis.make(),
  teardown: () => redis.teardown(),
});
