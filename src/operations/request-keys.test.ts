import { expect } from 'chai';
import { op, runRequest, startHarness, type Harness } from '../../test/helpers/in-process';
import { SOAP11 } from '../../test/helpers/soap-http';
import { MemoryStore } from '../store/memory-store';
import type { RememberedReply } from '../store/store';

/** A proxy that died before it could record its answer: the retry finds nothing remembered. */
class ForgetfulStore extends MemoryStore {
  override async getReply(): Promise<RememberedReply | undefined> {
    return undefined;
  }
}

const withMessageId = (id: string, body: string): string =>
  `<s:Envelope xmlns:s="${SOAP11}"><s:Header><a:MessageID xmlns:a="http://www.w3.org/2005/08/addressing">${id}</a:MessageID></s:Header><s:Body>${body}</s:Body></s:Envelope>`;

describe('operations: connect and createSession carry the client key to the grid (request keys)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ store: new ForgetfulStore() });
  });
  after(() => h?.close());

  const connect = op(
    'connect',
    '<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>',
  );

  it('learns from the grid’s ServerHello that it honours request keys', async () => {
    await h.post(connect); // the first call opens the socket and reads the ServerHello
    expect(h.router.client('default').supports('request-keys')).to.equal(true);
    expect(h.router.client('default').supports('submit-keys')).to.equal(true);
  });

  it('a retried connect whose answer was lost gets the same connection, and the grid opens one', async () => {
    const before = h.grid.stats();
    const first = await runRequest(h.pipeline, { body: withMessageId('retry-connect-1', connect) });
    const again = await runRequest(h.pipeline, { body: withMessageId('retry-connect-1', connect) });
    expect(first.code, first.answer.body).to.equal(undefined);
    expect(again.pick('connectionId')).to.equal(first.pick('connectionId'));
    const after = h.grid.stats();
    expect(after.connections - before.connections).to.equal(1);
    expect(after.duplicateRequests - before.duplicateRequests).to.equal(1);
  });

  it('a retried createSession whose answer was lost gets the same session, and the grid creates one', async () => {
    const c = await runRequest(h.pipeline, { body: withMessageId('retry-conn-2', connect) });
    const create = op('createSession', `<sym:connectionId>${c.pick('connectionId')}</sym:connectionId>`);
    const before = h.grid.stats();
    const first = await runRequest(h.pipeline, { body: withMessageId('retry-session-2', create) });
    const again = await runRequest(h.pipeline, { body: withMessageId('retry-session-2', create) });
    expect(again.pick('sessionId')).to.equal(first.pick('sessionId'));
    expect(h.grid.stats().sessions - before.sessions).to.equal(1);
  });

  it('without a key every connect opens its own connection', async () => {
    const a = await h.post(connect);
    const b = await h.post(connect);
    expect(a.pick('connectionId')).to.not.equal(b.pick('connectionId'));
  });
});
