/**
 * One contract for every StateStore: the in-process MemoryStore and the shared RedisStore run
 * the same cases, so that a proxy behaves the same whichever store it is configured with.
 * Covers the replay cache (claimOnce), remembered replies, the output leases of
 * acknowledged fetches (beginFetch, leaseOutputs, acknowledge, dropOutputs, trimLease),
 * terminations (including those the client sets), listSessions and enumeration contexts.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryStore } from '../../src/store/memory-store';
import type {
  EnumerationRecord,
  FetchLease,
  FetchStart,
  SessionRecord,
  StateStore,
  StoredOutput,
} from '../../src/store/store';
import { redisStoreHarness } from '../helpers/redis-store';

/** A lease or ttl meant to pass during the test; nothing is asserted while it still runs. */
const SHORT_MS = 150;
/** A ttl that must hold for a few calls right after it is set, then pass during the test. */
const TTL_MS = 300;
/** Waited for a SHORT_MS or TTL_MS lease or ttl to pass, with margin for a loaded machine. */
const PASS_MS = 600;
/** A ttl or lease that must not pass during the test, however slow the machine. */
const LONG_MS = 120_000;

interface Harness {
  /** Runs once before the suite (in a before hook): may skip it, e.g. for a missing peer. */
  setup?(ctx: Mocha.Context): Promise<void>;
  /** A fresh store, sharing nothing with the stores of other tests. */
  make(): Promise<StateStore>;
  teardown?(): Promise<void>;
  /** Outputs the current test's store still keeps for a session, read behind its back (Redis only). */
  rawOutputCount?(sessionId: string): Promise<number>;
  /** Leases (tokens) the current test's store keeps for a session, read behind its back (Redis only). */
  rawLeaseCount?(sessionId: string): Promise<number>;
  /** PTTL of a connection or session record (-1: no expiry, -2: none), read behind its back (Redis only). */
  rawRecordTtl?(kind: 'conn' | 'sess', id: string): Promise<number>;
}

function output(taskId: string, data = `{"taskId":"${taskId}","successful":true}`): StoredOutput {
  return { taskId, data };
}

function outputs(prefix: string, n: number): StoredOutput[] {
  return Array.from({ length: n }, (_, i) => output(`${prefix}-${i}`));
}

function datas(os: StoredOutput[]): string[] {
  return os.map((o) => o.data);
}

function sorted(xs: string[]): string[] {
  return [...xs].sort();
}

