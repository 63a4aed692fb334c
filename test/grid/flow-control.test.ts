import { expect } from 'chai';
import { CloseMode, ErrorCode } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { newSession, startTestGrid, textTasks } from './helpers';
import { RawClient } from './raw-client';

describe('grid flow control', () => {
  let grid: Grid;

  before(async () => {
    grid = await startTestGrid({ maxInFlight: 2 });
  });
  after(() => grid.close());

  it('answers BUSY beyond maxInFlight and recovers when requests complete', async () => {
    const client = await RawClient.connect(grid.address.port);
    const helper = await RawClient.connect(grid.address.port);
    const { sessionId } = await newSession(helper);
    // Two long polls occupy both in-flight slots of this socket.
    // The grid handles a socket's frames in order, so both are in flight before the next request.
    const polls = [1, 2].map(() =>
      client.callError('fetchOutputs', { sessionId, countMax: 1, waitMs: 10000 }),
    );
    const busy = await client.callError('sessionStatus', { sessionId });
    expect(busy.code).to.equal(ErrorCode.BUSY);
    expect(busy.retryable).to.equal(true);
    // Liveness is never refused.
    expect(await client.call('ping', { seq: 5 })).to.include({ seq: 5 });
    // Another socket has its own budget.
    expect((await helper.call('sessionStatus', { sessionId })).sessionId).to.equal(sessionId);

    await helper.call('closeSession', { sessionId, mode: CloseMode.DESTROY });
    for (const err of await Promise.all(polls)) expect(err.code).to.equal(ErrorCode.UNKNOWN_SESSION);
    const again = await newSession(client);
    expect(again.sessionId).to.match(/^[0-9a-f]{32}$/);
    await Promise.all([client.close(), helper.close()]);
  });

  it('long-polls: a waiting fetch answers as soon as an output is ready', async () => {
    const client = await RawClient.connect(grid.address.port);
    const { sessionId } = await newSession(client);
    const t0 = Date.now();
    const poll = client.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 20000 });
    await new Promise((r) => setTimeout(r, 100));
    await client.call('sendTasks', { sessionId, tasks: textTasks(['wake-up']) });
    const { outputs } = await poll;
    expect(Date.now() - t0).to.be.below(5000);
    expect(outputs).to.have.length(1);
    expect(outputs[0]!.payload).to.deep.equal({ text: 'wake-up' });
    await client.close();
  });

  it('long-polls: answers empty when nothing arrives within waitMs', async () => {
    const client = await RawClient.connect(grid.address.port);
    const { sessionId } = await newSession(client);
    const t0 = Date.now();
    const { outputs } = await client.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 200 });
    const elapsed = Date.now() - t0;
    expect(outputs).to.have.length(0);
    expect(elapsed).to.be.within(150, 3000);
    await client.close();
  });

  it('a fetch abandoned by a closed socket does not swallow outputs', async () => {
    const a = await RawClient.connect(grid.address.port);
    const { sessionId } = await newSession(a);
    void a.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 20000 }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    await a.close();
    const b = await RawClient.connect(grid.address.port);
    await b.call('sendTasks', { sessionId, tasks: textTasks(['survives']) });
    const { outputs } = await b.call('fetchOutputs', { sessionId, countMax: 10, waitMs: 5000 });
    expect(outputs.map((o) => o.payload?.text)).to.deep.equal(['survives']);
    await b.close();
  });

  it('handles many pipelined batches on one socket', async () => {
    const big = await startTestGrid();
    const client = await RawClient.connect(big.address.port);
    try {
      const { sessionId } = await newSession(client);
      const tasks = textTasks(Array.from({ length: 100 }, (_, i) => `p${i}`));
      const replies = await Promise.all(
        Array.from({ length: 100 }, () => client.call('sendTasks', { sessionId, tasks })),
      );
      expect(replies.at(-1)!.taskIds.at(-1)).to.equal('10000');
      let received = 0;
      for (let i = 0; i < 200 && received < 10000; i++) {
        received += (await client.call('fetchOutputs', { sessionId, countMax: 5000, waitMs: 1000 })).outputs
          .length;
      }
      expect(received).to.equal(10000);
    } finally {
      await client.close();
      await big.close();
    }
  });
});
