/**
 * One contract for every NotificationStore, run through the StateStores that carry one: the
 * in-process MemoryStore and the shared RedisStore run the same cases, so that subscriptions,
 * pull points and watches behave the same whichever store a proxy is configured with.
 *
 * Every call that depends on time takes it as an argument, so leases "pass" by asking at a later
 * NOW rather than by sleeping: the cases are exact and take no wall-clock time.
 */
import { expect } from 'chai';
import { MemoryStore } from '../../src/store/memory-store';
import type {
  NotificationEvent,
  PullPointRecord,
  QueueCaps,
  SubscriptionRecord,
  TopicFilter,
} from '../../src/store/notification-store';
import type { StateStore } from '../../src/store/store';
import { redisStoreHarness } from '../helpers/redis-store';

const NOW = 1_900_000_000_000;
/** A claim or watch lease; it "passes" when a call is made at NOW + LEASE_MS or later. */
const LEASE_MS = 150;
const CAPS: QueueCaps = { maxMessages: 100 };

interface Harness {
  /** Runs once before the suite (in a before hook): may skip it, e.g. for a missing peer. */
  setup?(ctx: Mocha.Context): Promise<void>;
  /** A fresh store, sharing nothing with the stores of other tests. */
  make(): Promise<StateStore>;
  teardown?(): Promise<void>;
  /** Every key the current test's store holds, read behind its back (Redis only). */
  rawKeys?(): Promise<string[]>;
}

function simple(path: string): TopicFilter {
  return { path, exact: false };
}

function concrete(path: string): TopicFilter {
  return { path, exact: true };
}

function sub(over: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return {
    consumer: 'alice',
    resource: 'session:s1',
    topics: [],
    sink: {
      kind: 'http',
      address: 'https://consumer.example/notify',
      parameters: '<p:Ref xmlns:p="urn:p">r-1</p:Ref>',
    },
    soapVersion: '1.2',
    created: NOW,
    terminationAt: NOW + 3_600_000,
    base: 'https://proxy.example/symphony',
    ...over,
  };
}

function intoPullPoint(pp: string, over: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return sub({ sink: { kind: 'pullpoint', id: pp }, ...over });
}

function pullPoint(over: Partial<PullPointRecord> = {}): PullPointRecord {
  return {
    consumer: 'alice',
    created: NOW,
    expiresAt: NOW + 600_000,
    base: 'https://proxy.example/symphony',
    ...over,
  };
}

/** An event whose xml says which it is, with characters that must survive the store as they are. */
function ev(topic: string, n: number, over: Partial<NotificationEvent> = {}): NotificationEvent {
  return {
    topic,
    at: NOW + n,
    xml: `<sym:E xmlns:sym="urn:sym" n="${n}">ünï ✓ "q" &amp; \\ / ${topic}</sym:E>`,
    ...over,
  };
}

function evs(topic: string, n: number): NotificationEvent[] {
  return Array.from({ length: n }, (_, i) => ev(topic, i + 1));
}

function sorted(xs: string[]): string[] {
  return [...xs].sort();
}