function contract(name: string, h: Harness): void {
  describe(`StateStore contract: ${name}`, function () {
    let store: StateStore;
    let sessionId: string;
    let tokens = 0;

    /** A fresh token, unique within the run (real ones are random base64url). */
    function tok(label: string): string {
      return `${label}-${++tokens}-${randomUUID().slice(0, 8)}`;
    }

    /** A fetch on the test's session: leased for LONG_MS, taking lapsed leases only, countMax 100. */
    function fetch(f: Partial<FetchLease> = {}): Promise<FetchStart> {
      return store.beginFetch({
        sessionId,
        acknowledge: undefined,
        token: tok('t'),
        leaseMs: LONG_MS,
        reclaimAll: false,
        countMax: 100,
        repeatKey: undefined,
        repeatTtlMs: LONG_MS,
        ...f,
      });
    }

    /** Everything still unacknowledged on the session, taken back (and then released). */
    async function drain(sid = sessionId): Promise<string[]> {
      const token = tok('drain');
      const r = await store.beginFetch({
        sessionId: sid,
        acknowledge: undefined,
        token,
        leaseMs: LONG_MS,
        reclaimAll: true,
        countMax: 1_000_000,
        repeatKey: undefined,
        repeatTtlMs: LONG_MS,
      });
      expect(r.repeat).to.equal(false);
      await store.acknowledge(sid, token);
      return r.outputs;
    }

    before(async function () {
      if (h.setup) await h.setup(this);
    });

    after(async () => {
      if (h.teardown) await h.teardown();
    });

    beforeEach(async () => {
      store = await h.make();
      sessionId = `sess-${randomUUID()}`;
    });

    afterEach(async () => {
      await store.close();
    });

    describe('terminations (the lifetime reaper)', () => {
      const NOW = 1_900_000_000_000;

      it('hands out what is due, once, and nothing that is not due yet', async () => {
        await store.scheduleTermination('session:a', NOW - 1);
        await store.scheduleTermination('session:b', NOW);
        await store.scheduleTermination('connection:c', NOW + 60_000);
        expect(await store.terminationOf('connection:c')).to.equal(NOW + 60_000);
        expect(sorted(await store.claimTerminations(NOW, LONG_MS, 10))).to.deep.equal([
          'session:a',
          'session:b',
        ]);
        expect(await store.claimTerminations(NOW, LONG_MS, 10)).to.deep.equal([]);
        expect(await store.terminationOf('session:a'), 'claimed: no longer scheduled').to.equal(null);
        expect(await store.claimTerminations(NOW + 60_000, LONG_MS, 10)).to.deep.equal(['connection:c']);
      });

      it('hands a claim out again when its holder lets the lease lapse, and never once finished', async () => {
        await store.scheduleTermination('session:a', NOW);
        await store.scheduleTermination('session:b', NOW);
        expect(sorted(await store.claimTerminations(NOW, 1000, 10))).to.deep.equal([
          'session:a',
          'session:b',
        ]);
        await store.finishTermination('session:b');
        expect(await store.claimTerminations(NOW + 999, 1000, 10), 'lease still running').to.deep.equal([]);
        expect(await store.claimTerminations(NOW + 1000, 1000, 10), 'the holder died').to.deep.equal([
          'session:a',
        ]);
        await store.finishTermination('session:a');
        expect(await store.claimTerminations(NOW + 10_000, 1000, 10)).to.deep.equal([]);
      });

      it('a new schedule replaces a pending one or a claim; null cancels', async () => {
        await store.scheduleTermination('session:a', NOW);
        await store.scheduleTermination('session:a', NOW + 5000);
        expect(await store.claimTerminations(NOW, LONG_MS, 10)).to.deep.equal([]);
        expect(await store.claimTerminations(NOW + 5000, 1000, 10)).to.deep.equal(['session:a']);
        // Rescheduled while claimed (SetTerminationTime during a reap): the claim ends, the schedule stays.
        await store.scheduleTermination('session:a', NOW + 9000);
        await store.finishTermination('session:a');
        expect(await store.claimTerminations(NOW + 7000, 1000, 10)).to.deep.equal([]);
        expect(await store.terminationOf('session:a')).to.equal(NOW + 9000);
        await store.scheduleTermination('session:a', null);
        expect(await store.terminationOf('session:a')).to.equal(null);
        expect(await store.claimTerminations(NOW + 100_000, 1000, 10)).to.deep.equal([]);
      });

      it('honours max, leaving the rest for the next claim', async () => {
        for (let i = 0; i < 5; i++) await store.scheduleTermination(`session:${i}`, NOW - i);
        const first = await store.claimTerminations(NOW, LONG_MS, 3);
        expect(first).to.have.length(3);
        const second = await store.claimTerminations(NOW, LONG_MS, 3);
        expect(sorted([...first, ...second])).to.deep.equal([
          'session:0',
          'session:1',
          'session:2',
          'session:3',
          'session:4',
        ]);
      });
    });

    describe('claimOnce', () => {
      it('claims a new key, answers resend to the same tag and taken to another', async () => {
        const key = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(key, LONG_MS, 'msg-1')).to.equal('claimed');
        expect(await store.claimOnce(key, LONG_MS, 'msg-1')).to.equal('resend');
        expect(await store.claimOnce(key, LONG_MS, 'msg-2')).to.equal('taken');
        expect(await store.claimOnce(key, LONG_MS, '')).to.equal('taken');
        expect(await store.claimOnce(key, LONG_MS)).to.equal('taken');
        // Neither a replay nor a resend rewrote the recorded tag.
        expect(await store.claimOnce(key, LONG_MS, 'msg-1')).to.equal('resend');
      });

      it('treats an omitted tag as the empty tag', async () => {
        const a = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(a, LONG_MS)).to.equal('claimed');
        expect(await store.claimOnce(a, LONG_MS)).to.equal('resend');
        expect(await store.claimOnce(a, LONG_MS, '')).to.equal('resend');
        expect(await store.claimOnce(a, LONG_MS, 'x')).to.equal('taken');

        const b = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(b, LONG_MS, '')).to.equal('claimed');
        expect(await store.claimOnce(b, LONG_MS)).to.equal('resend');
      });

      it('tells the empty tag from tags that look like its encoding', async () => {
        const empty = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(empty, LONG_MS)).to.equal('claimed');
        for (const tag of ['-', '=', '=-', ' '])
          expect(await store.claimOnce(empty, LONG_MS, tag)).to.equal('taken');
        const dash = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(dash, LONG_MS, '-')).to.equal('claimed');
        expect(await store.claimOnce(dash, LONG_MS)).to.equal('taken');
        expect(await store.claimOnce(dash, LONG_MS, '-')).to.equal('resend');
      });

      it('keeps keys apart', async () => {
        const [a, b] = [`nonce-${randomUUID()}`, `nonce-${randomUUID()}`];
        expect(await store.claimOnce(a, LONG_MS, 't')).to.equal('claimed');
        expect(await store.claimOnce(b, LONG_MS, 'u')).to.equal('claimed');
        expect(await store.claimOnce(b, LONG_MS, 't')).to.equal('taken');
      });

      it('forgets a key once its ttl has passed', async () => {
        const key = `nonce-${randomUUID()}`;
        const keep = `nonce-${randomUUID()}`;
        expect(await store.claimOnce(key, TTL_MS, 'msg-1')).to.equal('claimed');
        expect(await store.claimOnce(key, TTL_MS, 'msg-1')).to.equal('resend');
        expect(await store.claimOnce(keep, LONG_MS, 'msg-1')).to.equal('claimed');
        await sleep(PASS_MS);
        expect(await store.claimOnce(key, LONG_MS, 'msg-2')).to.equal('claimed');
        expect(await store.claimOnce(key, LONG_MS, 'msg-2')).to.equal('resend');
        expect(await store.claimOnce(key, LONG_MS, 'msg-1')).to.equal('taken');
        expect(await store.claimOnce(keep, LONG_MS, 'msg-1')).to.equal('resend');
      });
    });

    describe('getReply / putReply', () => {
      const rec = { fingerprint: 'sha256:abc', reply: '{"taskId":["t-1","t-2"],"note":"ünïcødé ✓"}' };

      it('round-trips a reply and answers undefined for an unknown key', async () => {
        const key = `ck-${randomUUID()}`;
        expect(await store.getReply(key)).to.equal(undefined);
        await store.putReply(key, rec, LONG_MS);
        expect(await store.getReply(key)).to.deep.equal(rec);
        expect(await store.getReply(key)).to.deep.equal(rec);
      });

      it('keeps keys apart and lets a later put replace a reply', async () => {
        const [a, b] = [`ck-${randomUUID()}`, `ck-${randomUUID()}`];
        const other = { fingerprint: 'sha256:def', reply: '{}' };
        await store.putReply(a, rec, LONG_MS);
        await store.putReply(b, other, LONG_MS);
        expect(await store.getReply(a)).to.deep.equal(rec);
        expect(await store.getReply(b)).to.deep.equal(other);
        await store.putReply(a, other, LONG_MS);
        expect(await store.getReply(a)).to.deep.equal(other);
        expect(await store.getReply(b)).to.deep.equal(other);
      });

      it('forgets a reply once its ttl has passed', async () => {
        const [gone, kept] = [`ck-${randomUUID()}`, `ck-${randomUUID()}`];
        await store.putReply(gone, rec, SHORT_MS);
        await store.putReply(kept, rec, LONG_MS);
        await sleep(PASS_MS);
        expect(await store.getReply(gone)).to.equal(undefined);
        expect(await store.getReply(kept)).to.deep.equal(rec);
      });
    });

    describe('output leases', () => {
      it('a leased fetch with nothing stored answers no outputs under its own token', async () => {
        const token = tok('first');
        const r = await fetch({ token });
        expect(r).to.deep.equal({ repeat: false, token, outputs: [] });
        expect(await fetch({ reclaimAll: true })).to.deep.include({ repeat: false, outputs: [] });
      });

      it('acknowledge releases a lease for good', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.acknowledge(sessionId, t1);
        expect(await drain()).to.deep.equal([]);
      });

      it('hands an unacknowledged lease to the next leased fetch once it lapses, and again after that one lapses', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1, leaseMs: SHORT_MS });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, SHORT_MS);
        await sleep(PASS_MS);
        const t2 = tok('t2');
        const second = await fetch({ token: t2, leaseMs: SHORT_MS });
        expect(second).to.deep.equal({ repeat: false, token: t2, outputs: datas(os) });
        await sleep(PASS_MS);
        const t3 = tok('t3');
        const third = await fetch({ token: t3 });
        expect(third).to.deep.equal({ repeat: false, token: t3, outputs: datas(os) });
        // Now under t3's long lease: a fetch that only takes lapsed leases gets nothing.
        expect((await fetch()).outputs).to.deep.equal([]);
        await store.acknowledge(sessionId, t3);
        expect(await drain()).to.deep.equal([]);
      });

      it('hands a lapsed lease to an unleased fetch, after which its outputs are forgotten', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1, leaseMs: SHORT_MS });
        const os = outputs('a', 4);
        await store.leaseOutputs(sessionId, t1, os, SHORT_MS);
        await sleep(PASS_MS);
        const t2 = tok('t2');
        expect(await fetch({ token: t2, leaseMs: 0 })).to.deep.equal({
          repeat: false,
          token: t2,
          outputs: datas(os),
        });
        expect((await fetch({ leaseMs: 0 })).outputs).to.deep.equal([]);
        expect(await drain()).to.deep.equal([]);
      });

      it('an unleased fetch takes no lease that has not lapsed, even with reclaimAll', async () => {
        const t1 = tok('t1');
        await store.leaseOutputs(sessionId, t1, outputs('a', 2), LONG_MS);
        expect((await fetch({ leaseMs: 0 })).outputs).to.deep.equal([]);
        expect((await fetch({ leaseMs: 0, reclaimAll: true })).outputs).to.deep.equal([]);
        expect(await drain()).to.have.length(2);
      });

      it('leaseOutputs creates a lease for a token no fetch began, and adds to an existing one', async () => {
        const t1 = tok('t1');
        await store.leaseOutputs(sessionId, t1, outputs('a', 2), SHORT_MS);
        await store.leaseOutputs(sessionId, t1, outputs('b', 1), SHORT_MS);
        await sleep(PASS_MS);
        expect((await fetch()).outputs).to.deep.equal(datas([...outputs('a', 2), ...outputs('b', 1)]));
      });

      it('countMax splits a lapsed lease: the rest stays lapsed for the next fetch, nothing lost or duplicated', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1, leaseMs: SHORT_MS });
        const os = outputs('a', 5);
        await store.leaseOutputs(sessionId, t1, os, SHORT_MS);
        await sleep(PASS_MS);
        const got: string[][] = [];
        // t2, t3, t4 are long leases: only t1's remainder is lapsed, without waiting again.
        got.push((await fetch({ countMax: 2 })).outputs);
        got.push((await fetch({ countMax: 2 })).outputs);
        got.push((await fetch({ countMax: 10 })).outputs);
        got.push((await fetch({ countMax: 10 })).outputs);
        // Order within a lease is kept.
        expect(got).to.deep.equal([datas(os.slice(0, 2)), datas(os.slice(2, 4)), datas(os.slice(4)), []]);
        // All five are still leased (to the three fetches), each exactly once.
        expect(sorted(await drain())).to.deep.equal(sorted(datas(os)));
        expect(await drain()).to.deep.equal([]);
      });

      it('countMax across several lapsed leases: each output goes to exactly one fetch', async () => {
        const [a, b, c] = [outputs('a', 3), outputs('b', 3), outputs('c', 1)];
        await store.leaseOutputs(sessionId, tok('ta'), a, SHORT_MS);
        await store.leaseOutputs(sessionId, tok('tb'), b, SHORT_MS);
        await store.leaseOutputs(sessionId, tok('tc'), c, SHORT_MS);
        await sleep(PASS_MS);
        const first = await fetch({ countMax: 4, leaseMs: 0 });
        const second = await fetch({ countMax: 2 });
        const third = await fetch({ countMax: 4 });
        expect(first.outputs).to.have.length(4);
        expect(second.outputs).to.have.length(2);
        expect(third.outputs).to.have.length(1);
        const all = [...first.outputs, ...second.outputs, ...third.outputs];
        expect(sorted(all)).to.deep.equal(sorted(datas([...a, ...b, ...c])));
        // The unleased fetch's outputs are gone, the leased ones' are still held.
        expect(sorted(await drain())).to.deep.equal(sorted([...second.outputs, ...third.outputs]));
      });

      it('countMax 0 takes nothing and leaves lapsed leases for the next fetch', async () => {
        const os = outputs('a', 2);
        await store.leaseOutputs(sessionId, tok('t1'), os, SHORT_MS);
        await sleep(PASS_MS);
        expect((await fetch({ countMax: 0 })).outputs).to.deep.equal([]);
        expect((await fetch({ countMax: 0, reclaimAll: true })).outputs).to.deep.equal([]);
        expect((await fetch()).outputs).to.deep.equal(datas(os));
      });

      it('reclaimAll takes back leases that have not lapsed', async () => {
        const [t1, t2] = [tok('t1'), tok('t2')];
        await fetch({ token: t1 });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        // Not lapsed: a fetch that takes lapsed leases only gets nothing.
        expect((await fetch()).outputs).to.deep.equal([]);
        expect(await fetch({ token: t2, reclaimAll: true })).to.deep.equal({
          repeat: false,
          token: t2,
          outputs: datas(os),
        });
        // Moved to t2: acknowledging t1 now releases nothing.
        await store.acknowledge(sessionId, t1);
        expect((await fetch()).outputs).to.deep.equal([]);
        await store.acknowledge(sessionId, t2);
        expect(await drain()).to.deep.equal([]);
      });

      it("beginFetch's acknowledge releases the previous lease before reclaiming", async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        await store.leaseOutputs(sessionId, t1, outputs('a', 2), LONG_MS);
        const other = outputs('b', 1);
        await store.leaseOutputs(sessionId, tok('tx'), other, LONG_MS);
        const r = await fetch({ acknowledge: t1, reclaimAll: true });
        expect(r.outputs).to.deep.equal(datas(other));
        expect(await drain()).to.deep.equal(datas(other));
      });

      it("beginFetch's acknowledge of a lapsed lease releases it rather than handing it out", async () => {
        const t1 = tok('t1');
        await fetch({ token: t1, leaseMs: SHORT_MS });
        await store.leaseOutputs(sessionId, t1, outputs('a', 2), SHORT_MS);
        await sleep(PASS_MS);
        expect((await fetch({ acknowledge: t1 })).outputs).to.deep.equal([]);
        expect((await fetch({ acknowledge: t1, leaseMs: 0 })).outputs).to.deep.equal([]);
        expect(await drain()).to.deep.equal([]);
      });

      it('acknowledge of an unknown token (or session) is a no-op', async () => {
        const t1 = tok('t1');
        const os = outputs('a', 2);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.acknowledge(sessionId, tok('unknown'));
        await store.acknowledge(`sess-${randomUUID()}`, t1);
        await store.acknowledge(`sess-${randomUUID()}`, tok('unknown'));
        expect((await fetch({ acknowledge: tok('unknown') })).outputs).to.deep.equal([]);
        expect(await drain()).to.deep.equal(datas(os));
      });

      it('dropOutputs forgets every lease of a session, lapsed or not', async () => {
        await store.leaseOutputs(sessionId, tok('t1'), outputs('a', 2), SHORT_MS);
        await store.leaseOutputs(sessionId, tok('t2'), outputs('b', 2), LONG_MS);
        await sleep(PASS_MS);
        await store.dropOutputs(sessionId);
        expect((await fetch()).outputs).to.deep.equal([]);
        expect(await drain()).to.deep.equal([]);
        // Dropping a session with nothing stored is harmless too.
        await store.dropOutputs(`sess-${randomUUID()}`);
      });

      it('keeps sessions apart: fetch, acknowledge and dropOutputs touch one session only', async () => {
        const s1 = sessionId;
        const s2 = `sess-${randomUUID()}`;
        const s3 = `sess-${randomUUID()}`;
        const [t1, t2, t3] = [tok('t1'), tok('t2'), tok('t3')];
        // The same task id in two sessions is two outputs.
        const o1 = [output('task-1', 's1 data')];
        const o2 = [output('task-1', 's2 data')];
        const o3 = [output('task-1', 's3 data')];
        await store.leaseOutputs(s1, t1, o1, SHORT_MS);
        await store.leaseOutputs(s2, t2, o2, SHORT_MS);
        await store.leaseOutputs(s3, t3, o3, SHORT_MS);
        await sleep(PASS_MS);
        // s2's token acknowledged on s1 releases nothing of s2's (nor of s1's).
        await store.acknowledge(s1, t2);
        expect((await fetch({ acknowledge: t3 })).outputs).to.deep.equal(datas(o1));
        await store.dropOutputs(s1);
        expect(await drain(s1)).to.deep.equal([]);
        expect(await drain(s2)).to.deep.equal(datas(o2));
        expect(await drain(s3)).to.deep.equal(datas(o3));
      });
    });

    describe('repeats (repeatKey)', () => {
      it("answers a repeat with the first fetch's token and lease, and takes nothing else", async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const lapsed = outputs('old', 2);
        await store.leaseOutputs(sessionId, tok('old'), lapsed, SHORT_MS);
        await sleep(PASS_MS);

        const t1 = tok('t1');
        const first = await fetch({ token: t1, repeatKey, countMax: 1 });
        expect(first).to.deep.equal({ repeat: false, token: t1, outputs: datas(lapsed.slice(0, 1)) });
        const fresh = outputs('new', 2);
        await store.leaseOutputs(sessionId, t1, fresh, LONG_MS);

        const again = await fetch({ token: tok('t2'), repeatKey, countMax: 1 });
        // countMax does not cut a repeat: it answers the whole lease as it is now.
        expect(again).to.deep.equal({
          repeat: true,
          token: t1,
          outputs: datas([...lapsed.slice(0, 1), ...fresh]),
        });
        // The other lapsed output is still there for a fetch that is not a repeat.
        expect((await fetch({ acknowledge: t1 })).outputs).to.deep.equal(datas(lapsed.slice(1)));
      });

      it('seals the repeated lease: outputs added to it later go to the next fetch at once', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        expect(await fetch({ token: t1, repeatKey })).to.deep.equal({
          repeat: false,
          token: t1,
          outputs: [],
        });
        const early = outputs('early', 2);
        await store.leaseOutputs(sessionId, t1, early, LONG_MS);
        expect(await fetch({ repeatKey })).to.deep.equal({ repeat: true, token: t1, outputs: datas(early) });

        // The first fetch, still running, stores what the grid handed it after the repeat answered.
        const late = outputs('late', 2);
        await store.leaseOutputs(sessionId, t1, late.slice(0, 1), LONG_MS);
        await store.leaseOutputs(sessionId, t1, late.slice(1), LONG_MS);
        // A further repeat answers the sealed lease as it was: the late outputs are not in it.
        expect(await fetch({ repeatKey })).to.deep.equal({ repeat: true, token: t1, outputs: datas(early) });

        // Not reclaimAll and no waiting: the late outputs are lapsed already. t1 itself is not.
        const t3 = tok('t3');
        expect(await fetch({ token: t3 })).to.deep.equal({ repeat: false, token: t3, outputs: datas(late) });
        expect((await fetch()).outputs).to.deep.equal([]);
        // Nothing lost or duplicated: t1 holds the early ones, t3 the late ones.
        expect(sorted(await drain())).to.deep.equal(sorted(datas([...early, ...late])));
      });

      it('a sealed lease acknowledged by the next fetch still hands over its late outputs', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey });
        const early = outputs('early', 1);
        await store.leaseOutputs(sessionId, t1, early, LONG_MS);
        expect((await fetch({ repeatKey })).token).to.equal(t1);
        const late = outputs('late', 3);
        await store.leaseOutputs(sessionId, t1, late, LONG_MS);
        const r = await fetch({ acknowledge: t1, leaseMs: 0 });
        expect(r.outputs).to.deep.equal(datas(late));
        expect(await drain()).to.deep.equal([]);
      });

      it('answers a repeat whose lease is gone with its token and no outputs', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey });
        await store.leaseOutputs(sessionId, t1, outputs('a', 2), LONG_MS);
        await store.acknowledge(sessionId, t1);
        const lapsed = outputs('b', 1);
        await store.leaseOutputs(sessionId, tok('tb'), lapsed, SHORT_MS);
        await sleep(PASS_MS);
        expect(await fetch({ repeatKey })).to.deep.equal({ repeat: true, token: t1, outputs: [] });
        expect((await fetch()).outputs).to.deep.equal(datas(lapsed));
      });

      it("applies a repeat's acknowledge, which a retry makes a no-op", async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t0 = tok('t0');
        await store.leaseOutputs(sessionId, t0, outputs('zero', 2), LONG_MS);
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey, acknowledge: t0 });
        const os = outputs('a', 1);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        // The retry carries the same acknowledge: a no-op the second time.
        expect(await fetch({ repeatKey, acknowledge: t0 })).to.deep.equal({
          repeat: true,
          token: t1,
          outputs: datas(os),
        });
        expect(await drain()).to.deep.equal(datas(os));
      });

      it('forgets a repeat key once its ttl has passed', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey, repeatTtlMs: TTL_MS });
        expect((await fetch({ repeatKey, repeatTtlMs: TTL_MS })).repeat).to.equal(true);
        await sleep(PASS_MS);
        const t2 = tok('t2');
        expect(await fetch({ token: t2, repeatKey })).to.deep.equal({
          repeat: false,
          token: t2,
          outputs: [],
        });
        expect(await fetch({ repeatKey })).to.deep.equal({ repeat: true, token: t2, outputs: [] });
      });
    });

    describe('data fidelity and volume', () => {
      it('keeps serialized outputs byte for byte (JSON with base64, unicode, control characters)', async () => {
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const os: StoredOutput[] = [
          output('bin', JSON.stringify({ taskId: 'bin', payload: { binary: bytes.toString('base64') } })),
          output(
            'uni',
            JSON.stringify({ taskId: 'uni', payload: { text: 'ünïcødé — 漢字 — 🎻🎺 — \u2028' } }),
          ),
          output('ctl', 'raw \u0000 nul, \r\n crlf, \t tab, "quotes", \\backslash\\, \u007f del'),
          output('task "quoted" / ☃ \\ id', '{"weird id":true}'),
          output('12345', '{"numeric id":true}'),
          output('empty-data', ''),
        ];
        const t1 = tok('t1');
        await fetch({ token: t1 });
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        const back = await fetch({ reclaimAll: true });
        expect(back.outputs).to.deep.equal(datas(os));
        const decoded = JSON.parse(back.outputs[0]!) as { payload: { binary: string } };
        expect(Buffer.from(decoded.payload.binary, 'base64').equals(bytes)).to.equal(true);
        await store.acknowledge(sessionId, back.token);
        expect(await drain()).to.deep.equal([]);
      });

      it('keeps 2,000 outputs of one lease through reclaim, a countMax split and acknowledge', async () => {
        const os = outputs('bulk', 2000);
        const t1 = tok('t1');
        await fetch({ token: t1 });
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        const all = await fetch({ reclaimAll: true, countMax: 5000 });
        expect(all.outputs).to.deep.equal(datas(os));
        const part = await fetch({ reclaimAll: true, countMax: 1500 });
        expect(part.outputs).to.deep.equal(datas(os.slice(0, 1500)));
        // The rest of the split lease is lapsed: no reclaimAll needed.
        const rest = await fetch({ acknowledge: part.token, countMax: 5000 });
        expect(rest.outputs).to.deep.equal(datas(os.slice(1500)));
        await store.acknowledge(sessionId, rest.token);
        expect(await drain()).to.deep.equal([]);
        if (h.rawOutputCount) expect(await h.rawOutputCount(sessionId)).to.equal(0);
      });

      it('forgets 2,000 lapsed outputs handed to an unleased fetch', async () => {
        const os = outputs('bulk', 2000);
        await store.leaseOutputs(sessionId, tok('t1'), os, SHORT_MS);
        await sleep(PASS_MS);
        expect((await fetch({ leaseMs: 0, countMax: 5000 })).outputs).to.deep.equal(datas(os));
        expect(await drain()).to.deep.equal([]);
        if (h.rawOutputCount) expect(await h.rawOutputCount(sessionId)).to.equal(0);
      });

      it('answers a repeat of a 2,000-output lease in full', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey });
        const os = outputs('bulk', 2000);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        expect(await fetch({ repeatKey })).to.deep.equal({ repeat: true, token: t1, outputs: datas(os) });
        await store.acknowledge(sessionId, t1);
        expect(await drain()).to.deep.equal([]);
        if (h.rawOutputCount) expect(await h.rawOutputCount(sessionId)).to.equal(0);
      });
    });

    describe('terminations set by the client (SetTerminationTime)', () => {
      const NOW = 1_900_000_000_000;
      const HOUR = 3600_000;

      it("a lease write leaves the client's time alone; a client write replaces the lease's", async () => {
        await store.scheduleTermination('session:a', NOW + 1000);
        expect(await store.terminationSetByClient('session:a')).to.equal(false);
        await store.scheduleTermination('session:a', NOW + 5000, 'client');
        expect(await store.terminationOf('session:a')).to.equal(NOW + 5000);
        expect(await store.terminationSetByClient('session:a')).to.equal(true);
        // The idle lease, explicit or by default, now stands aside.
        await store.scheduleTermination('session:a', NOW + 2000, 'lease');
        await store.scheduleTermination('session:a', NOW + 3000);
        expect(await store.terminationOf('session:a')).to.equal(NOW + 5000);
        expect(await store.terminationSetByClient('session:a')).to.equal(true);
        // The client may move its own time, earlier as well.
        await store.scheduleTermination('session:a', NOW + 4000, 'client');
        expect(await store.terminationOf('session:a')).to.equal(NOW + 4000);
        expect(await store.terminationSetByClient('session:a')).to.equal(true);
        expect(await store.claimTerminations(NOW + 3999, LONG_MS, 10)).to.deep.equal([]);
        expect(await store.claimTerminations(NOW + 4000, LONG_MS, 10)).to.deep.equal(['session:a']);
        // The mark is per resource: another one's idle lease still moves.
        await store.scheduleTermination('session:b', NOW + 1000);
        await store.scheduleTermination('session:b', NOW + 2000);
        expect(await store.terminationOf('session:b')).to.equal(NOW + 2000);
        expect(await store.terminationSetByClient('session:b')).to.equal(false);
        expect(await store.terminationSetByClient('session:unknown')).to.equal(false);
      });

      it("a lease write does not end the reaper's claim on a client-set time", async () => {
        await store.scheduleTermination('session:a', NOW, 'client');
        expect(await store.claimTerminations(NOW, 1000, 10)).to.deep.equal(['session:a']);
        await store.scheduleTermination('session:a', NOW + 5000);
        expect(await store.terminationOf('session:a'), 'the lease scheduled nothing').to.equal(null);
        // The claim still stands: handed out again once its lease lapses, as if the write never came.
        expect(await store.claimTerminations(NOW + 999, 1000, 10)).to.deep.equal([]);
        expect(await store.claimTerminations(NOW + 1000, 1000, 10)).to.deep.equal(['session:a']);
        await store.finishTermination('session:a');
        expect(await store.claimTerminations(NOW + 100_000, 1000, 10)).to.deep.equal([]);
      });

      it("null from the lease (the resource ended) clears everything, the client's time and mark included", async () => {
        await store.scheduleTermination('session:a', NOW + 5000, 'client');
        await store.scheduleTermination('session:a', null, 'lease');
        expect(await store.terminationOf('session:a')).to.equal(null);
        expect(await store.terminationSetByClient('session:a')).to.equal(false);
        expect(await store.claimTerminations(NOW + 100_000, 1000, 10)).to.deep.equal([]);
        // No longer the client's: a lease write counts again.
        await store.scheduleTermination('session:a', NOW + 60_000);
        expect(await store.terminationOf('session:a')).to.equal(NOW + 60_000);
        expect(await store.terminationSetByClient('session:a')).to.equal(false);

        // The default setter is the lease; its null also ends a claim on a client-set time.
        await store.scheduleTermination('session:b', NOW, 'client');
        expect(await store.claimTerminations(NOW, 1000, 10)).to.deep.equal(['session:b']);
        await store.scheduleTermination('session:b', null);
        expect(await store.terminationSetByClient('session:b')).to.equal(false);
        expect(await store.claimTerminations(NOW + 1000, 1000, 10), 'the claim ended').to.deep.equal([]);
      });

      it('null from the client removes its time and mark, and the idle lease may schedule again', async () => {
        await store.scheduleTermination('session:a', NOW + 1000);
        await store.scheduleTermination('session:a', NOW + 5000, 'client');
        await store.scheduleTermination('session:a', null, 'client');
        expect(await store.terminationOf('session:a')).to.equal(null);
        expect(await store.terminationSetByClient('session:a')).to.equal(false);
        expect(await store.claimTerminations(NOW + 100_000, 1000, 10)).to.deep.equal([]);
        await store.scheduleTermination('session:a', NOW + 2000, 'lease');
        expect(await store.terminationOf('session:a')).to.equal(NOW + 2000);
        expect(await store.terminationSetByClient('session:a')).to.equal(false);
        // A client's cancel with nothing scheduled is harmless.
        await store.scheduleTermination('connection:none', null, 'client');
        expect(await store.terminationOf('connection:none')).to.equal(null);
        expect(await store.terminationSetByClient('connection:none')).to.equal(false);
      });

      it("ties the record to the client's time, and lets it live without expiry once the client cancels", async () => {
        const sid = `sess-${randomUUID()}`;
        const cid = `conn-${randomUUID()}`;
        await store.putConnection(cid, { cluster: 'c1', owner: 'alice', application: 'app' });
        await store.putSession(sid, { cluster: 'c1', owner: 'alice', connectionId: cid });
        await store.scheduleTermination(`session:${sid}`, Date.now() + HOUR, 'client');
        await store.scheduleTermination(`connection:${cid}`, Date.now() + HOUR, 'client');
        // The record outlives the time by a day's grace (redis-store.ts), so about 25 h.
        if (h.rawRecordTtl) {
          expect(await h.rawRecordTtl('sess', sid)).to.be.within(25 * HOUR - 60_000, 25 * HOUR);
          expect(await h.rawRecordTtl('conn', cid)).to.be.within(25 * HOUR - 60_000, 25 * HOUR);
        }
        // The idle lease's sooner time does not shorten it either: that write does nothing.
        await store.scheduleTermination(`session:${sid}`, Date.now() + 60_000);
        if (h.rawRecordTtl) expect(await h.rawRecordTtl('sess', sid)).to.be.above(25 * HOUR - 60_000);
        await store.scheduleTermination(`session:${sid}`, null, 'client');
        await store.scheduleTermination(`connection:${cid}`, null, 'client');
        if (h.rawRecordTtl) {
          expect(await h.rawRecordTtl('sess', sid), 'no expiry').to.equal(-1);
          expect(await h.rawRecordTtl('conn', cid), 'no expiry').to.equal(-1);
        }
        expect(await store.getSession(sid)).to.deep.include({ owner: 'alice', connectionId: cid });
        expect(await store.getConnection(cid)).to.deep.include({ owner: 'alice', application: 'app' });
      });
    });

    describe('trimLease (a page cut short to fit its size bound)', () => {
      it('keeps the first outputs under the token and hands the rest, in order, to the next fetch at once', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 5);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 2);
        // Neither reclaimAll nor waiting: the rest is lapsed already, the kept ones are not.
        const t2 = tok('t2');
        expect(await fetch({ token: t2 })).to.deep.equal({
          repeat: false,
          token: t2,
          outputs: datas(os.slice(2)),
        });
        expect((await fetch()).outputs).to.deep.equal([]);
        // Acknowledging the trimmed lease releases only what it kept: the rest is t2's now.
        await store.acknowledge(sessionId, t1);
        expect(await drain()).to.deep.equal(datas(os.slice(2)));
        if (h.rawOutputCount) expect(await h.rawOutputCount(sessionId)).to.equal(0);
      });

      it('the next fetch acknowledging the trimmed lease releases the kept outputs and gets the rest', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 4);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 1);
        const r = await fetch({ acknowledge: t1, countMax: 2 });
        expect(r.outputs).to.deep.equal(datas(os.slice(1, 3)));
        const r2 = await fetch({ acknowledge: r.token });
        expect(r2.outputs).to.deep.equal(datas(os.slice(3)));
        await store.acknowledge(sessionId, r2.token);
        expect(await drain()).to.deep.equal([]);
        if (h.rawOutputCount) expect(await h.rawOutputCount(sessionId)).to.equal(0);
      });

      it('keep 0 hands everything back; acknowledging the emptied lease then releases nothing', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 0);
        await store.acknowledge(sessionId, t1);
        expect((await fetch()).outputs).to.deep.equal(datas(os));
        expect(await drain()).to.deep.equal(datas(os));
      });

      it('a repeat of the trimmed fetch answers the kept outputs only', async () => {
        const repeatKey = `ck-${randomUUID()}`;
        const t1 = tok('t1');
        await fetch({ token: t1, repeatKey });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 1);
        expect(await fetch({ repeatKey })).to.deep.equal({
          repeat: true,
          token: t1,
          outputs: datas(os.slice(0, 1)),
        });
        expect((await fetch()).outputs).to.deep.equal(datas(os.slice(1)));
        expect(sorted(await drain())).to.deep.equal(sorted(datas(os)));
      });

      it('trimming an unknown token or session is a no-op', async () => {
        const t1 = tok('t1');
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, tok('unknown'), 0);
        await store.trimLease(sessionId, `${t1}.spill`, 0);
        const other = `sess-${randomUUID()}`;
        await store.trimLease(other, t1, 0);
        expect((await fetch()).outputs, 'nothing handed back').to.deep.equal([]);
        // t1 still holds all three: acknowledging it leaves nothing.
        await store.acknowledge(sessionId, t1);
        expect(await drain()).to.deep.equal([]);
        expect(await drain(other)).to.deep.equal([]);
        if (h.rawOutputCount) expect(await h.rawOutputCount(other)).to.equal(0);
      });

      it('keep at or above the lease size is a no-op, as is trimming an empty lease', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 3);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 3);
        await store.trimLease(sessionId, t1, 10);
        const t2 = tok('t2');
        await fetch({ token: t2 });
        await store.trimLease(sessionId, t2, 0);
        expect((await fetch()).outputs, 'nothing handed back').to.deep.equal([]);
        if (h.rawLeaseCount)
          expect(await h.rawLeaseCount(sessionId), 't1, t2 and the last fetch').to.equal(3);
        await store.acknowledge(sessionId, t1);
        expect(await drain()).to.deep.equal([]);
      });

      it('a second trim appends to the same spill lease, after what the first handed back', async () => {
        const t1 = tok('t1');
        await fetch({ token: t1 });
        const os = outputs('a', 6);
        await store.leaseOutputs(sessionId, t1, os, LONG_MS);
        await store.trimLease(sessionId, t1, 4);
        await store.trimLease(sessionId, t1, 2);
        if (h.rawLeaseCount) expect(await h.rawLeaseCount(sessionId), 't1 and one spill').to.equal(2);
        const first = await fetch({ countMax: 3 });
        const second = await fetch({ countMax: 3 });
        expect(first.outputs).to.deep.equal(datas([os[4]!, os[5]!, os[2]!]));
        expect(second.outputs).to.deep.equal(datas([os[3]!]));
        expect((await fetch()).outputs).to.deep.equal([]);
        await store.acknowledge(sessionId, t1);
        expect(sorted(await drain())).to.deep.equal(sorted(datas(os.slice(2))));
      });

      it('the next fetch takes what a trim handed back ahead of other lapsed leases', async () => {
        const older = outputs('old', 3);
        await store.leaseOutputs(sessionId, tok('old'), older, LONG_MS);
        // A page whose countMax splits that lease: its rest stays behind, lapsed.
        const t1 = tok('t1');
        const page = await fetch({ token: t1, reclaimAll: true, countMax: 1 });
        expect(page.outputs).to.deep.equal(datas(older.slice(0, 1)));
        const fresh = outputs('new', 3);
        await store.leaseOutputs(sessionId, t1, fresh, LONG_MS);
        // The page only fits its first output: new-0..2 go back, and must come next.
        await store.trimLease(sessionId, t1, 1);
        expect((await fetch({ acknowledge: t1, countMax: 3 })).outputs).to.deep.equal(datas(fresh));
        expect((await fetch({ countMax: 3 })).outputs).to.deep.equal(datas(older.slice(1)));
      });
    });

    describe('listSessions', () => {
      function rec(owner: string): SessionRecord {
        return { cluster: 'c1', owner, connectionId: 'conn-1' };
      }

      function ids(label: string, n: number): string[] {
        return Array.from({ length: n }, (_, i) => `sess-${label}${i}-${randomUUID().slice(0, 8)}`);
      }

      it("lists the owner's sessions, not others', at most max, each once", async () => {
        const [mine, theirs] = [ids('a', 3), ids('b', 2)];
        for (const id of mine) await store.putSession(id, rec('alice'));
        for (const id of theirs) await store.putSession(id, rec('bob'));
        // Recorded again (openSession): still listed once.
        await store.putSession(mine[0]!, rec('alice'));
        expect(sorted(await store.listSessions('alice', 10))).to.deep.equal(sorted(mine));
        expect(sorted(await store.listSessions('bob', 10))).to.deep.equal(sorted(theirs));
        const two = await store.listSessions('alice', 2);
        expect(two).to.have.length(2);
        expect(new Set(two).size).to.equal(2);
        expect(mine).to.include.members(two);
        expect(await store.listSessions('alice', 0)).to.deep.equal([]);
        expect(await store.listSessions('nobody', 10)).to.deep.equal([]);
      });

      it('does not list a deleted session, and lists it again once recorded again', async () => {
        const [a, b, c] = ids('a', 3) as [string, string, string];
        for (const id of [a, b, c]) await store.putSession(id, rec('alice'));
        await store.deleteSession(b);
        expect(sorted(await store.listSessions('alice', 10))).to.deep.equal(sorted([a, c]));
        expect(sorted(await store.listSessions('alice', 10)), 'read again').to.deep.equal(sorted([a, c]));
        await store.putSession(b, rec('alice'));
        expect(sorted(await store.listSessions('alice', 10))).to.deep.equal(sorted([a, b, c]));
        for (const id of [a, b, c]) await store.deleteSession(id);
        expect(await store.listSessions('alice', 10)).to.deep.equal([]);
      });

      it('lists a session recorded again for another consumer under that consumer only', async () => {
        const [s, t] = ids('s', 2) as [string, string];
        await store.putSession(s, rec('alice'));
        await store.putSession(t, rec('alice'));
        await store.putSession(s, rec('bob'));
        expect(await store.listSessions('alice', 10)).to.deep.equal([t]);
        expect(await store.listSessions('bob', 10)).to.deep.equal([s]);
      });

      it('max bounds the live sessions listed: deleted ones do not use it up', async () => {
        const all = ids('a', 20);
        for (const id of all) await store.putSession(id, rec('alice'));
        const live = all.filter((_, i) => i % 2 === 1);
        for (const id of all.filter((_, i) => i % 2 === 0)) await store.deleteSession(id);
        expect(sorted(await store.listSessions('alice', 10))).to.deep.equal(sorted(live));
      });
    });

    describe('enumeration contexts', () => {
      /** The grace a context outlives its expiresAt by (store.ts: "plus a grace"). */
      const GRACE_MS = 60_000;

      function outputsCtx(over: Partial<EnumerationRecord> = {}): EnumerationRecord {
        return {
          consumer: 'alice',
          version: '2011',
          source: 'outputs',
          sessionId: 'sess-1',
          expiresAt: Date.now() + LONG_MS,
          ...over,
        };
      }

      function enumId(): string {
        return `enum-${randomUUID()}`;
      }

      it('round-trips a context, starting at seq 0, attempt 0; an unknown id is undefined', async () => {
        const [a, b] = [enumId(), enumId()];
        expect(await store.getEnumeration(a)).to.equal(undefined);
        const ra = outputsCtx({ serviceVersion: 'urn:sv:1' });
        const rb: EnumerationRecord = {
          consumer: 'bob',
          version: '2004',
          source: 'sessions',
          sessions: ['s-1', 's-2', 's-3'],
          filter: { expression: '//x:state[. = "open"]', namespaces: { x: 'urn:x' } },
          expiresAt: Date.now() + LONG_MS,
        };
        await store.putEnumeration(a, ra);
        await store.putEnumeration(b, rb);
        expect(await store.getEnumeration(a)).to.deep.equal({ ...ra, seq: 0, attempt: 0 });
        expect(await store.getEnumeration(b)).to.deep.equal({ ...rb, seq: 0, attempt: 0 });
      });

      it('advance: fresh for the next page (reserving it), repeat for the page handed out, stale otherwise', async () => {
        const [id, other] = [enumId(), enumId()];
        await store.putEnumeration(id, outputsCtx());
        await store.putEnumeration(other, outputsCtx());
        expect(await store.advanceEnumeration(id, 0)).to.deep.equal({ step: 'fresh', attempt: 0 });
        expect((await store.getEnumeration(id))!.seq).to.equal(1);
        expect(await store.advanceEnumeration(id, 0)).to.deep.equal({ step: 'repeat', attempt: 0 });
        expect((await store.getEnumeration(id))!.seq, 'a repeat reserves nothing').to.equal(1);
        expect(await store.advanceEnumeration(id, 1)).to.deep.equal({ step: 'fresh', attempt: 0 });
        expect((await store.advanceEnumeration(id, 0)).step).to.equal('stale');
        expect((await store.advanceEnumeration(id, 3)).step).to.equal('stale');
        expect((await store.getEnumeration(id))!.seq).to.equal(2);
        // Contexts are kept apart.
        expect((await store.getEnumeration(other))!.seq).to.equal(0);
        expect((await store.advanceEnumeration(other, 0)).step).to.equal('fresh');
        expect((await store.advanceEnumeration(enumId(), 0)).step, 'unknown id').to.equal('stale');
      });

      it('rewind of the page just handed out lets the next advance fetch it afresh, with attempt + 1', async () => {
        const id = enumId();
        const r = outputsCtx();
        await store.putEnumeration(id, r);
        await store.advanceEnumeration(id, 0);
        await store.rewindEnumeration(id, 1);
        expect(await store.getEnumeration(id)).to.deep.equal({ ...r, seq: 0, attempt: 1 });
        expect(await store.advanceEnumeration(id, 0)).to.deep.equal({ step: 'fresh', attempt: 1 });
        expect(await store.advanceEnumeration(id, 0)).to.deep.equal({ step: 'repeat', attempt: 1 });
        // A rewind of any other page than the last handed out is a no-op.
        await store.rewindEnumeration(id, 0);
        await store.rewindEnumeration(id, 2);
        expect(await store.getEnumeration(id)).to.deep.include({ seq: 1, attempt: 1 });
        expect(await store.advanceEnumeration(id, 1)).to.deep.equal({ step: 'fresh', attempt: 1 });
        await store.rewindEnumeration(id, 2);
        expect(await store.getEnumeration(id)).to.deep.include({ seq: 1, attempt: 2 });
        // Nothing to rewind for an unknown id, and nothing is created.
        const unknown = enumId();
        await store.rewindEnumeration(unknown, 0);
        await store.rewindEnumeration(unknown, 1);
        expect(await store.getEnumeration(unknown)).to.equal(undefined);
        expect((await store.advanceEnumeration(unknown, 0)).step).to.equal('stale');
      });

      it('renew moves the expiry and keeps seq and attempt; false once the context is deleted', async () => {
        const id = enumId();
        const r = outputsCtx();
        await store.putEnumeration(id, r);
        await store.advanceEnumeration(id, 0);
        const later = Date.now() + 2 * LONG_MS;
        expect(await store.renewEnumeration(id, later)).to.equal(true);
        expect(await store.getEnumeration(id)).to.deep.equal({ ...r, expiresAt: later, seq: 1, attempt: 0 });
        await store.deleteEnumeration(id);
        expect(await store.getEnumeration(id)).to.equal(undefined);
        expect(await store.renewEnumeration(id, later)).to.equal(false);
        expect(await store.getEnumeration(id), 'renew did not bring it back').to.equal(undefined);
        expect((await store.advanceEnumeration(id, 1)).step).to.equal('stale');
        expect(await store.renewEnumeration(enumId(), later), 'unknown id').to.equal(false);
        await store.deleteEnumeration(enumId());
      });

      it('a context past expiresAt plus the grace is gone; within the grace it is still returned', async () => {
        const gone = enumId();
        await store.putEnumeration(gone, outputsCtx({ expiresAt: Date.now() - GRACE_MS - 1000 }));
        expect(await store.getEnumeration(gone)).to.equal(undefined);
        expect((await store.advanceEnumeration(gone, 0)).step).to.equal('stale');
        expect(await store.renewEnumeration(gone, Date.now() + LONG_MS)).to.equal(false);
        expect(await store.getEnumeration(gone)).to.equal(undefined);
        // Expired but within the grace: still there, for the handler's own expiry check to answer.
        const late = enumId();
        const r = outputsCtx({ expiresAt: Date.now() - GRACE_MS / 2 });
        await store.putEnumeration(late, r);
        expect(await store.getEnumeration(late)).to.deep.equal({ ...r, seq: 0, attempt: 0 });
      });

      it('expires the grace after expiresAt unless renewed', async () => {
        const [gone, kept] = [enumId(), enumId()];
        await store.putEnumeration(gone, outputsCtx({ expiresAt: Date.now() - GRACE_MS + TTL_MS }));
        await store.putEnumeration(kept, outputsCtx({ expiresAt: Date.now() - GRACE_MS + TTL_MS }));
        expect(await store.getEnumeration(gone)).to.not.equal(undefined);
        expect(await store.renewEnumeration(kept, Date.now() + LONG_MS)).to.equal(true);
        await sleep(PASS_MS);
        expect(await store.getEnumeration(gone)).to.equal(undefined);
        expect((await store.advanceEnumeration(gone, 0)).step).to.equal('stale');
        expect(await store.renewEnumeration(gone, Date.now() + LONG_MS)).to.equal(false);
        expect(await store.getEnumeration(kept)).to.deep.include({ seq: 0, attempt: 0 });
      });

      it('concurrent advances after the same page: exactly one is fresh, the others repeats', async () => {
        const id = enumId();
        await store.putEnumeration(id, outputsCtx());
        // Both fired before either is awaited (with Redis, in flight together).
        const a = store.advanceEnumeration(id, 0);
        const b = store.advanceEnumeration(id, 0);
        const two = await Promise.all([a, b]);
        expect(two.map((s) => s.step).sort()).to.deep.equal(['fresh', 'repeat']);
        const many = await Promise.all(Array.from({ length: 10 }, () => store.advanceEnumeration(id, 1)));
        expect(many.filter((s) => s.step === 'fresh')).to.have.length(1);
        expect(many.filter((s) => s.step === 'repeat')).to.have.length(9);
        expect((await store.getEnumeration(id))!.seq).to.equal(2);
      });
    });
  });
}

contract('MemoryStore', { make: async () => new MemoryStore() });

{
  const h = redisStoreHarness('contract');
  contract('RedisStore (real redis-server)', {
    setup: h.setup,
    make: h.make,
    teardown: h.teardown,
    // The layout of redis-store.ts: outputs of a session in the hash <prefix>out:<session>.
    rawOutputCount: (sessionId) => h.raw().hlen(`${h.prefix()}out:${sessionId}`),
    // Leases in the hash <prefix>lease:<session>; records at <prefix>sess:<id> and <prefix>conn:<id>.
    rawLeaseCount: (sessionId) => h.raw().hlen(`${h.prefix()}lease:${sessionId}`),
    rawRecordTtl: (kind, id) => h.raw().pttl(`${h.prefix()}${kind}:${id}`),
  });
}
