import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloseMode, ErrorCode } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { eventually, fetchOutputs, newSession, startTestGrid, textTasks } from './helpers';
import { RawClient } from './raw-client';

describe('grid scheduling', () => {
  describe('priorities (one cpu worker)', () => {
    let grid: Grid;
    let client: RawClient;

    beforeEach(async () => {
      grid = await startTestGrid({ applications: [{ name: 'cpu', service: 'cpu', workers: 1 }] });
      client = await RawClient.connect(grid.address.port);
    });
    afterEach(async () => {
      await client.close();
      await grid.close();
    });

    it('runs higher-priority tasks of a session first, FIFO among equals', async () => {
      const { sessionId } = await newSession(client, 'cpu');
      // Occupies the only worker while the rest queue up.
      await client.call('sendTasks', { sessionId, tasks: [{ tag: 'blocker', payload: { text: '300' } }] });
      await client.call('sendTasks', {
        sessionId,
        tasks: ['low-1', 'low-2', 'low-3'].map((tag) => ({ tag, priority: 1, payload: { text: '20' } })),
      });
      await client.call('sendTasks', {
        sessionId,
        tasks: ['high-1', 'high-2', 'high-3'].map((tag) => ({ tag, priority: 50, payload: { text: '20' } })),
      });
      const outputs = await fetchOutputs(client, sessionId, 7);
      expect(outputs.every((o) => o.successful)).to.equal(true);
      expect(outputs.map((o) => o.tag)).to.deep.equal([
        'blocker',
        'high-1',
        'high-2',
        'high-3',
        'low-1',
        'low-2',
        'low-3',
      ]);
    });

    it('serves the higher-priority session first', async () => {
      const low = await newSession(client, 'cpu', 1);
      const high = await newSession(client, 'cpu', 100);
      await client.call('sendTasks', { sessionId: low.sessionId, tasks: [{ payload: { text: '300' } }] });
      await client.call('sendTasks', { sessionId: low.sessionId, tasks: textTasks(['80', '80', '80']) });
      await client.call('sendTasks', { sessionId: high.sessionId, tasks: textTasks(['80', '80', '80']) });
      const highOutputs = await fetchOutputs(client, high.sessionId, 3);
      expect(highOutputs).to.have.length(3);
      const lowStatus = await client.call('sessionStatus', { sessionId: low.sessionId });
      // Only the blocker, which was already running when the high-priority tasks arrived.
      expect(lowStatus.done).to.equal(1);
      expect(lowStatus.pending + lowStatus.running).to.equal(3);
      expect(await fetchOutputs(client, low.sessionId, 4)).to.have.length(4);
    });

    it('drops the results of running tasks when their session is destroyed', async () => {
      const { sessionId } = await newSession(client, 'cpu');
      await client.call('sendTasks', { sessionId, tasks: textTasks(['200', '200', '200']) });
      await client.call('closeSession', { sessionId, mode: CloseMode.DESTROY });
      const next = await newSession(client, 'cpu');
      await client.call('sendTasks', { sessionId: next.sessionId, tasks: textTasks(['1']) });
      const outputs = await fetchOutputs(client, next.sessionId, 1);
      expect(outputs[0]!.successful).to.equal(true);
      expect(grid.stats()).to.include({ sessions: 1, pendingTasks: 0, runningTasks: 0, outputsReady: 0 });
    });
  });

  it('shares workers round-robin between sessions of equal priority', async () => {
    const grid = await startTestGrid({ applications: [{ name: 'cpu', service: 'cpu', workers: 1 }] });
    const client = await RawClient.connect(grid.address.port);
    try {
      const a = await newSession(client, 'cpu');
      const b = await newSession(client, 'cpu');
      await client.call('sendTasks', { sessionId: a.sessionId, tasks: textTasks(['200']) });
      await client.call('sendTasks', { sessionId: a.sessionId, tasks: textTasks(['50', '50', '50', '50']) });
      await client.call('sendTasks', { sessionId: b.sessionId, tasks: textTasks(['50', '50']) });
      // b's two tasks interleave with a's instead of waiting behind all of them.
      expect(await fetchOutputs(client, b.sessionId, 2)).to.have.length(2);
      const aStatus = await client.call('sessionStatus', { sessionId: a.sessionId });
      expect(aStatus.done).to.be.at.most(3);
      expect(aStatus.pending + aStatus.running).to.be.at.least(1);
    } finally {
      await client.close();
      await grid.close();
    }
  });

  describe('worker crashes', () => {
    let grid: Grid;
    let client: RawClient;

    before(async () => {
      grid = await startTestGrid({
        applications: [{ name: 'echo', service: 'echo', workers: 2, maxTaskRetries: 1 }],
      });
      client = await RawClient.connect(grid.address.port);
    });
    after(async () => {
      await client.close();
      await grid.close();
    });

    it('re-runs the other tasks, fails the crashing one after its retries and keeps serving', async () => {
      const { sessionId } = await newSession(client);
      const texts = Array.from({ length: 40 }, (_, i) => (i === 17 ? 'crash:worker' : `ok-${i}`));
      const { taskIds } = await client.call('sendTasks', { sessionId, tasks: textTasks(texts) });
      const outputs = await fetchOutputs(client, sessionId, 40, 20000);
      expect(outputs).to.have.length(40);
      expect(new Set(outputs.map((o) => o.taskId)).size).to.equal(40);
      const crashed = outputs.find((o) => o.taskId === taskIds[17])!;
      expect(crashed.successful).to.equal(false);
      expect(crashed.exception).to.equal(
        'service instance exited with code 13 while running this task; retried 1 time(s)',
      );
      for (const o of outputs.filter((x) => x !== crashed)) {
        expect(o.successful, `task ${o.taskId}`).to.equal(true);
        expect(o.payload?.text).to.equal(texts[Number(o.taskId) - 1]);
      }
      expect(grid.stats().workerRestarts).to.equal(2);
      expect(await eventually(() => grid.stats().workers === 2)).to.equal(true);

      await client.call('sendTasks', { sessionId, tasks: textTasks(['after-crash']) });
      expect((await fetchOutputs(client, sessionId, 1))[0]).to.deep.include({
        successful: true,
        payload: { text: 'after-crash' },
      });
    });

    it('does not retry when maxTaskRetries is 0', async () => {
      const strict = await startTestGrid({
        applications: [{ name: 'echo', service: 'echo', workers: 1, maxTaskRetries: 0 }],
      });
      const c = await RawClient.connect(strict.address.port);
      try {
        const { sessionId } = await newSession(c);
        await c.call('sendTasks', { sessionId, tasks: textTasks(['crash:worker', 'next']) });
        const outputs = await fetchOutputs(c, sessionId, 2);
        expect(outputs.find((o) => o.taskId === '1')?.exception).to.match(
          /exited with code 13.*retried 0 time/,
        );
        expect(outputs.find((o) => o.taskId === '2')).to.deep.include({ successful: true });
        expect(strict.stats().workerRestarts).to.equal(1);
      } finally {
        await c.close();
        await strict.close();
      }
    });
  });

  describe('custom service modules', () => {
    let dir: string;

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'grid-svc-'));
      writeFileSync(
        join(dir, 'async-upper.js'),
        `exports.run = async (input, ctx) => {
           await new Promise((r) => setTimeout(r, 1));
           if (input.text === 'reject') throw new RangeError('nope');
           return { text: input.text.toUpperCase() + ':' + ctx.taskId + ':' + (ctx.tag || '-') };
         };`,
      );
      writeFileSync(join(dir, 'broken.js'), 'exports.notRun = 1;');
      // SIGKILL leaves the worker no chance to say which task it was running.
      writeFileSync(
        join(dir, 'killer.js'),
        `exports.run = (input) => {
           if (input.text === 'die') process.kill(process.pid, 'SIGKILL');
           return input;
         };`,
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('loads a module by absolute path and supports async run', async () => {
      const grid = await startTestGrid({
        applications: [{ name: 'upper', service: join(dir, 'async-upper.js'), workers: 1 }],
      });
      const client = await RawClient.connect(grid.address.port);
      try {
        const { sessionId } = await newSession(client, 'upper');
        await client.call('sendTasks', {
          sessionId,
          tasks: [{ tag: 'x', payload: { text: 'abc' } }, { payload: { text: 'reject' } }],
        });
        const outputs = await fetchOutputs(client, sessionId, 2);
        expect(outputs[0]).to.deep.include({ taskId: '1', successful: true, payload: { text: 'ABC:1:x' } });
        expect(outputs[1]).to.deep.include({ taskId: '2', successful: false, exception: 'RangeError: nope' });
      } finally {
        await client.close();
        await grid.close();
      }
    });

    it('pins a crash on the right task even when the worker cannot report it', async () => {
      const grid = await startTestGrid({
        applications: [{ name: 'killer', service: join(dir, 'killer.js'), workers: 2, maxTaskRetries: 1 }],
      });
      const client = await RawClient.connect(grid.address.port);
      try {
        const { sessionId } = await newSession(client, 'killer');
        // A first small batch teaches the grid that tasks are fast, so that the rest go in big batches.
        await client.call('sendTasks', { sessionId, tasks: textTasks(['warm-up']) });
        expect(await fetchOutputs(client, sessionId, 1)).to.have.length(1);
        const texts = Array.from({ length: 60 }, (_, i) => (i === 30 ? 'die' : `ok-${i}`));
        await client.call('sendTasks', { sessionId, tasks: textTasks(texts) });
        const outputs = await fetchOutputs(client, sessionId, 60, 20000);
        expect(outputs).to.have.length(60);
        const failed = outputs.filter((o) => !o.successful);
        expect(failed.map((o) => o.taskId)).to.deep.equal(['32']);
        expect(failed[0]!.exception).to.equal(
          'service instance was killed by SIGKILL while running this task; retried 1 time(s)',
        );
        expect(grid.stats().workerRestarts).to.be.within(2, 3);
      } finally {
        await client.close();
        await grid.close();
      }
    });

    it('refuses to start when a service module has no run export', async () => {
      const err = await startTestGrid({
        applications: [{ name: 'broken', service: join(dir, 'broken.js'), workers: 1 }],
      }).then(
        (g) => g.close().then(() => undefined),
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(Error);
      expect((err as Error).message).to.match(/application "broken".*does not export a run function/);
    });
  });

  it('answers UNKNOWN_SESSION to a fetch waiting on a session that gets destroyed', async () => {
    const grid = await startTestGrid();
    const client = await RawClient.connect(grid.address.port);
    try {
      const { sessionId } = await newSession(client);
      const waiting = client.callError('fetchOutputs', { sessionId, countMax: 1, waitMs: 10000 });
      await client.call('closeSession', { sessionId, mode: CloseMode.DESTROY });
      expect((await waiting).code).to.equal(ErrorCode.UNKNOWN_SESSION);
    } finally {
      await client.close();
      await grid.close();
    }
  });
});