function contract(name: string, h: Harness): void {
  describe(`NotificationStore contract: ${name}`, function () {
    let store: StateStore;

    async function seqs(id: string): Promise<number[]> {
      return (await store.peekQueue(id, 1000)).map((m) => m.seq);
    }

    async function topics(id: string): Promise<string[]> {
      return (await store.peekQueue(id, 1000)).map((m) => m.topic);
    }

    /** Claims at `at` and expects exactly `id`, returning its epoch. */
    async function claimOne(id: string, at = NOW): Promise<number> {
      const c = await store.claimDeliveries(at, LEASE_MS, 10);
      expect(c.map((x) => x.id)).to.deep.equal([id]);
      return c[0]!.epoch;
    }

    before(async function () {
      if (h.setup) await h.setup(this);
    });

    after(async () => {
      if (h.teardown) await h.teardown();
    });

    beforeEach(async () => {
      store = await h.make();
    });

    afterEach(async () => {
      await store.close();
    });

    describe('subscriptions', () => {
      it('round-trips a subscription with its counters at zero; an unknown id is undefined', async () => {
        const a = sub({ serviceVersion: 'urn:sv:1', topics: [simple('TaskStateChanged')] });
        const b = intoPullPoint('p1', { consumer: 'bob', resource: 'connection:c1', soapVersion: '1.1' });
        await store.putSubscription('a', a);
        await store.putSubscription('b', b);
        const zero = { paused: false, seq: 0, acked: 0, attempts: 0, dropped: 0, ending: false };
        expect(await store.getSubscription('a')).to.deep.equal({ ...a, ...zero });
        expect(await store.getSubscription('b')).to.deep.equal({ ...b, ...zero });
        expect(await store.getSubscription('nope')).to.equal(undefined);
      });

      it('renew moves terminationAt and keeps the rest; false when gone, and nothing is created', async () => {
        const a = sub();
        await store.putSubscription('a', a);
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        expect(await store.renewSubscription('a', NOW + 7_200_000)).to.equal(true);
        expect(await store.getSubscription('a')).to.deep.include({
          ...a,
          terminationAt: NOW + 7_200_000,
          seq: 1,
        });
        expect(await store.renewSubscription('nope', NOW)).to.equal(false);
        expect(await store.getSubscription('nope')).to.equal(undefined);
      });

      it('subscriptionsOf lists a resource and countSubscriptions a consumer, following deletes', async () => {
        await store.putSubscription('a', sub());
        await store.putSubscription('b', sub({ resource: 'connection:c1' }));
        await store.putSubscription('c', sub({ consumer: 'bob' }));
        expect(sorted(await store.subscriptionsOf('session:s1'))).to.deep.equal(['a', 'c']);
        expect(await store.subscriptionsOf('connection:c1')).to.deep.equal(['b']);
        expect(await store.subscriptionsOf('session:none')).to.deep.equal([]);
        expect(await store.countSubscriptions('alice')).to.equal(2);
        expect(await store.countSubscriptions('bob')).to.equal(1);
        expect(await store.countSubscriptions('nobody')).to.equal(0);
        expect(await store.deleteSubscription('a')).to.equal(true);
        expect(await store.deleteSubscription('a'), 'already gone').to.equal(false);
        expect(await store.deleteSubscription('nope')).to.equal(false);
        expect(await store.subscriptionsOf('session:s1')).to.deep.equal(['c']);
        expect(await store.countSubscriptions('alice')).to.equal(1);
      });

      it('delete removes the queue, the indexes and any due or claimed delivery', async () => {
        await store.putSubscription('a', sub());
        await store.putSubscription('b', sub());
        await store.publish(['session:s1'], evs('TaskOutputAvailable', 2), CAPS, NOW);
        // a claimed, b due: both kinds of pending delivery are removed.
        const [claimed] = await store.claimDeliveries(NOW, LEASE_MS, 1);
        expect(claimed).to.deep.equal({ id: 'a', epoch: 1 });
        expect(await store.deleteSubscription('a')).to.equal(true);
        expect(await store.deleteSubscription('b')).to.equal(true);
        expect(await store.getSubscription('a')).to.equal(undefined);
        expect(await store.peekQueue('a', 10)).to.deep.equal([]);
        expect(await store.peekQueue('b', 10)).to.deep.equal([]);
        expect(await store.subscriptionsOf('session:s1')).to.deep.equal([]);
        expect(await store.countSubscriptions('alice')).to.equal(0);
        expect(await store.claimDeliveries(NOW + 10 * LEASE_MS, LEASE_MS, 10)).to.deep.equal([]);
        expect(
          await store.settleDelivery('a', 1, { kind: 'delivered', upto: 2 }, NOW, LEASE_MS),
        ).to.deep.equal({
          status: 'gone',
          more: false,
        });
        if (h.rawKeys) expect(await h.rawKeys(), 'nothing left behind').to.deep.equal([]);
        // The same id put again starts afresh.
        await store.putSubscription('a', sub());
        expect(await store.getSubscription('a')).to.deep.include({ seq: 0, acked: 0 });
        expect(await store.peekQueue('a', 10)).to.deep.equal([]);
      });
    });

    describe('publish', () => {
      it('Simple filters take the topic and its children, Concrete ones only the topic, none takes all', async () => {
        await store.putSubscription('simple', sub({ topics: [simple('TaskStateChanged')] }));
        await store.putSubscription('concrete', sub({ topics: [concrete('TaskStateChanged')] }));
        await store.putSubscription('done', sub({ topics: [concrete('TaskStateChanged/Done')] }));
        await store.putSubscription('all', sub({ topics: [] }));
        await store.putSubscription(
          'either',
          sub({ topics: [concrete('TaskStateChanged/Done'), simple('SessionStateChanged')] }),
        );
        const published = [
          'TaskStateChanged',
          'TaskStateChanged/Done',
          'TaskStateChangedX',
          'SessionStateChanged/Open',
        ];
        const r = await store.publish(
          ['session:s1'],
          published.map((t, i) => ev(t, i)),
          CAPS,
          NOW,
        );
        expect(r).to.deep.equal({ queued: 2 + 1 + 1 + 4 + 2, dropped: 0 });
        expect(await topics('simple')).to.deep.equal(['TaskStateChanged', 'TaskStateChanged/Done']);
        expect(await topics('concrete')).to.deep.equal(['TaskStateChanged']);
        expect(await topics('done')).to.deep.equal(['TaskStateChanged/Done']);
        expect(await topics('all')).to.deep.equal(published);
        expect(await topics('either')).to.deep.equal(['TaskStateChanged/Done', 'SessionStateChanged/Open']);
      });

      it('an always event reaches every subscription of the resource whatever its filter', async () => {
        await store.putSubscription('a', sub({ topics: [simple('TaskOutputAvailable')] }));
        await store.putSubscription('b', sub({ topics: [concrete('TaskStateChanged/Done')] }));
        await store.putSubscription('other', sub({ resource: 'session:s2' }));
        const r = await store.publish(
          ['session:s1'],
          [ev('ResourceTerminated', 1, { always: true })],
          CAPS,
          NOW,
        );
        expect(r).to.deep.equal({ queued: 2, dropped: 0 });
        expect(await topics('a')).to.deep.equal(['ResourceTerminated']);
        expect(await topics('b')).to.deep.equal(['ResourceTerminated']);
        expect(await topics('other')).to.deep.equal([]);
      });

      it("a connection's subscription gets what is published for its sessions with the connection", async () => {
        await store.putSubscription('conn', sub({ resource: 'connection:c1' }));
        await store.putSubscription('s1', sub());
        await store.putSubscription('s2', sub({ resource: 'session:s2' }));
        const r = await store.publish(
          ['session:s1', 'connection:c1'],
          [ev('TaskOutputAvailable', 1)],
          CAPS,
          NOW,
        );
        expect(r).to.deep.equal({ queued: 2, dropped: 0 });
        expect(await seqs('conn')).to.deep.equal([1]);
        expect(await seqs('s1')).to.deep.equal([1]);
        expect(await seqs('s2')).to.deep.equal([]);
      });

      it('queues one message per matching subscription and event, numbered 1, 2, 3 in event order', async () => {
        await store.putSubscription('a', sub());
        await store.putSubscription('b', sub());
        const [e1, e2, e3] = [
          ev('TaskOutputAvailable', 1),
          ev('TaskStateChanged/Done', 2),
          ev('TaskOutputAvailable', 3),
        ];
        expect(await store.publish(['session:s1'], [e1, e2], CAPS, NOW)).to.deep.equal({
          queued: 4,
          dropped: 0,
        });
        expect(await store.publish(['session:s1'], [e3], CAPS, NOW)).to.deep.equal({ queued: 2, dropped: 0 });
        const expected = [e1, e2, e3].map((e, i) => ({ seq: i + 1, topic: e.topic, at: e.at, xml: e.xml }));
        expect(await store.peekQueue('a', 10)).to.deep.equal(expected);
        expect(await store.peekQueue('b', 10)).to.deep.equal(expected);
        expect(await store.getSubscription('a')).to.deep.include({ seq: 3, acked: 0, dropped: 0 });
        // The oldest first, at most max.
        expect(await store.peekQueue('a', 2)).to.deep.equal(expected.slice(0, 2));
        expect(await store.peekQueue('a', 0)).to.deep.equal([]);
        expect(await store.peekQueue('nope', 10)).to.deep.equal([]);
      });

      it('a subscription listed under two of the published resources gets each event once', async () => {
        await store.putSubscription('a', sub());
        const r = await store.publish(['session:s1', 'session:s1'], evs('TaskOutputAvailable', 2), CAPS, NOW);
        expect(r).to.deep.equal({ queued: 2, dropped: 0 });
        expect(await seqs('a')).to.deep.equal([1, 2]);
      });

      it('a full queue drops new messages (no seq taken) and counts them until a delivery', async () => {
        await store.putSubscription('a', sub());
        const caps = { maxMessages: 3 };
        expect(await store.publish(['session:s1'], evs('TaskOutputAvailable', 5), caps, NOW)).to.deep.equal({
          queued: 3,
          dropped: 2,
        });
        expect(await store.getSubscription('a')).to.deep.include({ seq: 3, acked: 0, dropped: 2 });
        expect(await seqs('a')).to.deep.equal([1, 2, 3]);
        const epoch = await claimOne('a');
        await store.settleDelivery('a', epoch, { kind: 'delivered', upto: 2 }, NOW, LEASE_MS);
        expect(await store.getSubscription('a')).to.deep.include({ seq: 3, acked: 2, dropped: 0 });
        // One queued, room for two more.
        expect(await store.publish(['session:s1'], evs('TaskOutputAvailable', 3), caps, NOW)).to.deep.equal({
          queued: 2,
          dropped: 1,
        });
        expect(await seqs('a')).to.deep.equal([3, 4, 5]);
        expect(await store.getSubscription('a')).to.deep.include({ seq: 5, acked: 2, dropped: 1 });
      });

      it("ending marks the first resource's subscriptions, which take nothing more and end once drained", async () => {
        await store.putSubscription('s', sub());
        await store.putSubscription('c', sub({ resource: 'connection:c1' }));
        const end = ev('ResourceTerminated', 1, { always: true });
        const r = await store.publish(['session:s1', 'connection:c1'], [end], CAPS, NOW, true);
        expect(r).to.deep.equal({ queued: 2, dropped: 0 });
        expect(await store.getSubscription('s')).to.deep.include({ ending: true, seq: 1 });
        expect(await store.getSubscription('c')).to.deep.include({ ending: false, seq: 1 });
        const later = await store.publish(
          ['session:s1', 'connection:c1'],
          [ev('TaskOutputAvailable', 2)],
          CAPS,
          NOW,
        );
        expect(later).to.deep.equal({ queued: 1, dropped: 0 });
        expect(await store.getSubscription('s')).to.deep.include({ seq: 1 });
        expect(await seqs('c')).to.deep.equal([1, 2]);
        const claims = await store.claimDeliveries(NOW, LEASE_MS, 10);
        expect(claims.map((c) => c.id)).to.deep.equal(['c', 's']);
        const s = claims.find((c) => c.id === 's')!;
        expect(
          await store.settleDelivery('s', s.epoch, { kind: 'delivered', upto: 1 }, NOW, LEASE_MS),
        ).to.deep.equal({
          status: 'ok',
          more: false,
        });
        expect(await store.getSubscription('s'), 'drained: ended').to.equal(undefined);
        expect(await store.subscriptionsOf('session:s1')).to.deep.equal([]);
        expect(await store.getSubscription('c')).to.deep.include({ ending: false });
      });

      it('an ending subscription with nothing left to send ends at once', async () => {
        await store.putSubscription('idle', sub({ topics: [concrete('TaskOutputAvailable')] }));
        await store.putSubscription('busy', sub());
        const r = await store.publish(['session:s1'], [ev('TaskStateChanged/Done', 1)], CAPS, NOW, true);
        expect(r).to.deep.equal({ queued: 1, dropped: 0 });
        expect(await store.getSubscription('idle')).to.equal(undefined);
        expect(await store.getSubscription('busy')).to.deep.include({ ending: true });
        expect(await store.subscriptionsOf('session:s1')).to.deep.equal(['busy']);
      });
    });

    describe('delivery claims', () => {
      it('hands a subscription with queued messages out once per lease, with a new epoch each time', async () => {
        await store.putSubscription('a', sub());
        await store.putSubscription('empty', sub({ resource: 'session:s2' }));
        expect(await store.claimDeliveries(NOW, LEASE_MS, 10), 'nothing queued').to.deep.equal([]);
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        expect(await store.claimDeliveries(NOW, LEASE_MS, 10)).to.deep.equal([{ id: 'a', epoch: 1 }]);
        expect(await store.claimDeliveries(NOW, LEASE_MS, 10), 'claimed').to.deep.equal([]);
        expect(await store.claimDeliveries(NOW + LEASE_MS - 1, LEASE_MS, 10), 'lease running').to.deep.equal(
          [],
        );
        // The holder died: after its lease the subscription is handed out again, fenced.
        expect(await store.claimDeliveries(NOW + LEASE_MS, LEASE_MS, 10)).to.deep.equal([
          { id: 'a', epoch: 2 },
        ]);
        const stale = await store.settleDelivery(
          'a',
          1,
          { kind: 'delivered', upto: 1 },
          NOW + LEASE_MS,
          LEASE_MS,
        );
        expect(stale).to.deep.equal({ status: 'fenced', more: false });
        expect(await store.getSubscription('a'), 'the fenced settle changed nothing').to.deep.include({
          acked: 0,
        });
        expect(await seqs('a')).to.deep.equal([1]);
        const ok = await store.settleDelivery(
          'a',
          2,
          { kind: 'delivered', upto: 1 },
          NOW + LEASE_MS,
          LEASE_MS,
        );
        expect(ok).to.deep.equal({ status: 'ok', more: false });
        expect(await store.getSubscription('a')).to.deep.include({ acked: 1, seq: 1 });
        expect(await store.claimDeliveries(NOW + 100 * LEASE_MS, LEASE_MS, 10), 'drained').to.deep.equal([]);
      });

      it('messages published while claimed make no second claimant; the holder is told there is more', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        const epoch = await claimOne('a');
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 2)], CAPS, NOW + 1);
        expect(await store.claimDeliveries(NOW + 1, LEASE_MS, 10)).to.deep.equal([]);
        const first = await store.settleDelivery(
          'a',
          epoch,
          { kind: 'delivered', upto: 1 },
          NOW + 10,
          LEASE_MS,
        );
        expect(first).to.deep.equal({ status: 'ok', more: true });
        // The claim was kept and renewed from the settle's time.
        expect(await store.claimDeliveries(NOW + LEASE_MS, LEASE_MS, 10)).to.deep.equal([]);
        expect(await seqs('a')).to.deep.equal([2]);
        const second = await store.settleDelivery(
          'a',
          epoch,
          { kind: 'delivered', upto: 2 },
          NOW + 20,
          LEASE_MS,
        );
        expect(second).to.deep.equal({ status: 'ok', more: false });
        // Released: a settle under it now is fenced, and nothing is due.
        const again = await store.settleDelivery(
          'a',
          epoch,
          { kind: 'delivered', upto: 2 },
          NOW + 20,
          LEASE_MS,
        );
        expect(again).to.deep.equal({ status: 'fenced', more: false });
        expect(await store.claimDeliveries(NOW + 100 * LEASE_MS, LEASE_MS, 10)).to.deep.equal([]);
        // A new message makes it due again.
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 3)], CAPS, NOW + 30);
        expect(await store.claimDeliveries(NOW + 30, LEASE_MS, 10)).to.deep.equal([{ id: 'a', epoch: 2 }]);
      });

      it('delivered acknowledges up to upto only, and resets attempts and dropped', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], evs('TaskOutputAvailable', 4), { maxMessages: 3 }, NOW);
        let epoch = await claimOne('a');
        await store.settleDelivery('a', epoch, { kind: 'retry', attempts: 2, atMs: NOW }, NOW, LEASE_MS);
        expect(await store.getSubscription('a')).to.deep.include({ attempts: 2, dropped: 1 });
        epoch = await claimOne('a');
        const r = await store.settleDelivery('a', epoch, { kind: 'delivered', upto: 2 }, NOW, LEASE_MS);
        expect(r).to.deep.equal({ status: 'ok', more: true });
        expect(await store.getSubscription('a')).to.deep.include({
          seq: 3,
          acked: 2,
          attempts: 0,
          dropped: 0,
        });
        expect(await seqs('a')).to.deep.equal([3]);
        // upto beyond the last queued message acknowledges what there is.
        expect(
          await store.settleDelivery('a', epoch, { kind: 'delivered', upto: 99 }, NOW, LEASE_MS),
        ).to.deep.equal({
          status: 'ok',
          more: false,
        });
        expect(await store.getSubscription('a')).to.deep.include({ seq: 3, acked: 3 });
        expect(await seqs('a')).to.deep.equal([]);
      });

      it('retry records the attempts, releases the claim and makes it due at atMs, not before', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        const epoch = await claimOne('a');
        const r = await store.settleDelivery(
          'a',
          epoch,
          { kind: 'retry', attempts: 1, atMs: NOW + 5000 },
          NOW,
          LEASE_MS,
        );
        expect(r).to.deep.equal({ status: 'ok', more: false });
        expect(await store.getSubscription('a')).to.deep.include({ attempts: 1, acked: 0 });
        expect(await seqs('a')).to.deep.equal([1]);
        const late = await store.settleDelivery('a', epoch, { kind: 'delivered', upto: 1 }, NOW, LEASE_MS);
        expect(late, 'the claim was released').to.deep.equal({ status: 'fenced', more: false });
        // A new message does not cut the backoff short.
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 2)], CAPS, NOW + 100);
        expect(await store.claimDeliveries(NOW + 4999, LEASE_MS, 10)).to.deep.equal([]);
        expect(await store.claimDeliveries(NOW + 5000, LEASE_MS, 10)).to.deep.equal([{ id: 'a', epoch: 2 }]);
      });

      it('dead moves messages up to upto to the dead letters, newest first, and goes on as delivered', async () => {
        await store.putSubscription('a', sub({ consumer: 'carol' }));
        const events = evs('TaskStateChanged/Failed', 3);
        await store.publish(['session:s1'], events, CAPS, NOW);
        const epoch = await claimOne('a');
        await store.settleDelivery('a', epoch, { kind: 'retry', attempts: 3, atMs: NOW }, NOW, LEASE_MS);
        const epoch2 = await claimOne('a');
        const reason = 'HTTP 400: "bad request" ✗';
        const r = await store.settleDelivery(
          'a',
          epoch2,
          { kind: 'dead', upto: 2, reason, attempts: 4 },
          NOW + 7,
          LEASE_MS,
        );
        expect(r).to.deep.equal({ status: 'ok', more: true });
        expect(await store.getSubscription('a')).to.deep.include({ acked: 2, attempts: 0 });
        expect(await seqs('a')).to.deep.equal([3]);
        const letter = (seq: number): object => ({
          subscription: 'a',
          consumer: 'carol',
          seq,
          topic: 'TaskStateChanged/Failed',
          at: events[seq - 1]!.at,
          deadAt: NOW + 7,
          attempts: 4,
          reason,
        });
        expect(await store.listDeadLetters(10)).to.deep.equal([letter(2), letter(1)]);
        expect(await store.listDeadLetters(1)).to.deep.equal([letter(2)]);
        expect(await store.listDeadLetters(0)).to.deep.equal([]);
        // Dead letters stay when the subscription goes.
        await store.deleteSubscription('a');
        expect(await store.listDeadLetters(10)).to.deep.equal([letter(2), letter(1)]);
      });

      it('an ending subscription drained by a dead settle is deleted', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], [ev('ResourceTerminated', 1, { always: true })], CAPS, NOW, true);
        const epoch = await claimOne('a');
        const r = await store.settleDelivery(
          'a',
          epoch,
          { kind: 'dead', upto: 1, reason: 'gone', attempts: 12 },
          NOW,
          LEASE_MS,
        );
        expect(r).to.deep.equal({ status: 'ok', more: false });
        expect(await store.getSubscription('a')).to.equal(undefined);
        expect(await store.listDeadLetters(10)).to.have.length(1);
      });

      it('paused subscriptions are not handed out; resuming makes them due now', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        expect(await store.setSubscriptionPaused('a', true, NOW)).to.equal(true);
        expect(await store.claimDeliveries(NOW + 1000, LEASE_MS, 10)).to.deep.equal([]);
        // Messages still queue while paused.
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 2)], CAPS, NOW + 1000);
        expect(await store.getSubscription('a')).to.deep.include({ paused: true, seq: 2 });
        expect(await store.claimDeliveries(NOW + 2000, LEASE_MS, 10)).to.deep.equal([]);
        expect(await store.setSubscriptionPaused('a', false, NOW + 3000)).to.equal(true);
        expect(await store.claimDeliveries(NOW + 2999, LEASE_MS, 10), 'due at the resume').to.deep.equal([]);
        expect(await store.claimDeliveries(NOW + 3000, LEASE_MS, 10)).to.deep.equal([{ id: 'a', epoch: 1 }]);
        expect(await store.setSubscriptionPaused('nope', true, NOW)).to.equal(false);
        expect(await store.setSubscriptionPaused('nope', false, NOW)).to.equal(false);
      });

      it('pausing a claimed subscription lets its holder settle, then hands it to nobody until resumed', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], evs('TaskOutputAvailable', 2), CAPS, NOW);
        const epoch = await claimOne('a');
        await store.setSubscriptionPaused('a', true, NOW);
        const r = await store.settleDelivery('a', epoch, { kind: 'delivered', upto: 1 }, NOW, LEASE_MS);
        expect(r, 'no next batch while paused').to.deep.equal({ status: 'ok', more: false });
        expect(await store.claimDeliveries(NOW + 100 * LEASE_MS, LEASE_MS, 10)).to.deep.equal([]);
        await store.setSubscriptionPaused('a', false, NOW + 100 * LEASE_MS);
        expect(await store.claimDeliveries(NOW + 100 * LEASE_MS, LEASE_MS, 10)).to.deep.equal([
          { id: 'a', epoch: 2 },
        ]);
        // A claim that lapses while paused is not handed out either.
        await store.setSubscriptionPaused('a', true, NOW);
        expect(await store.claimDeliveries(NOW + 1000 * LEASE_MS, LEASE_MS, 10)).to.deep.equal([]);
      });

      it('settle on a deleted subscription is gone', async () => {
        await store.putSubscription('a', sub());
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        const epoch = await claimOne('a');
        await store.deleteSubscription('a');
        for (const outcome of [
          { kind: 'delivered', upto: 1 },
          { kind: 'retry', attempts: 1, atMs: NOW },
          { kind: 'dead', upto: 1, reason: 'x', attempts: 1 },
        ] as const) {
          expect(await store.settleDelivery('a', epoch, outcome, NOW, LEASE_MS)).to.deep.equal({
            status: 'gone',
            more: false,
          });
        }
        expect(await store.listDeadLetters(10)).to.deep.equal([]);
      });

      it('honours max, oldest due first, leaving the rest for the next claim', async () => {
        for (const [i, id] of ['c', 'a', 'b'].entries()) {
          await store.putSubscription(id, sub({ resource: `session:${id}` }));
          await store.publish([`session:${id}`], [ev('TaskOutputAvailable', 1)], CAPS, NOW + i);
        }
        const first = await store.claimDeliveries(NOW + 10, LEASE_MS, 2);
        expect(first.map((c) => c.id)).to.deep.equal(['c', 'a']);
        expect(await store.claimDeliveries(NOW + 10, LEASE_MS, 2)).to.deep.equal([{ id: 'b', epoch: 1 }]);
        expect(await store.claimDeliveries(NOW + 10, LEASE_MS, 2)).to.deep.equal([]);
        expect(await store.claimDeliveries(NOW + 10 + LEASE_MS, LEASE_MS, 0), 'max 0').to.deep.equal([]);
      });

      it('concurrent claims hand each subscription to exactly one claimant', async () => {
        const ids = Array.from({ length: 12 }, (_, i) => `s${String(i).padStart(2, '0')}`);
        for (const id of ids) await store.putSubscription(id, sub());
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        const all = await Promise.all(
          Array.from({ length: 8 }, () => store.claimDeliveries(NOW, LEASE_MS, 3)),
        );
        const got = all.flat();
        expect(sorted(got.map((c) => c.id))).to.deep.equal(ids);
        expect(got.every((c) => c.epoch === 1)).to.equal(true);
      });
    });

    describe('pull points', () => {
      it('round-trips a pull point with its counters at zero; countPullPoints counts per consumer', async () => {
        const p = pullPoint({ serviceVersion: 'urn:sv:2' });
        await store.putPullPoint('p1', p);
        await store.putPullPoint('p2', pullPoint());
        await store.putPullPoint('p3', pullPoint({ consumer: 'bob' }));
        expect(await store.getPullPoint('p1')).to.deep.equal({
          ...p,
          seq: 0,
          acked: 0,
          outstanding: 0,
          dropped: 0,
        });
        expect(await store.getPullPoint('nope')).to.equal(undefined);
        expect(await store.countPullPoints('alice')).to.equal(2);
        expect(await store.countPullPoints('bob')).to.equal(1);
        expect(await store.countPullPoints('nobody')).to.equal(0);
      });

      it("a pull-point sink queues into the pull point, with the subscription's id and own seq", async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.putSubscription('y', intoPullPoint('p1', { topics: [simple('TaskStateChanged')] }));
        await store.putSubscription('z', sub());
        const [e1, e2] = [ev('TaskOutputAvailable', 1), ev('TaskStateChanged/Done', 2)];
        const r = await store.publish(['session:s1'], [e1, e2], CAPS, NOW);
        expect(r).to.deep.equal({ queued: 5, dropped: 0 });
        const got = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW + 600_000 });
        const msg = (
          seq: number,
          subscription: string,
          subscriptionSeq: number,
          e: NotificationEvent,
        ): object => ({
          seq,
          subscription,
          subscriptionSeq,
          topic: e.topic,
          at: e.at,
          xml: e.xml,
        });
        expect(got).to.deep.equal({
          status: 'ok',
          messages: [msg(1, 'x', 1, e1), msg(2, 'x', 2, e2), msg(3, 'y', 1, e2)],
          dropped: 0,
        });
        expect(await store.getSubscription('x')).to.deep.include({ seq: 2 });
        // Nothing waits in the subscriptions themselves: only z is for a sender.
        expect(await store.peekQueue('x', 10)).to.deep.equal([]);
        expect((await store.claimDeliveries(NOW, LEASE_MS, 10)).map((c) => c.id)).to.deep.equal(['z']);
      });

      it('implicit ack: each GetMessages acknowledges the batch before and hands out the next', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.publish(['session:s1'], evs('TaskOutputAvailable', 5), CAPS, NOW);
        const get = async (max: number): Promise<number[]> => {
          const r = await store.getMessages('p1', { ack: 'implicit', max, expiresAt: NOW + 600_000 });
          expect(r.status).to.equal('ok');
          return r.messages.map((m) => m.seq);
        };
        expect(await get(2)).to.deep.equal([1, 2]);
        expect(await store.getPullPoint('p1')).to.deep.include({ seq: 5, acked: 0, outstanding: 2 });
        expect(await get(2)).to.deep.equal([3, 4]);
        expect(await store.getPullPoint('p1')).to.deep.include({ acked: 2, outstanding: 4 });
        expect(await get(10)).to.deep.equal([5]);
        expect(await get(10)).to.deep.equal([]);
        expect(await store.getPullPoint('p1')).to.deep.include({ seq: 5, acked: 5, outstanding: 5 });
      });

      it('explicit ack: a repeat gets the same batch, and an ack beyond what was handed out changes nothing', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.publish(['session:s1'], evs('TaskOutputAvailable', 5), CAPS, NOW);
        const get = async (ack: number, max: number, expiresAt = NOW + 600_000): Promise<number[]> => {
          const r = await store.getMessages('p1', { ack, max, expiresAt });
          expect(r.status).to.equal('ok');
          return r.messages.map((m) => m.seq);
        };
        expect(await get(0, 2)).to.deep.equal([1, 2]);
        expect(await get(0, 2), 'repeat').to.deep.equal([1, 2]);
        expect(await get(2, 2)).to.deep.equal([3, 4]);
        expect(await get(2, 2), 'repeat').to.deep.equal([3, 4]);
        const before = await store.getPullPoint('p1');
        expect(before).to.deep.include({ acked: 2, outstanding: 4 });
        expect(await store.getMessages('p1', { ack: 5, max: 10, expiresAt: NOW + 900_000 })).to.deep.equal({
          status: 'beyond',
          messages: [],
          dropped: 0,
        });
        expect(await store.getPullPoint('p1'), 'nothing changed').to.deep.equal(before);
        // A partial ack hands out from the first unacknowledged message.
        expect(await get(3, 10)).to.deep.equal([4, 5]);
        // An older ack repeated acknowledges nothing new.
        expect(await get(1, 1)).to.deep.equal([4]);
        expect(await store.getPullPoint('p1')).to.deep.include({ seq: 5, acked: 3, outstanding: 5 });
        expect(await get(5, 10)).to.deep.equal([]);
      });

      it('GetMessages moves expiresAt; an unknown pull point is gone', async () => {
        await store.putPullPoint('p1', pullPoint());
        const r = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW + 1_234_000 });
        expect(r).to.deep.equal({ status: 'ok', messages: [], dropped: 0 });
        expect(await store.getPullPoint('p1')).to.deep.include({ expiresAt: NOW + 1_234_000 });
        expect(await store.getMessages('nope', { ack: 'implicit', max: 10, expiresAt: NOW })).to.deep.equal({
          status: 'gone',
          messages: [],
          dropped: 0,
        });
        expect(await store.getMessages('nope', { ack: 0, max: 10, expiresAt: NOW })).to.deep.include({
          status: 'gone',
        });
        expect(await store.getPullPoint('nope'), 'nothing created').to.equal(undefined);
      });

      it('deletePullPoint removes its queue and the subscriptions that feed it', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putPullPoint('p2', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.putSubscription('y', intoPullPoint('p1', { resource: 'connection:c1' }));
        await store.putSubscription('w', intoPullPoint('p2'));
        await store.putSubscription('z', sub());
        await store.publish(['session:s1', 'connection:c1'], evs('TaskOutputAvailable', 2), CAPS, NOW);
        expect(await store.deletePullPoint('p1')).to.equal(true);
        expect(await store.deletePullPoint('p1'), 'already gone').to.equal(false);
        expect(await store.deletePullPoint('nope')).to.equal(false);
        expect(await store.getPullPoint('p1')).to.equal(undefined);
        expect((await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW })).status).to.equal(
          'gone',
        );
        expect(await store.getSubscription('x')).to.equal(undefined);
        expect(await store.getSubscription('y')).to.equal(undefined);
        expect(sorted(await store.subscriptionsOf('session:s1'))).to.deep.equal(['w', 'z']);
        expect(await store.subscriptionsOf('connection:c1')).to.deep.equal([]);
        expect(await store.countSubscriptions('alice')).to.equal(2);
        expect(await store.countPullPoints('alice')).to.equal(1);
        expect((await store.getPullPoint('p2'))!.seq, 'the other pull point is untouched').to.equal(2);
        // Put again: empty.
        await store.putPullPoint('p1', pullPoint());
        expect(await store.getPullPoint('p1')).to.deep.include({ seq: 0, acked: 0, outstanding: 0 });
        expect(
          (await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW })).messages,
        ).to.deep.equal([]);
        if (h.rawKeys) {
          await store.deletePullPoint('p1');
          await store.deletePullPoint('p2');
          await store.deleteSubscription('z');
          expect(await h.rawKeys(), 'nothing left behind').to.deep.equal([]);
        }
      });

      it('a full pull point drops new messages and counts them, reported once by GetMessages', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        const caps = { maxMessages: 2 };
        expect(await store.publish(['session:s1'], evs('TaskOutputAvailable', 3), caps, NOW)).to.deep.equal({
          queued: 2,
          dropped: 1,
        });
        expect(await store.getPullPoint('p1')).to.deep.include({ seq: 2, dropped: 1 });
        const r = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW });
        expect(r.messages.map((m) => m.seq)).to.deep.equal([1, 2]);
        expect(r.dropped).to.equal(1);
        expect(await store.getPullPoint('p1')).to.deep.include({ dropped: 0 });
        // Handed out but not acknowledged still counts against the cap.
        expect(await store.publish(['session:s1'], evs('TaskOutputAvailable', 1), caps, NOW)).to.deep.equal({
          queued: 0,
          dropped: 1,
        });
        await store.getMessages('p1', { ack: 2, max: 0, expiresAt: NOW });
        expect(await store.publish(['session:s1'], evs('TaskOutputAvailable', 1), caps, NOW)).to.deep.equal({
          queued: 1,
          dropped: 0,
        });
      });

      it('an ending subscription into a pull point is deleted at once; its messages stay', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        const end = ev('ResourceTerminated', 1, { always: true });
        expect(await store.publish(['session:s1'], [end], CAPS, NOW, true)).to.deep.equal({
          queued: 1,
          dropped: 0,
        });
        expect(await store.getSubscription('x')).to.equal(undefined);
        expect(await store.subscriptionsOf('session:s1')).to.deep.equal([]);
        const r = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW });
        expect(r.messages.map((m) => [m.topic, m.subscription, m.subscriptionSeq])).to.deep.equal([
          ['ResourceTerminated', 'x', 1],
        ]);
      });
      it("a paused pull point's subscription keeps its messages until resumed, then hands them over in order", async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        expect(await store.setSubscriptionPaused('x', true, NOW)).to.equal(true);
        await store.publish(
          ['session:s1'],
          [ev('TaskOutputAvailable', 2), ev('TaskOutputAvailable', 3)],
          CAPS,
          NOW,
        );
        const paused = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW });
        expect(
          paused.messages.map((m) => m.subscriptionSeq),
          'only what came before the pause',
        ).to.deep.equal([1]);
        expect(await store.claimDeliveries(NOW, LEASE_MS, 10), 'never a push delivery').to.deep.equal([]);
        expect(await store.setSubscriptionPaused('x', false, NOW)).to.equal(true);
        const resumed = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW });
        expect(resumed.messages.map((m) => [m.seq, m.subscriptionSeq])).to.deep.equal([
          [2, 2],
          [3, 3],
        ]);
        const state = await store.getSubscription('x');
        expect([state!.seq, state!.acked]).to.deep.equal([3, 3]);
      });

      it('a paused subscription into a pull point that ends hands over everything, the end last', async () => {
        await store.putPullPoint('p1', pullPoint());
        await store.putSubscription('x', intoPullPoint('p1'));
        await store.setSubscriptionPaused('x', true, NOW);
        await store.publish(['session:s1'], [ev('TaskOutputAvailable', 1)], CAPS, NOW);
        await store.publish(['session:s1'], [ev('ResourceTerminated', 2, { always: true })], CAPS, NOW, true);
        expect(await store.getSubscription('x')).to.equal(undefined);
        const r = await store.getMessages('p1', { ack: 'implicit', max: 10, expiresAt: NOW });
        expect(r.messages.map((m) => m.topic)).to.deep.equal(['TaskOutputAvailable', 'ResourceTerminated']);
      });
    });

    describe('watches', () => {
      it('a watched session is handed out once until its lease passes; watching again keeps the lease', async () => {
        expect(await store.claimWatches(NOW, LEASE_MS, 10)).to.deep.equal([]);
        await store.setWatch('s1', true);
        await store.setWatch('s2', true);
        expect(sorted(await store.claimWatches(NOW, LEASE_MS, 10))).to.deep.equal(['s1', 's2']);
        expect(await store.claimWatches(NOW, LEASE_MS, 10)).to.deep.equal([]);
        expect(await store.claimWatches(NOW + LEASE_MS - 1, LEASE_MS, 10)).to.deep.equal([]);
        await store.setWatch('s1', true);
        expect(await store.claimWatches(NOW + LEASE_MS - 1, LEASE_MS, 10), 'still held').to.deep.equal([]);
        expect(sorted(await store.claimWatches(NOW + LEASE_MS, LEASE_MS, 10))).to.deep.equal(['s1', 's2']);
        await store.setWatch('s2', false);
        expect(await store.claimWatches(NOW + 10 * LEASE_MS, LEASE_MS, 10)).to.deep.equal(['s1']);
      });

      it('renewWatch extends a held watch, and is false once the session is no longer watched', async () => {
        await store.setWatch('s1', true);
        expect(await store.claimWatches(NOW, LEASE_MS, 10)).to.deep.equal(['s1']);
        expect(await store.renewWatch('s1', NOW + 100, LEASE_MS)).to.equal(true);
        expect(await store.claimWatches(NOW + LEASE_MS, LEASE_MS, 10), 'renewed').to.deep.equal([]);
        expect(await store.claimWatches(NOW + 100 + LEASE_MS, LEASE_MS, 10)).to.deep.equal(['s1']);
        await store.setWatch('s1', false);
        expect(await store.renewWatch('s1', NOW + 200, LEASE_MS)).to.equal(false);
        expect(await store.renewWatch('never', NOW, LEASE_MS)).to.equal(false);
        expect(
          await store.claimWatches(NOW + 1000 * LEASE_MS, LEASE_MS, 10),
          'renew created nothing',
        ).to.deep.equal([]);
      });

      it('claimWatches hands out at most max, the rest on the next call', async () => {
        const ids = ['s1', 's2', 's3', 's4', 's5'];
        for (const id of ids) await store.setWatch(id, true);
        const got = [
          await store.claimWatches(NOW, LEASE_MS, 2),
          await store.claimWatches(NOW, LEASE_MS, 2),
          await store.claimWatches(NOW, LEASE_MS, 2),
        ];
        expect(got.map((g) => g.length)).to.deep.equal([2, 2, 1]);
        expect(sorted(got.flat())).to.deep.equal(ids);
        expect(await store.claimWatches(NOW + LEASE_MS, LEASE_MS, 0), 'max 0').to.deep.equal([]);
      });
    });
  });
}

contract('MemoryStore', { make: async () => new MemoryStore() });

{
  const h = redisStoreHarness('ncontract');
  contract('RedisStore (real redis-server)', {
    setup: h.setup,
    make: h.make,
    teardown: h.teardown,
    rawKeys: async () => sorted(await h.raw().keys(`${h.prefix()}*`)),
  });
}
