import { expect } from 'chai';
import { CloseMode, ErrorCode, SessionState } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { MAX_HOLD_MS } from '../../src/grid/session-manager';
import { eventually, newSession, sleep, startTestGrid, textTasks } from './helpers';
import { RawClient } from './raw-client';

describe('grid idempotent submits and held fetches', () => {
  let grid: Grid;
  let client: RawClient;

  before(async () => {
    grid = await startTestGrid({ submitKeysPerSession: 3 });
    client = await RawClient.connect(grid.address.port);
  });
  after(async () => {
    await client.close();
    await grid.close();
  });

  /** Submits the texts to a fresh session and waits until all of them have finished. */
  async function finished(sessionId: string, texts: string[]): Promise<void> {
    await client.call('sendTasks', { sessionId, tasks: textTasks(texts) });
    const done = async (): Promise<boolean> => {
      const s = await client.call('sessionStatus', { sessionId });
      return s.done + s.failed === texts.length;
    };
    expect(await eventually(done)).to.equal(true);
  }

  async function status(sessionId: string): Promise<{ ready: number; held: number }> {
    const s = await client.call('sessionStatus', { sessionId });
    return { ready: s.outputsReady, held: s.outputsHeld ?? 0 };
  }

  /** Waits until the grid has seen a socket close (and so re-queued what it held). */
  async function closeSocket(c: RawClient): Promise<void> {
    const before = grid.stats().sockets;
    await c.close();
    expect(await eventually(() => grid.stats().sockets === before - 1)).to.equal(true);
  }

  describe('submit keys', () => {
    it('answers a repeat with the same ids and queues nothing', async () => {
      const { sessionId } = await newSession(client);
      const before = grid.stats();
      const tasks = textTasks(['a', 'b', 'c']);
      const first = await client.call('sendTasks', { sessionId, tasks, submitKey: 'k-1' });
      expect(first.taskIds).to.deep.equal(['1', '2', '3']);
      expect((await client.call('sendTasks', { sessionId, tasks, submitKey: 'k-1' })).taskIds).to.deep.equal(
        first.taskIds,
      );
      // The key is the session's, not the socket's: a repeat through another socket is recognised too.
      const other = await RawClient.connect(grid.address.port);
      expect((await other.call('sendTasks', { sessionId, tasks, submitKey: 'k-1' })).taskIds).to.deep.equal(
        first.taskIds,
      );
      await other.close();
      // Task numbering did not move, and only three tasks ever ran.
      expect((await client.call('sendTasks', { sessionId, tasks: textTasks(['d']) })).taskIds).to.deep.equal([
        '4',
      ]);
      expect(
        await eventually(async () => (await client.call('sessionStatus', { sessionId })).done === 4),
      ).to.equal(true);
      const s = await client.call('sessionStatus', { sessionId });
      expect(s).to.include({ done: 4, pending: 0, running: 0, outputsReady: 4 });
      const after = grid.stats();
      expect(after.tasksAccepted - before.tasksAccepted).to.equal(4);
      expect(after.duplicateSubmits - before.duplicateSubmits).to.equal(2);
    });

    it('refuses a repeat with a different task count, naming the original count', async () => {
      const { sessionId } = await newSession(client);
      await client.call('sendTasks', { sessionId, tasks: textTasks(['a', 'b', 'c']), submitKey: 'k' });
      const err = await client.callError('sendTasks', {
        sessionId,
        tasks: textTasks(['a', 'b']),
        submitKey: 'k',
      });
      expect(err.code).to.equal(ErrorCode.INVALID_ARGUMENT);
      expect(err.message).to.include('3 task(s)');
      // The refusal queued nothing and the key still stands.
      expect(
        (await client.call('sendTasks', { sessionId, tasks: textTasks(['x', 'y', 'z']), submitKey: 'k' }))
          .taskIds,
      ).to.deep.equal(['1', '2', '3']);
      expect((await client.call('sendTasks', { sessionId, tasks: textTasks(['n']) })).taskIds).to.deep.equal([
        '4',
      ]);
    });

    it('limits keys to 256 bytes of UTF-8', async () => {
      const { sessionId } = await newSession(client);
      const tasks = textTasks(['a']);
      expect(
        (await client.callError('sendTasks', { sessionId, tasks, submitKey: 'k'.repeat(257) })).code,
      ).to.equal(ErrorCode.INVALID_ARGUMENT);
      // 129 characters, 258 bytes.
      const err = await client.callError('sendTasks', { sessionId, tasks, submitKey: 'é'.repeat(129) });
      expect(err.code).to.equal(ErrorCode.INVALID_ARGUMENT);
      expect(err.message).to.include('258 bytes');
      const longest = 'k'.repeat(256);
      expect(
        (await client.call('sendTasks', { sessionId, tasks, submitKey: longest })).taskIds,
      ).to.deep.equal(['1']);
      expect(
        (await client.call('sendTasks', { sessionId, tasks, submitKey: longest })).taskIds,
      ).to.deep.equal(['1']);
    });

    it('remembers submitKeysPerSession keys per session, forgetting the oldest first', async () => {
      const { sessionId } = await newSession(client);
      const send = async (key: string): Promise<string> =>
        (await client.call('sendTasks', { sessionId, tasks: textTasks(['t']), submitKey: key })).taskIds[0]!;
      for (const key of ['a', 'b', 'c', 'd']) await send(key); // ids 1..4; 'a' is forgotten
      expect(await send('d')).to.equal('4');
      expect(await send('b')).to.equal('2');
      expect(await send('c')).to.equal('3');
      // A new submit, which forgets 'b': the oldest by first use, whatever was repeated since.
      expect(await send('a')).to.equal('5');
      expect(await send('c')).to.equal('3');
      expect(await send('b')).to.equal('6');

      // Keys belong to one session; another session submits afresh.
      const second = await newSession(client);
      const taskIds = (
        await client.call('sendTasks', {
          sessionId: second.sessionId,
          tasks: textTasks(['t']),
          submitKey: 'c',
        })
      ).taskIds;
      expect(taskIds).to.deep.equal(['1']);
      expect(
        (await client.call('sendTasks', { sessionId: second.sessionId, tasks: textTasks(['t']) })).taskIds,
      ).to.deep.equal(['2']);
    });
  });

  describe('held fetches', () => {
    it('holds fetched outputs until acknowledged; acks are idempotent', async () => {
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b', 'c']);
      const fetcher = await RawClient.connect(grid.address.port);
      const fetched = await fetcher.call('fetchOutputs', { sessionId, countMax: 10, holdMs: 500 });
      expect(fetched.outputs.map((o) => o.taskId)).to.have.members(['1', '2', '3']);
      expect(fetched.deliveryId).to.match(/^[0-9a-f]{32}$/);
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 3 });
      expect(grid.stats().outputsHeld).to.equal(3);
      expect((await client.call('fetchOutputs', { sessionId, countMax: 10 })).outputs).to.have.length(0);

      // Acknowledged from another socket: delivery ids are not tied to the socket.
      await client.call('ackOutputs', { sessionId, deliveryId: fetched.deliveryId! });
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
      await client.call('ackOutputs', { sessionId, deliveryId: fetched.deliveryId! });
      await client.call('ackOutputs', { sessionId, deliveryId: 'f'.repeat(32) });
      await client.call('ackOutputs', { sessionId, deliveryId: '' });
      // Released for good: neither the fetching socket's close nor the hold's end brings them back.
      await closeSocket(fetcher);
      await sleep(600);
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
      expect(grid.stats().outputsHeld).to.equal(0);

      const unknown = await client.callError('ackOutputs', {
        sessionId: 'x',
        deliveryId: fetched.deliveryId!,
      });
      expect(unknown.code).to.equal(ErrorCode.UNKNOWN_SESSION);
    });

    it('holds nothing for hold_ms = 0 or an empty reply', async () => {
      const { sessionId } = await newSession(client);
      const empty = await client.call('fetchOutputs', { sessionId, countMax: 10, holdMs: 60000 });
      expect(empty.outputs).to.have.length(0);
      expect(empty.deliveryId ?? '').to.equal('');
      await finished(sessionId, ['a']);
      const plain = await client.call('fetchOutputs', { sessionId, countMax: 10 });
      expect(plain.outputs).to.have.length(1);
      expect(plain.deliveryId ?? '').to.equal('');
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
    });

    it('re-queues at the front, in order, when hold_ms passes first', async () => {
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b', 'c', 'd', 'e', 'f']);
      const requeuedBefore = grid.stats().outputsRequeued;
      const held = await client.call('fetchOutputs', { sessionId, countMax: 4, holdMs: 400 });
      expect(held.outputs).to.have.length(4);
      const rest = await client.call('fetchOutputs', { sessionId, countMax: 1 });
      expect(rest.outputs).to.have.length(1);
      expect(await status(sessionId)).to.deep.equal({ ready: 1, held: 4 });
      expect(await eventually(async () => (await status(sessionId)).held === 0)).to.equal(true);
      expect(await status(sessionId)).to.deep.equal({ ready: 5, held: 0 });
      expect(grid.stats().outputsRequeued - requeuedBefore).to.equal(4);
      // Too late: the ack is a no-op and the outputs stay queued.
      await client.call('ackOutputs', { sessionId, deliveryId: held.deliveryId! });
      const again = await client.call('fetchOutputs', { sessionId, countMax: 10 });
      const unheld = (await client.call('fetchOutputs', { sessionId, countMax: 10 })).outputs;
      expect(unheld).to.have.length(0);
      expect(again.outputs.slice(0, 4)).to.deep.equal(held.outputs);
      const all = [...held.outputs, ...rest.outputs, again.outputs[4]!].map((o) => o.taskId).sort();
      expect(all).to.deep.equal(['1', '2', '3', '4', '5', '6']);
    });

    it('wakes a waiting fetch when held outputs come back', async () => {
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b']);
      const held = await client.call('fetchOutputs', { sessionId, countMax: 10, holdMs: 200 });
      const t0 = Date.now();
      const waited = await client.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 10000 });
      expect(Date.now() - t0).to.be.below(5000);
      expect(waited.outputs).to.deep.equal(held.outputs);
    });

    it('re-queues when the socket that fetched closes; another socket then fetches them', async () => {
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b', 'c']);
      const fetcher = await RawClient.connect(grid.address.port);
      const held = await fetcher.call('fetchOutputs', { sessionId, countMax: 2, holdMs: 60000 });
      expect(held.outputs).to.have.length(2);
      expect(await status(sessionId)).to.deep.equal({ ready: 1, held: 2 });
      await closeSocket(fetcher);
      expect(await status(sessionId)).to.deep.equal({ ready: 3, held: 0 });
      const next = await client.call('fetchOutputs', { sessionId, countMax: 10, holdMs: 60000 });
      expect(next.outputs.slice(0, 2)).to.deep.equal(held.outputs);
      expect(next.outputs).to.have.length(3);
      await client.call('ackOutputs', { sessionId, deliveryId: next.deliveryId! });
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
    });

    it('holds the outputs a long poll returns', async () => {
      const { sessionId } = await newSession(client);
      const poll = client.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 10000, holdMs: 60000 });
      await sleep(50);
      await client.call('sendTasks', { sessionId, tasks: textTasks(['late']) });
      const got = await poll;
      expect(got.outputs.map((o) => o.payload)).to.deep.equal([{ text: 'late' }]);
      expect(got.deliveryId).to.match(/^[0-9a-f]{32}$/);
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 1 });
      await client.call('ackOutputs', { sessionId, deliveryId: got.deliveryId! });
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
    });

    for (const holdMs of [0, 60000]) {
      it(`a long poll (hold_ms ${holdMs}) whose socket closes first takes nothing`, async () => {
        const { sessionId } = await newSession(client);
        const poller = await RawClient.connect(grid.address.port);
        const poll = poller.request({ fetchOutputs: { sessionId, countMax: 10, waitMs: 10000, holdMs } });
        poll.catch(() => {});
        await sleep(50);
        await closeSocket(poller);
        await finished(sessionId, ['a', 'b']);
        expect(await status(sessionId)).to.deep.equal({ ready: 2, held: 0 });
        expect((await client.call('fetchOutputs', { sessionId, countMax: 10 })).outputs).to.have.length(2);
      });
    }

    it('destroying a session discards its held outputs', async () => {
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b']);
      const heldBefore = grid.stats().outputsHeld;
      const requeuedBefore = grid.stats().outputsRequeued;
      const held = await client.call('fetchOutputs', { sessionId, countMax: 10, holdMs: 400 });
      expect(grid.stats().outputsHeld - heldBefore).to.equal(2);
      await client.call('closeSession', { sessionId, mode: CloseMode.DESTROY });
      expect(grid.stats().outputsHeld).to.equal(heldBefore);
      const err = await client.callError('ackOutputs', { sessionId, deliveryId: held.deliveryId! });
      expect(err.code).to.equal(ErrorCode.UNKNOWN_SESSION);
      await sleep(500); // past the hold: nothing comes back to life
      expect(grid.stats().outputsRequeued).to.equal(requeuedBefore);
    });

    it('detaching keeps held outputs, and their hold still runs out', async () => {
      const { connectionId, sessionId } = await newSession(client);
      await finished(sessionId, ['a', 'b', 'c']);
      const first = await client.call('fetchOutputs', { sessionId, countMax: 1, holdMs: 60000 });
      const second = await client.call('fetchOutputs', { sessionId, countMax: 2, holdMs: 400 });
      await client.call('closeSession', { sessionId, mode: CloseMode.DETACH });
      const s = await client.call('sessionStatus', { sessionId });
      expect(s).to.include({ state: SessionState.DETACHED, outputsHeld: 3, outputsReady: 0 });
      expect(await eventually(async () => (await status(sessionId)).held === 1)).to.equal(true);
      expect(await status(sessionId)).to.deep.equal({ ready: 2, held: 1 });
      // Acks and fetches work on a detached session.
      await client.call('ackOutputs', { sessionId, deliveryId: first.deliveryId! });
      const back = await client.call('fetchOutputs', { sessionId, countMax: 10 });
      expect(back.outputs).to.deep.equal(second.outputs);
      await client.call('openSession', { connectionId, sessionId });
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 0 });
    });

    it(`caps hold_ms at ${MAX_HOLD_MS} ms rather than letting the timer overflow`, async () => {
      expect(MAX_HOLD_MS).to.equal(600_000);
      const { sessionId } = await newSession(client);
      await finished(sessionId, ['a']);
      const held = await client.call('fetchOutputs', { sessionId, countMax: 1, holdMs: 0xffffffff });
      await sleep(100);
      expect(await status(sessionId)).to.deep.equal({ ready: 0, held: 1 });
      await client.call('ackOutputs', { sessionId, deliveryId: held.deliveryId! });
    });
  });
});
