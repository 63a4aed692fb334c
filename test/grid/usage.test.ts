import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskUsage } from '../../src/accounting/records';
import type { TaskOutput } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { eventually, fetchOutputs, newSession, startTestGrid } from './helpers';
import { RawClient } from './raw-client';

/** Checks what holds for every usage, and returns it. */
function saneUsage(o: TaskOutput, machine: string, submittedAt: number, fetchedAt: number): TaskUsage {
  const u = o.usage;
  expect(u, `usage of task ${o.taskId}`).to.not.equal(undefined);
  expect(u!.startTimeMs).to.be.within(submittedAt, fetchedAt);
  expect(u!.endTimeMs).to.be.within(u!.startTimeMs, fetchedAt);
  expect(u!.cpuTimeMs).to.be.at.least(0);
  expect(u!).to.include({ machine, processors: 1, maxVmemKb: 0 });
  return u!;
}

describe('grid task usage (TaskOutput.usage)', () => {
  let dir: string;
  let grid: Grid;
  let client: RawClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'grid-usage-'));
    writeFileSync(
      join(dir, 'sleeper.js'),
      `exports.run = async (input) => {
         await new Promise((r) => setTimeout(r, Number(input.text)));
         return input;
       };`,
    );
    // SIGKILL leaves the worker no chance to report what it knew of the task.
    writeFileSync(
      join(dir, 'killer.js'),
      `exports.run = (input) => {
         if (input.text === 'die') process.kill(process.pid, 'SIGKILL');
         return input;
       };`,
    );
    grid = await startTestGrid({
      applications: [
        { name: 'echo', service: 'echo', workers: 1, maxTaskRetries: 0 },
        { name: 'cpu', service: 'cpu', workers: 1 },
        { name: 'sleeper', service: join(dir, 'sleeper.js'), workers: 1 },
        { name: 'killer', service: join(dir, 'killer.js'), workers: 1, maxTaskRetries: 0 },
      ],
    });
    client = await RawClient.connect(grid.address.port);
  });
  after(async () => {
    await client?.close();
    await grid?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the texts as tasks of a new session of the application; outputs by task id. */
  async function run(
    app: string,
    texts: string[],
  ): Promise<{ outputs: TaskOutput[]; submittedAt: number; fetchedAt: number }> {
    const { sessionId } = await newSession(client, app);
    const submittedAt = Date.now();
    await client.call('sendTasks', { sessionId, tasks: texts.map((text) => ({ payload: { text } })) });
    const outputs = await fetchOutputs(client, sessionId, texts.length);
    const fetchedAt = Date.now();
    expect(outputs).to.have.length(texts.length);
    outputs.sort((a, b) => Number(a.taskId) - Number(b.taskId));
    return { outputs, submittedAt, fetchedAt };
  }

  it('reports usage for a successful and a failing task, on this host by default', async () => {
    const { outputs, submittedAt, fetchedAt } = await run('echo', ['hello', 'fail:boom']);
    expect(outputs.map((o) => o.successful)).to.deep.equal([true, false]);
    for (const o of outputs) {
      const u = saneUsage(o, hostname(), submittedAt, fetchedAt);
      expect(u.maxRssKb, 'the worker has some resident memory').to.be.greaterThan(0);
    }
  });

  it('counts the CPU of a task that computes, and not more than the cores allow', async () => {
    const { outputs, submittedAt, fetchedAt } = await run('cpu', ['50']);
    const u = saneUsage(outputs[0]!, hostname(), submittedAt, fetchedAt);
    const wallMs = u.endTimeMs - u.startTimeMs;
    // The service hashes until 50 ms have passed; whole milliseconds lose at most one.
    expect(wallMs).to.be.at.least(49);
    expect(u.cpuTimeMs).to.be.greaterThan(0);
    expect(u.cpuTimeMs).to.be.at.most(wallMs * availableParallelism() + 2);
  });

  it('ends an async task when its promise settles, not when run returns', async () => {
    const { outputs, submittedAt, fetchedAt } = await run('sleeper', ['40']);
    const u = saneUsage(outputs[0]!, hostname(), submittedAt, fetchedAt);
    // Timers may fire a little early against the wall clock; 40 ms never shrinks to 30.
    expect(u.endTimeMs - u.startTimeMs).to.be.at.least(30);
  });

  it('reports what is known for a task whose worker exited or was killed', async () => {
    const exited = await run('echo', ['crash:worker']);
    expect(exited.outputs[0]!.successful).to.equal(false);
    const reported = saneUsage(exited.outputs[0]!, hostname(), exited.submittedAt, exited.fetchedAt);
    expect(reported.maxRssKb, 'measured by the exiting worker').to.be.greaterThan(0);

    const killed = await run('killer', ['die']);
    expect(killed.outputs[0]!.successful).to.equal(false);
    const unreported = saneUsage(killed.outputs[0]!, hostname(), killed.submittedAt, killed.fetchedAt);
    expect(unreported).to.include({ cpuTimeMs: 0, maxRssKb: 0 });
  });

  it('redelivers the same usage after a hold lapses and after the socket drops', async () => {
    const { sessionId } = await newSession(client, 'echo');
    await client.call('sendTasks', {
      sessionId,
      tasks: [{ payload: { text: 'a' } }, { payload: { text: 'b' } }],
    });
    const ready = async (): Promise<boolean> =>
      (await client.call('sessionStatus', { sessionId })).outputsReady === 2;
    expect(await eventually(ready)).to.equal(true);

    const first = await client.call('fetchOutputs', { sessionId, countMax: 2, holdMs: 100 });
    expect(first.outputs).to.have.length(2);
    expect(first.deliveryId).to.not.equal('');
    expect(await eventually(ready), 'the hold lapsed').to.equal(true);
    const second = await client.call('fetchOutputs', { sessionId, countMax: 2 });
    expect(second.outputs.map((o) => o.usage)).to.deep.equal(first.outputs.map((o) => o.usage));

    // The same again through a held fetch whose socket closes before any ack.
    await client.call('sendTasks', { sessionId, tasks: [{ payload: { text: 'c' } }] });
    const one = async (): Promise<boolean> =>
      (await client.call('sessionStatus', { sessionId })).outputsReady === 1;
    expect(await eventually(one)).to.equal(true);
    const other = await RawClient.connect(grid.address.port);
    const held = await other.call('fetchOutputs', { sessionId, countMax: 1, holdMs: 600_000 });
    await other.close();
    expect(await eventually(one), 'the socket close re-queued the output').to.equal(true);
    const again = await client.call('fetchOutputs', { sessionId, countMax: 1 });
    expect(again.outputs[0]!.taskId).to.equal('3');
    expect(again.outputs[0]!.usage).to.deep.equal(held.outputs[0]!.usage);
    expect(again.outputs[0]!.usage!.endTimeMs).to.be.greaterThan(0);
  });

  it('names the configured machine', async () => {
    const named = await startTestGrid({
      machine: 'wn-042.example.org',
      applications: [{ name: 'echo', service: 'echo', workers: 1 }],
    });
    const c = await RawClient.connect(named.address.port);
    try {
      const { sessionId } = await newSession(c);
      await c.call('sendTasks', { sessionId, tasks: [{ payload: { text: 'x' } }] });
      const [output] = await fetchOutputs(c, sessionId, 1);
      expect(output!.usage!.machine).to.equal('wn-042.example.org');
    } finally {
      await c.close();
      await named.close();
    }
  });
});
