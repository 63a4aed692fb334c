import { expect } from 'chai';
import { CloseMode, ErrorCode, SessionState } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { eventually, fetchOutputs, newSession, sleep, startTestGrid, textTasks } from './helpers';
import { RawClient } from './raw-client';

describe('grid sessions and tasks', () => {
  let grid: Grid;
  let client: RawClient;

  before(async () => {
    grid = await startTestGrid({
      applications: [
        { name: 'echo', service: 'echo', workers: 2 },
        { name: 'other', service: 'echo', workers: 1 },
        { name: 'secured', service: 'echo', workers: 1, users: [{ name: 'alice', password: 's3cret' }] },
      ],
    });
    client = await RawClient.connect(grid.address.port);
  });
  after(async () => {
    await client.close();
    await grid.close();
  });

  it('round-trips text, xml and binary payloads with tags', async () => {
    const { sessionId } = await newSession(client);
    const binary = new Uint8Array([0, 1, 2, 253, 254, 255]);
    const { taskIds } = await client.call('sendTasks', {
      sessionId,
      tasks: [
        { tag: 'a', payload: { text: 'héllo <&>' } },
        { tag: 'b', payload: { xml: '<x:doc xmlns:x="urn:t"><x:v>1</x:v></x:doc>' } },
        { tag: 'c', payload: { binary } },
      ],
    });
    expect(taskIds).to.deep.equal(['1', '2', '3']);
    const outputs = await fetchOutputs(client, sessionId, 3);
    const byId = new Map(outputs.map((o) => [o.taskId, o]));
    expect(byId.get('1')).to.deep.include({ successful: true, tag: 'a', payload: { text: 'héllo <&>' } });
    expect(byId.get('2')).to.deep.include({
      successful: true,
      tag: 'b',
      payload: { xml: '<x:doc xmlns:x="urn:t"><x:v>1</x:v></x:doc>' },
    });
    expect(Buffer.from(byId.get('3')!.payload!.binary!).equals(Buffer.from(binary))).to.equal(true);
    expect(byId.get('3')!.tag).to.equal('c');
  });

  it('numbers task ids per session, continuing across calls', async () => {
    const { sessionId } = await newSession(client);
    expect(
      (await client.call('sendTasks', { sessionId, tasks: textTasks(['a', 'b']) })).taskIds,
    ).to.deep.equal(['1', '2']);
    expect((await client.call('sendTasks', { sessionId, tasks: textTasks(['c']) })).taskIds).to.deep.equal([
      '3',
    ]);
    expect(await fetchOutputs(client, sessionId, 3)).to.have.length(3);
  });

  it('reports a failing task as unsuccessful with the exception', async () => {
    const { sessionId } = await newSession(client);
    await client.call('sendTasks', { sessionId, tasks: textTasks(['fail:boom', 'fine']) });
    const outputs = await fetchOutputs(client, sessionId, 2);
    const failed = outputs.find((o) => o.taskId === '1')!;
    expect(failed.successful).to.equal(false);
    expect(failed.exception).to.equal('Error: boom');
    expect(outputs.find((o) => o.taskId === '2')).to.deep.include({
      successful: true,
      payload: { text: 'fine' },
    });
    const status = await client.call('sessionStatus', { sessionId });
    expect(status).to.include({ done: 1, failed: 1, outputsReady: 0, pending: 0, running: 0 });
  });

  it('fetches at most countMax outputs, oldest first, and removes them', async () => {
    const { sessionId } = await newSession(client);
    const texts = Array.from({ length: 50 }, (_, i) => `t${i}`);
    await client.call('sendTasks', { sessionId, tasks: textTasks(texts) });
    expect(
      await eventually(async () => (await client.call('sessionStatus', { sessionId })).done === 50),
    ).to.equal(true);
    const first = await client.call('fetchOutputs', { sessionId, countMax: 20, waitMs: 0 });
    expect(first.outputs).to.have.length(20);
    const rest = await client.call('fetchOutputs', { sessionId, countMax: 100, waitMs: 0 });
    expect(rest.outputs).to.have.length(30);
    const ids = [...first.outputs, ...rest.outputs].map((o) => Number(o.taskId)).sort((a, b) => a - b);
    expect(ids).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    const none = await client.call('fetchOutputs', { sessionId, countMax: 5, waitMs: 0 });
    expect(none.outputs).to.have.length(0);
  });

  it('reports session status with name and priority', async () => {
    const { sessionId } = await newSession(client, 'echo', 42);
    const status = await client.call('sessionStatus', { sessionId });
    expect(status).to.include({ sessionId, state: SessionState.OPEN, name: 'test-session', priority: 42 });
  });

  it('rejects bad arguments', async () => {
    const { connectionId, sessionId } = await newSession(client);
    expect((await client.callError('sendTasks', { sessionId, tasks: [] })).code).to.equal(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect((await client.callError('fetchOutputs', { sessionId, countMax: 0 })).code).to.equal(
      ErrorCode.INVALID_ARGUMENT,
    );
    for (const priority of [-1, 10001]) {
      const err = await client.callError('createSession', { connectionId, attributes: { priority } });
      expect(err.code).to.equal(ErrorCode.INVALID_ARGUMENT);
    }
    const defaulted = await client.call('createSession', { connectionId });
    expect((await client.call('sessionStatus', { sessionId: defaulted.sessionId })).priority).to.equal(1);
  });

  it('refuses unknown applications, connections and sessions', async () => {
    expect(
      (await client.callError('connect', { applicationName: 'nope', username: 'u', password: 'p' })).code,
    ).to.equal(ErrorCode.UNKNOWN_APPLICATION);
    expect((await client.callError('createSession', { connectionId: 'f'.repeat(32) })).code).to.equal(
      ErrorCode.UNKNOWN_CONNECTION,
    );
    expect((await client.callError('closeConnection', { connectionId: 'x' })).code).to.equal(
      ErrorCode.UNKNOWN_CONNECTION,
    );
    expect((await client.callError('sessionStatus', { sessionId: 'x' })).code).to.equal(
      ErrorCode.UNKNOWN_SESSION,
    );
    expect((await client.callError('sendTasks', { sessionId: 'x', tasks: textTasks(['a']) })).code).to.equal(
      ErrorCode.UNKNOWN_SESSION,
    );
  });

  it('checks user names and passwords when the application lists users', async () => {
    const err = await client.callError('connect', {
      applicationName: 'secured',
      username: 'alice',
      password: 'wrong-password-123',
    });
    expect(err.code).to.equal(ErrorCode.AUTHENTICATION_FAILED);
    expect(err.message).to.not.include('wrong-password-123');
    const unknownUser = await client.callError('connect', {
      applicationName: 'secured',
      username: 'mallory',
      password: 's3cret',
    });
    expect(unknownUser.code).to.equal(ErrorCode.AUTHENTICATION_FAILED);
    const ok = await client.call('connect', {
      applicationName: 'secured',
      username: 'alice',
      password: 's3cret',
    });
    expect(ok.connectionId).to.match(/^[0-9a-f]{32}$/);
  });

  it('issues unguessable ids that work from any socket', async () => {
    const { connectionId, sessionId } = await newSession(client);
    expect(connectionId).to.match(/^[0-9a-f]{32}$/);
    expect(sessionId).to.match(/^[0-9a-f]{32}$/);
    const other = await RawClient.connect(grid.address.port);
    await other.call('sendTasks', { sessionId, tasks: textTasks(['from-other-socket']) });
    const outputs = await fetchOutputs(client, sessionId, 1);
    expect(outputs[0]!.payload).to.deep.equal({ text: 'from-other-socket' });
    await other.call('closeConnection', { connectionId });
    await other.close();
  });

  it('detaches a session and re-opens it from another socket and connection', async () => {
    const { connectionId, sessionId } = await newSession(client);
    await client.call('sendTasks', { sessionId, tasks: textTasks(['kept-1', 'kept-2']) });
    await client.call('closeSession', { sessionId, mode: CloseMode.DETACH });
    const detached = await client.callError('sendTasks', { sessionId, tasks: textTasks(['no']) });
    expect(detached.code).to.equal(ErrorCode.UNKNOWN_SESSION);
    expect(detached.message).to.equal('session is detached; openSession first');
    expect((await client.call('sessionStatus', { sessionId })).state).to.equal(SessionState.DETACHED);
    // Outputs keep accumulating while detached.
    expect(
      await eventually(async () => (await client.call('sessionStatus', { sessionId })).done === 2),
    ).to.equal(true);

    const other = await RawClient.connect(grid.address.port);
    const conn2 = (await other.call('connect', { applicationName: 'echo', username: 'bob', password: 'pw' }))
      .connectionId;
    expect(await other.call('openSession', { connectionId: conn2, sessionId })).to.deep.include({
      sessionId,
    });
    const again = await other.callError('openSession', { connectionId: conn2, sessionId });
    expect(again.code).to.equal(ErrorCode.SESSION_NOT_DETACHED);
    const outputs = await fetchOutputs(other, sessionId, 2);
    expect(outputs.map((o) => o.payload?.text).sort()).to.deep.equal(['kept-1', 'kept-2']);
    await other.call('sendTasks', { sessionId, tasks: textTasks(['after-reopen']) });
    expect((await fetchOutputs(other, sessionId, 1))[0]!.taskId).to.equal('3');

    // A connection of another application cannot see it.
    const foreign = (await other.call('connect', { applicationName: 'other', username: 'u', password: 'p' }))
      .connectionId;
    await other.call('closeSession', { sessionId, mode: CloseMode.DETACH });
    expect((await other.callError('openSession', { connectionId: foreign, sessionId })).code).to.equal(
      ErrorCode.UNKNOWN_SESSION,
    );
    await client.call('closeConnection', { connectionId });
    await other.close();
  });

  it('closing a connection detaches its open sessions', async () => {
    const { connectionId, sessionId } = await newSession(client);
    await client.call('closeConnection', { connectionId });
    expect((await client.callError('closeConnection', { connectionId })).code).to.equal(
      ErrorCode.UNKNOWN_CONNECTION,
    );
    expect((await client.call('sessionStatus', { sessionId })).state).to.equal(SessionState.DETACHED);
    const conn2 = (await client.call('connect', { applicationName: 'echo', username: 'u', password: 'p' }))
      .connectionId;
    expect((await client.call('openSession', { connectionId: conn2, sessionId })).sessionId).to.equal(
      sessionId,
    );
  });

  it('destroying a session discards it: later operations give UNKNOWN_SESSION', async () => {
    const { connectionId, sessionId } = await newSession(client);
    await client.call('sendTasks', { sessionId, tasks: textTasks(['x', 'y']) });
    await client.call('closeSession', { sessionId, mode: CloseMode.DESTROY });
    for (const err of [
      await client.callError('sessionStatus', { sessionId }),
      await client.callError('fetchOutputs', { sessionId, countMax: 10 }),
      await client.callError('sendTasks', { sessionId, tasks: textTasks(['z']) }),
      await client.callError('closeSession', { sessionId, mode: CloseMode.DESTROY }),
      await client.callError('openSession', { connectionId, sessionId }),
    ]) {
      expect(err.code).to.equal(ErrorCode.UNKNOWN_SESSION);
    }
  });

  it('destroys detached sessions after detachedSessionTtlMs', async () => {
    const shortLived = await startTestGrid({ detachedSessionTtlMs: 100 });
    try {
      const c = await RawClient.connect(shortLived.address.port);
      const { sessionId } = await newSession(c);
      await c.call('closeSession', { sessionId, mode: CloseMode.DETACH });
      await sleep(300);
      expect((await c.callError('sessionStatus', { sessionId })).code).to.equal(ErrorCode.UNKNOWN_SESSION);
      await c.close();
    } finally {
      await shortLived.close();
    }
  });
});
