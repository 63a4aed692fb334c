import { expect } from 'chai';
import {
  fakeCall,
  op,
  startHarness,
  type CallResult,
  type Harness,
  CONSUMER_HEADER,
  consumersFromHeader,
} from '../../test/helpers/in-process';
import { CloseMode } from '../backend/protocol';
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import { MemoryStore } from '../store/memory-store';
import { eventually } from '../../test/grid/helpers';

const sid = (id: string): string => `<sym:sessionId>${id}</sym:sessionId>`;
const cid = (id: string): string => `<sym:connectionId>${id}</sym:connectionId>`;
const textTask = (text: string): string =>
  `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;

describe('operations/session: createSession, openSession, closeSession, getSessionStatus', () => {
  let h: Harness;
  const as = (consumer: string, body: string): Promise<CallResult> =>
    h.post(body, { headers: { [CONSUMER_HEADER]: consumer } });

  async function ok(consumer: string, body: string): Promise<CallResult> {
    const r = await as(consumer, body);
    expect(r.code, r.answer.body).to.equal(undefined);
    return r;
  }

  async function connect(consumer: string): Promise<string> {
    const r = await ok(
      consumer,
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>',
      ),
    );
    return r.pick('connectionId')!;
  }

  async function createSession(
    consumer: string,
    attributes = '',
  ): Promise<{ connectionId: string; sessionId: string }> {
    const connectionId = await connect(consumer);
    const r = await ok(consumer, op('createSession', cid(connectionId) + attributes));
    const sessionId = r.pick('sessionId');
    expect(sessionId).to.be.a('string').and.not.equal('');
    return { connectionId, sessionId: sessionId! };
  }

  const status = (consumer: string, sessionId: string): Promise<CallResult> =>
    as(consumer, op('getSessionStatus', sid(sessionId)));
  const close = (consumer: string, sessionId: string, flags?: string): Promise<CallResult> =>
    as(
      consumer,
      op('closeSession', sid(sessionId) + (flags ? `<sym:closeFlags>${flags}</sym:closeFlags>` : '')),
    );
  const open = (consumer: string, connectionId: string, sessionId: string): Promise<CallResult> =>
    as(consumer, op('openSession', cid(connectionId) + sid(sessionId)));

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader });
  });
  after(() => h?.close());

  describe('createSession', () => {
    it('returns a session id recorded with its owner, connection, cluster and application', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      const rec = await h.store.getSession(sessionId);
      expect(rec).to.deep.include({
        cluster: 'default',
        owner: 'client-a',
        connectionId,
        // Its idle time may be set per application (lifetime.applications).
        application: 'echo',
      });
      // When it was created: a resource property (sym:Created).
      expect(rec!.created).to.be.closeTo(Date.now(), 60_000);
    });

    it('passes the creation attributes to the grid: the status shows the name and priority', async () => {
      const { sessionId } = await createSession(
        'client-a',
        '<sym:sessionCreationAttributes><sym:name>nightly-risk</sym:name><sym:priority>7</sym:priority></sym:sessionCreationAttributes>',
      );
      const r = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      expect(r.pick('name')).to.equal('nightly-risk');
      expect(r.pick('priority')).to.equal('7');
    });

    it('refuses an unknown connection with SSP_UNKNOWN_CONNECTION', async () => {
      const r = await as('client-a', op('createSession', cid('no-such-connection')));
      expect(r.code).to.equal('SSP_UNKNOWN_CONNECTION');
    });

    it('refuses another consumer’s connection with SSP_NOT_OWNER and creates nothing on the grid', async () => {
      const connectionId = await connect('client-a');
      const before = h.grid.stats().sessions;
      const r = await as('client-b', op('createSession', cid(connectionId)));
      expect(r.code).to.equal('SSP_NOT_OWNER');
      expect(r.answer.body).to.contain('NotOwnerFault');
      expect(h.grid.stats().sessions).to.equal(before);
    });
  });

  describe('getSessionStatus', () => {
    it('reports a new session as Open with every count zero', async () => {
      const { sessionId } = await createSession('client-a');
      const r = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      expect(r.pick('sessionId')).to.equal(sessionId);
      expect(r.pick('state')).to.equal('Open');
      for (const field of ['pendingTasks', 'runningTasks', 'doneTasks', 'failedTasks', 'outputsReady']) {
        expect(r.pick(field), field).to.equal('0');
      }
      // The default priority comes back; an unnamed session has no name element.
      expect(r.pick('priority')).to.equal('1');
      expect(r.pick('name')).to.equal(undefined);
    });

    it('counts tasks: pending + running + done + failed make up every task sent, then done and failed', async () => {
      const { sessionId } = await createSession('client-a');
      await ok(
        'client-a',
        op('sendTaskInputBatch', sid(sessionId) + textTask('one') + textTask('two') + textTask('fail:three')),
      );
      const first = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      const count = (r: CallResult, f: string): number => Number(r.pick(f));
      expect(
        count(first, 'pendingTasks') +
          count(first, 'runningTasks') +
          count(first, 'doneTasks') +
          count(first, 'failedTasks'),
      ).to.equal(3);
      let last = first;
      const settled = await eventually(async () => {
        last = await ok('client-a', op('getSessionStatus', sid(sessionId)));
        return count(last, 'outputsReady') === 3;
      });
      expect(settled, last.answer.body).to.equal(true);
      expect(count(last, 'pendingTasks')).to.equal(0);
      expect(count(last, 'runningTasks')).to.equal(0);
      expect(count(last, 'doneTasks')).to.equal(2);
      expect(count(last, 'failedTasks')).to.equal(1);

      // Fetching takes the outputs off the session.
      await ok(
        'client-a',
        op(
          'fetchTaskOutput',
          sid(sessionId) + '<sym:countMax>3</sym:countMax><sym:timeoutMillis>2000</sym:timeoutMillis>',
        ),
      );
      const after = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      expect(count(after, 'outputsReady')).to.equal(0);
      expect(count(after, 'doneTasks')).to.equal(2);
    });

    it('refuses an unknown session with SSP_UNKNOWN_SESSION', async () => {
      const r = await status('client-a', 'no-such-session');
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
      expect(r.answer.body).to.contain('UnknownSessionFault');
    });
  });

  describe('closeSession', () => {
    it('DestroyOnClose forgets the session: status, reopen and a second close say SSP_UNKNOWN_SESSION', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      const r = await ok(
        'client-a',
        op('closeSession', sid(sessionId) + '<sym:closeFlags>DestroyOnClose</sym:closeFlags>'),
      );
      expect(r.answer.body).to.contain('closeSessionResponse');
      expect(await h.store.getSession(sessionId)).to.equal(undefined);
      expect((await status('client-a', sessionId)).code).to.equal('SSP_UNKNOWN_SESSION');
      expect((await open('client-a', connectionId, sessionId)).code).to.equal('SSP_UNKNOWN_SESSION');
      expect((await close('client-a', sessionId)).code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('destroys by default, without closeFlags', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      const before = h.grid.stats().sessions;
      await ok('client-a', op('closeSession', sid(sessionId)));
      expect(h.grid.stats().sessions).to.equal(before - 1);
      expect(await h.store.getSession(sessionId)).to.equal(undefined);
      expect((await open('client-a', connectionId, sessionId)).code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('DetachOnClose keeps the session: it is Detached, refuses tasks, and openSession re-attaches it', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      await ok(
        'client-a',
        op('closeSession', sid(sessionId) + '<sym:closeFlags>DetachOnClose</sym:closeFlags>'),
      );
      expect((await h.store.getSession(sessionId))?.owner).to.equal('client-a');
      const detached = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      expect(detached.pick('state')).to.equal('Detached');
      const refused = await as('client-a', op('sendTaskInput', sid(sessionId) + textTask('while detached')));
      expect(refused.code).to.equal('SSP_UNKNOWN_SESSION');

      const reopened = await ok('client-a', op('openSession', cid(connectionId) + sid(sessionId)));
      expect(reopened.pick('sessionId')).to.equal(sessionId);
      expect((await ok('client-a', op('getSessionStatus', sid(sessionId)))).pick('state')).to.equal('Open');
      const sent = await ok('client-a', op('sendTaskInput', sid(sessionId) + textTask('after reopen')));
      expect(sent.pick('taskId')).to.be.a('string');
    });

    it('a detached session can be reopened on another connection of its owner, which it then belongs to', async () => {
      const { sessionId } = await createSession('client-a');
      await ok(
        'client-a',
        op('closeSession', sid(sessionId) + '<sym:closeFlags>DetachOnClose</sym:closeFlags>'),
      );
      const other = await connect('client-a');
      const r = await ok('client-a', op('openSession', cid(other) + sid(sessionId)));
      expect(r.pick('sessionId')).to.equal(sessionId);
      expect((await h.store.getSession(sessionId))?.connectionId).to.equal(other);
    });

    it('a detached session can then be destroyed', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      await ok(
        'client-a',
        op('closeSession', sid(sessionId) + '<sym:closeFlags>DetachOnClose</sym:closeFlags>'),
      );
      await ok(
        'client-a',
        op('closeSession', sid(sessionId) + '<sym:closeFlags>DestroyOnClose</sym:closeFlags>'),
      );
      expect((await open('client-a', connectionId, sessionId)).code).to.equal('SSP_UNKNOWN_SESSION');
    });
  });

  describe('openSession', () => {
    it('refuses a session that is still attached with SSP_SESSION_NOT_DETACHED', async () => {
      const { connectionId, sessionId } = await createSession('client-a');
      const r = await open('client-a', connectionId, sessionId);
      expect(r.code).to.equal('SSP_SESSION_NOT_DETACHED');
    });

    it('refuses a session id the grid never made with SSP_UNKNOWN_SESSION', async () => {
      const connectionId = await connect('client-a');
      const r = await open('client-a', connectionId, 'no-such-session');
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('refuses an unknown connection with SSP_UNKNOWN_CONNECTION', async () => {
      const { sessionId } = await createSession('client-a');
      const r = await open('client-a', 'no-such-connection', sessionId);
      expect(r.code).to.equal('SSP_UNKNOWN_CONNECTION');
    });
  });

  describe('ownership: another consumer’s session', () => {
    let connectionId: string;
    let sessionId: string;
    before(async () => {
      ({ connectionId, sessionId } = await createSession('client-a'));
    });

    it('getSessionStatus is refused with SSP_NOT_OWNER', async () => {
      const r = await status('client-b', sessionId);
      expect(r.code).to.equal('SSP_NOT_OWNER');
      expect(r.answer.body).to.contain('NotOwnerFault');
      expect(r.pick('state')).to.equal(undefined);
    });

    it('closeSession is refused with SSP_NOT_OWNER, in either mode, and the session stays open', async () => {
      for (const flags of [undefined, 'DestroyOnClose', 'DetachOnClose']) {
        const r = await close('client-b', sessionId, flags);
        expect(r.code, flags).to.equal('SSP_NOT_OWNER');
      }
      expect((await ok('client-a', op('getSessionStatus', sid(sessionId)))).pick('state')).to.equal('Open');
    });

    it('openSession of a detached session with the other consumer’s own connection is refused with SSP_NOT_OWNER', async () => {
      const detached = await createSession('client-a');
      await ok(
        'client-a',
        op('closeSession', sid(detached.sessionId) + '<sym:closeFlags>DetachOnClose</sym:closeFlags>'),
      );
      const own = await connect('client-b');
      const r = await open('client-b', own, detached.sessionId);
      expect(r.code).to.equal('SSP_NOT_OWNER');
      expect((await h.store.getSession(detached.sessionId))?.owner).to.equal('client-a');
      // The owner still can.
      const mine = await open('client-a', detached.connectionId, detached.sessionId);
      expect(mine.code, mine.answer.body).to.equal(undefined);
    });

    it('openSession through the owner’s connection is refused with SSP_NOT_OWNER', async () => {
      const r = await open('client-b', connectionId, sessionId);
      expect(r.code).to.equal('SSP_NOT_OWNER');
    });

    it('the owner’s session is untouched by the refusals', async () => {
      expect(await h.store.getSession(sessionId)).to.deep.include({ owner: 'client-a', connectionId });
      const r = await ok('client-a', op('getSessionStatus', sid(sessionId)));
      expect(r.pick('state')).to.equal('Open');
    });
  });
});

describe('operations/session: records follow the grid', () => {
  class RecordingStore extends MemoryStore {
    readonly dropped: string[] = [];
    override async dropOutputs(sessionId: string): Promise<void> {
      this.dropped.push(sessionId);
      return super.dropOutputs(sessionId);
    }
  }
  let h: Harness;
  const store = new RecordingStore();
  before(async () => {
    h = await startHarness({ store });
  });
  after(() => h?.close());

  it('closeSession of a session the grid has forgotten forgets its record and its leased outputs', async () => {
    const { sessionId } = await h.openSession();
    await h.router.call({ gridMs: 0 }, 'default', 'closeSession', { sessionId, mode: CloseMode.DESTROY });
    const r = await h.post(op('closeSession', sid(sessionId)));
    expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
    expect(await store.getSession(sessionId)).to.equal(undefined);
    expect(store.dropped).to.include(sessionId);
  });

  it('openSession keeps a session at the service version it was created at', async () => {
    await store.putConnection('conn-v2', {
      cluster: 'default',
      owner: 'client-a',
      application: 'echo',
      serviceVersion: '/v2',
    });
    await store.putSession('sess-v1', {
      cluster: 'default',
      owner: 'client-a',
      connectionId: 'conn-v1',
      serviceVersion: '/v1',
    });
    const openSession = [...h.operations.values()].find((o) => o.name === 'openSession')!;
    // The handler reads the consumer, the service version of the call and its grid timing.
    const ctx = Object.assign(fakeCall(), {
      consumer: { id: 'client-a', via: 'certificate' as const },
      policy: { version: { version: { uri: '/v2' } } },
    }) as unknown as ResolvedCall;
    let code: string | undefined;
    try {
      await openSession.handler({ connectionId: 'conn-v2', sessionId: 'sess-v1' }, ctx);
    } catch (e) {
      code = e instanceof GatewayError ? e.code : String(e);
    }
    expect(code).to.equal('SSP_WRONG_SERVICE_VERSION');
    expect((await store.getSession('sess-v1'))?.serviceVersion).to.equal('/v1');
  });
});
