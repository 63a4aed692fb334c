import { expect } from 'chai';
import {
  op,
  runRequest,
  startHarness,
  type CallResult,
  type Harness,
  CONSUMER_HEADER,
  consumersFromHeader,
} from '../../test/helpers/in-process';
import { SOAP11 } from '../../test/helpers/soap-http';

const connectBody = (app = 'echo', clusterURL?: string): string =>
  op(
    'connect',
    (clusterURL === undefined ? '' : `<sym:clusterURL>${clusterURL}</sym:clusterURL>`) +
      `<sym:applicationName>${app}</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>`,
  );

describe('operations/connection: connect and closeConnection through the pipeline', () => {
  let h: Harness;
  const as = (consumer: string, body: string): Promise<CallResult> =>
    h.post(body, { headers: { [CONSUMER_HEADER]: consumer } });

  async function connect(consumer: string): Promise<string> {
    const r = await as(consumer, connectBody());
    expect(r.code, r.answer.body).to.equal(undefined);
    const id = r.pick('connectionId');
    expect(id).to.be.a('string').and.not.equal('');
    return id!;
  }

  const closeBody = (id: string): string =>
    op('closeConnection', `<sym:connectionId>${id}</sym:connectionId>`);

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader });
  });
  after(() => h?.close());

  it('connect returns a connection id and records it with its owner, cluster and application', async () => {
    const before = h.grid.stats().connections;
    const id = await connect('client-a');
    expect(await h.store.getConnection(id)).to.deep.include({
      cluster: 'default',
      owner: 'client-a',
      application: 'echo',
    });
    expect((await h.store.getConnection(id))!.created).to.be.closeTo(Date.now(), 60_000);
    expect(h.grid.stats().connections).to.equal(before + 1);
  });

  it('connect from a caller that names no consumer records the anonymous consumer as owner', async () => {
    const r = await h.post(connectBody());
    expect(r.code).to.equal(undefined);
    const rec = await h.store.getConnection(r.pick('connectionId')!);
    expect(rec?.owner).to.equal('anonymous');
  });

  it('connect accepts a configured clusterURL or the cluster name and routes to that cluster', async () => {
    for (const url of ['grid-a', 'default']) {
      const r = await as('client-a', connectBody('echo', url));
      expect(r.code, url).to.equal(undefined);
      const rec = await h.store.getConnection(r.pick('connectionId')!);
      expect(rec?.cluster, url).to.equal('default');
    }
  });

  it('gives two connects two different connection ids', async () => {
    const a = await connect('client-a');
    const b = await connect('client-a');
    expect(a).not.to.equal(b);
  });

  it('refuses an application the grid does not know with SSP_UNKNOWN_APPLICATION and opens nothing', async () => {
    const before = h.grid.stats().connections;
    const r = await as('client-a', connectBody('no-such-app'));
    expect(r.code).to.equal('SSP_UNKNOWN_APPLICATION');
    expect(r.answer.body).to.contain('InvalidArgumentFault');
    expect(r.pick('connectionId')).to.equal(undefined);
    expect(h.grid.stats().connections).to.equal(before);
  });

  it('refuses an unknown clusterURL with SSP_UNKNOWN_CLUSTER before asking the grid', async () => {
    const before = h.grid.stats().connections;
    const r = await as('client-a', connectBody('echo', 'grid-nowhere'));
    expect(r.code).to.equal('SSP_UNKNOWN_CLUSTER');
    expect(r.answer.body).to.contain('grid-nowhere');
    expect(r.ctx.gridMs).to.equal(0);
    expect(h.grid.stats().connections).to.equal(before);
  });

  it('closeConnection closes the grid connection and forgets the record', async () => {
    const id = await connect('client-a');
    const before = h.grid.stats().connections;
    const r = await as('client-a', closeBody(id));
    expect(r.code, r.answer.body).to.equal(undefined);
    expect(r.answer.body).to.contain('closeConnectionResponse');
    expect(await h.store.getConnection(id)).to.equal(undefined);
    expect(h.grid.stats().connections).to.equal(before - 1);
    const again = await as('client-a', closeBody(id));
    expect(again.code).to.equal('SSP_UNKNOWN_CONNECTION');
  });

  it('refuses closeConnection of an unknown id with SSP_UNKNOWN_CONNECTION', async () => {
    const r = await as('client-a', closeBody('no-such-connection'));
    expect(r.code).to.equal('SSP_UNKNOWN_CONNECTION');
    expect(r.answer.body).to.contain('UnknownConnectionFault');
    expect(r.ctx.gridMs).to.equal(0);
  });

  it('refuses closeConnection of another consumer’s connection with SSP_NOT_OWNER and leaves it open', async () => {
    const id = await connect('client-a');
    const before = h.grid.stats().connections;
    const r = await as('client-b', closeBody(id));
    expect(r.code).to.equal('SSP_NOT_OWNER');
    expect(r.answer.body).to.contain('NotOwnerFault');
    expect(r.ctx.gridMs).to.equal(0);
    expect(h.grid.stats().connections).to.equal(before);
    expect((await h.store.getConnection(id))?.owner).to.equal('client-a');
    // The owner can still use it.
    const s = await as('client-a', op('createSession', `<sym:connectionId>${id}</sym:connectionId>`));
    expect(s.code, s.answer.body).to.equal(undefined);
    expect(s.pick('sessionId')).to.be.a('string');
  });

  it('refuses the anonymous consumer another consumer’s connection too', async () => {
    const id = await connect('client-a');
    const r = await h.post(closeBody(id));
    expect(r.code).to.equal('SSP_NOT_OWNER');
  });

  it('closing a connection detaches its sessions on the grid; the owner can reopen them', async () => {
    const id = await connect('client-a');
    const s = await as('client-a', op('createSession', `<sym:connectionId>${id}</sym:connectionId>`));
    const sessionId = s.pick('sessionId')!;
    expect((await as('client-a', closeBody(id))).code).to.equal(undefined);
    const status = await as(
      'client-a',
      op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`),
    );
    expect(status.code, status.answer.body).to.equal(undefined);
    expect(status.pick('state')).to.equal('Detached');
    const other = await connect('client-a');
    const reopened = await as(
      'client-a',
      op(
        'openSession',
        `<sym:connectionId>${other}</sym:connectionId><sym:sessionId>${sessionId}</sym:sessionId>`,
      ),
    );
    expect(reopened.code, reopened.answer.body).to.equal(undefined);
    expect(reopened.pick('sessionId')).to.equal(sessionId);
  });
  it('answers a retried connect with the same WS-Addressing MessageID from memory: one grid connection', async () => {
    const body = (messageId: string): string =>
      `<s:Envelope xmlns:s="${SOAP11}"><s:Header><wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">${messageId}</wsa:MessageID></s:Header><s:Body>${connectBody()}</s:Body></s:Envelope>`;
    const send = (messageId: string): Promise<CallResult> =>
      runRequest(h.pipeline, { body: body(messageId), headers: { [CONSUMER_HEADER]: 'client-a' } });
    const before = h.grid.stats().connections;
    const first = await send('urn:uuid:connect-retry-1');
    const retry = await send('urn:uuid:connect-retry-1');
    expect(first.code, first.answer.body).to.equal(undefined);
    expect(retry.code, retry.answer.body).to.equal(undefined);
    expect(retry.pick('connectionId')).to.equal(first.pick('connectionId'));
    expect(retry.ctx.repeated).to.equal(true);
    expect(h.grid.stats().connections).to.equal(before + 1);
    const fresh = await send('urn:uuid:connect-retry-2');
    expect(fresh.pick('connectionId')).not.to.equal(first.pick('connectionId'));
  });
});

describe('operations/connection: a close that did not reach the grid', () => {
  it('keeps the connection recorded, so that a retry can still close it', async () => {
    const h = await startHarness();
    try {
      const c = await h.post(
        op(
          'connect',
          '<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>',
        ),
      );
      const connectionId = c.pick('connectionId')!;
      await h.grid.close();
      const r = await h.post(op('closeConnection', `<sym:connectionId>${connectionId}</sym:connectionId>`));
      expect(r.code).to.be.oneOf(['SSP_GRID_UNAVAILABLE', 'SSP_GRID_TIMEOUT']);
      expect(r.answer.body).to.contain('<sym:retryable>true</sym:retryable>');
      expect(await h.store.getConnection(connectionId)).to.not.equal(undefined);
    } finally {
      h.router.close();
      await h.store.close();
    }
  });
});
