import { expect } from 'chai';
import {
  CONSUMER_HEADER,
  consumersFromHeader,
  op,
  startHarness,
  type CallResult,
  type Harness,
} from '../../test/helpers/in-process';
import { eventually } from '../../test/grid/helpers';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Reaper } from '../lifetime/reaper';
import { envelope } from '../soap/envelope';
import { enumerationEnder } from './enumeration-end';
import { SYM, WSEN_2004, WSEN_2011, WSMAN, XPATH_10 } from '../soap/ws-namespaces';

const E04 = `xmlns:wsen="${WSEN_2004}"`;
const E11 = `xmlns:wsen="${WSEN_2011}"`;
const cursorOf = (body: string): string | undefined =>
  /<sym:EnumerationCursor[^>]*>([^<]+)<\/sym:EnumerationCursor>/.exec(body)?.[1];
const ctxXml = (cursor: string): string =>
  `<wsen:EnumerationContext><sym:EnumerationCursor xmlns:sym="${SYM}">${cursor}</sym:EnumerationCursor></wsen:EnumerationContext>`;
const taskIds = (body: string): string[] =>
  [...body.matchAll(/<sym:taskId>([^<]+)<\/sym:taskId>/g)].map((m) => m[1]!);
const texts = (body: string): string[] =>
  [...body.matchAll(/<sym:text>([^<]*)<\/sym:text>/g)].map((m) => m[1]!);
const pull = (cursor: string, inner = '<wsen:MaxElements>3</wsen:MaxElements>'): string =>
  `<wsen:Pull ${E04}>${ctxXml(cursor)}${inner}</wsen:Pull>`;

describe('resources: WS-Enumeration of task outputs and sessions (2004/09 and 2011)', () => {
  let h: Harness;
  const at = (path: string, body: string, consumer = 'client-a'): Promise<CallResult> =>
    h.post(body, { path, headers: { [CONSUMER_HEADER]: consumer } });

  /** A session with `n` finished tasks whose outputs wait on the grid. */
  async function sessionWithOutputs(n: number, consumer = 'client-a'): Promise<string> {
    const c = await at(
      '/soap',
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
      consumer,
    );
    const s = await at(
      '/soap',
      op('createSession', `<sym:connectionId>${c.pick('connectionId')!}</sym:connectionId>`),
      consumer,
    );
    const sessionId = s.pick('sessionId')!;
    let tasks = '';
    for (let i = 0; i < n; i++) {
      tasks += `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>out-${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
    }
    if (n > 0) {
      const sent = await at(
        '/soap',
        op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}`),
        consumer,
      );
      expect(sent.code, sent.answer.body).to.equal(undefined);
      const done = await eventually(async () => {
        const st = await at(
          '/soap',
          op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`),
          consumer,
        );
        return Number(st.pick('doneTasks')) === n;
      });
      expect(done, 'every task ran').to.equal(true);
    }
    return sessionId;
  }

  /** Pulls to the end; every page's outputs, and the pages' sizes. */
  async function pullAll(path: string, cursor: string, max = 3): Promise<{ texts: string[]; pages: number }> {
    const got: string[] = [];
    let pages = 0;
    let c: string | undefined = cursor;
    while (c !== undefined && pages < 100) {
      const r = await at(path, pull(c, `<wsen:MaxElements>${max}</wsen:MaxElements>`));
      expect(r.code, r.answer.body).to.equal(undefined);
      got.push(...texts(r.answer.body));
      c = cursorOf(r.answer.body);
      pages++;
      if (r.answer.body.includes('EndOfSequence')) {
        expect(c, 'no context on the last page').to.equal(undefined);
      }
    }
    return { texts: got, pages };
  }

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader });
  });
  after(() => h?.close());

  describe('2004/09: Enumerate and Pull a session’s outputs', () => {
    it('delivers every output once, in pages of MaxElements, then EndOfSequence without a context', async () => {
      const sessionId = await sessionWithOutputs(7);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}><wsen:Expires>PT5M</wsen:Expires></wsen:Enumerate>`);
      expect(e.code, e.answer.body).to.equal(undefined);
      expect(e.pick('Expires')).to.equal('PT300S');
      const { texts: got } = await pullAll(path, cursorOf(e.answer.body)!);
      expect(got.sort()).to.deep.equal(Array.from({ length: 7 }, (_, i) => `out-${i}`).sort());
      // Everything was acknowledged by the Pull after it: nothing is left for anyone.
      const again = await at(path, `<wsen:Enumerate ${E04}/>`);
      const rest = await pullAll(path, cursorOf(again.answer.body)!);
      expect(rest.texts).to.deep.equal([]);
    });

    it('answers a repeated Pull (its reply lost) with the same page, and a stale context with InvalidEnumerationContext', async () => {
      const sessionId = await sessionWithOutputs(4);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}/>`);
      const c0 = cursorOf(e.answer.body)!;
      const first = await at(path, pull(c0, '<wsen:MaxElements>2</wsen:MaxElements>'));
      const repeat = await at(path, pull(c0, '<wsen:MaxElements>2</wsen:MaxElements>'));
      expect(repeat.code, repeat.answer.body).to.equal(undefined);
      expect(taskIds(repeat.answer.body)).to.deep.equal(taskIds(first.answer.body));
      expect(cursorOf(repeat.answer.body)).to.equal(cursorOf(first.answer.body));
      const second = await at(
        path,
        pull(cursorOf(first.answer.body)!, '<wsen:MaxElements>2</wsen:MaxElements>'),
      );
      expect(taskIds(second.answer.body)).to.have.length(2);
      const stale = await at(path, pull(c0));
      expect(stale.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
      expect(stale.answer.body).to.contain('<faultcode>wsen:InvalidEnumerationContext</faultcode>');
    });

    it('Release acknowledges the page held and ends the context; another consumer cannot use it', async () => {
      const sessionId = await sessionWithOutputs(2);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}/>`);
      const p = await at(path, pull(cursorOf(e.answer.body)!, '<wsen:MaxElements>5</wsen:MaxElements>'));
      const c1 = cursorOf(p.answer.body)!;
      const foreign = await at(path, pull(c1), 'client-b');
      expect(foreign.code).to.be.oneOf(['SSP_NOT_OWNER', 'SSP_ENUMERATION_CONTEXT_INVALID']);
      const status = await at(path, `<wsen:GetStatus ${E04}>${ctxXml(c1)}</wsen:GetStatus>`);
      expect(status.pick('Expires')).to.match(/^PT\d+S$/);
      const renew = await at(
        path,
        `<wsen:Renew ${E04}>${ctxXml(c1)}<wsen:Expires>PT1H</wsen:Expires></wsen:Renew>`,
      );
      expect(renew.code, renew.answer.body).to.equal(undefined);
      expect(renew.pick('Expires')).to.equal('PT3600S');
      const rel = await at(path, `<wsen:Release ${E04}>${ctxXml(c1)}</wsen:Release>`);
      expect(rel.code, rel.answer.body).to.equal(undefined);
      // The 2004/09 Release answer is an empty Body.
      expect(rel.answer.body).to.match(/<soap:Body><\/soap:Body>/);
      const after = await at(path, pull(c1));
      expect(after.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
      // The released page was acknowledged: a new enumeration has nothing.
      const e2 = await at(path, `<wsen:Enumerate ${E04}/>`);
      expect((await pullAll(path, cursorOf(e2.answer.body)!)).texts).to.deep.equal([]);
    });

    it('with wsman:OptimizeEnumeration the first page comes in the EnumerateResponse', async () => {
      const sessionId = await sessionWithOutputs(3);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(
        path,
        `<wsen:Enumerate ${E04} xmlns:wsman="${WSMAN}"><wsman:OptimizeEnumeration/><wsman:MaxElements>2</wsman:MaxElements></wsen:Enumerate>`,
      );
      expect(e.code, e.answer.body).to.equal(undefined);
      expect(e.answer.body).to.contain('<wsman:Items');
      expect(texts(e.answer.body)).to.have.length(2);
      const rest = await pullAll(path, cursorOf(e.answer.body)!);
      expect(rest.texts).to.have.length(1);
    });

    it('MaxCharacters cuts a page short and loses nothing', async () => {
      const sessionId = await sessionWithOutputs(5);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}/>`);
      let c: string | undefined = cursorOf(e.answer.body)!;
      const got: string[] = [];
      for (let i = 0; i < 20 && c !== undefined; i++) {
        const r = await at(
          path,
          pull(c, '<wsen:MaxElements>5</wsen:MaxElements><wsen:MaxCharacters>250</wsen:MaxCharacters>'),
        );
        expect(r.code, r.answer.body).to.equal(undefined);
        expect(texts(r.answer.body).length).to.be.at.most(2);
        got.push(...texts(r.answer.body));
        c = cursorOf(r.answer.body);
      }
      expect(got.sort()).to.deep.equal(['out-0', 'out-1', 'out-2', 'out-3', 'out-4']);
    });

    it('an output larger than MaxCharacters is refused with a clear fault and kept for a larger one', async () => {
      const sessionId = await sessionWithOutputs(1);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}/>`);
      const c0 = cursorOf(e.answer.body)!;
      const small = await at(path, pull(c0, '<wsen:MaxCharacters>10</wsen:MaxCharacters>'));
      expect(small.code).to.equal('SSP_ENUMERATION_ITEM_TOO_LARGE');
      const rest = await pullAll(path, c0);
      expect(rest.texts).to.deep.equal(['out-0']);
    });

    it('refuses MaxElements 0, caps a huge one, and refuses a Pull once the context has expired', async () => {
      const sessionId = await sessionWithOutputs(3);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(path, `<wsen:Enumerate ${E04}><wsen:Expires>PT1S</wsen:Expires></wsen:Enumerate>`);
      const c0 = cursorOf(e.answer.body)!;
      const zero = await at(path, pull(c0, '<wsen:MaxElements>0</wsen:MaxElements>'));
      expect(zero.code).to.equal('SSP_INVALID_ARGUMENT');
      const huge = await at(path, pull(c0, '<wsen:MaxElements>999999999</wsen:MaxElements>'));
      expect(huge.code, huge.answer.body).to.equal(undefined);
      expect(texts(huge.answer.body)).to.have.length(3);
      await new Promise((r) => setTimeout(r, 1100));
      const late = await at(path, pull(cursorOf(huge.answer.body)!));
      expect(late.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
      expect(late.answer.body).to.contain('expired');
    });

    it('refuses a filter on outputs, an expiry in the past, and an Enumerate away from a session', async () => {
      const sessionId = await sessionWithOutputs(0);
      const path = `/soap/sessions/${sessionId}`;
      const filtered = await at(
        path,
        `<wsen:Enumerate ${E04}><wsen:Filter>sym:taskId</wsen:Filter></wsen:Enumerate>`,
      );
      expect(filtered.code).to.equal('SSP_ENUMERATION_FILTER_UNSUPPORTED');
      expect(filtered.answer.body).to.contain('wsen:FilteringNotSupported');
      const past = await at(
        path,
        `<wsen:Enumerate ${E04}><wsen:Expires>2001-01-01T00:00:00Z</wsen:Expires></wsen:Enumerate>`,
      );
      expect(past.code).to.equal('SSP_ENUMERATION_EXPIRES_INVALID');
      expect(past.answer.body).to.contain('wsen:InvalidExpirationTime');
      const nowhere = await at('/soap', `<wsen:Enumerate ${E04}/>`);
      expect(nowhere.code).to.equal('SSP_INVALID_ARGUMENT');
      const bogus = await at(path, pull('not-a-context'));
      expect(bogus.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
    });
  });

  describe('the consumer’s sessions', () => {
    it('enumerates your sessions (and no one else’s) as properties documents, filtered by XPath', async () => {
      const mine = [await sessionWithOutputs(0, 'client-c'), await sessionWithOutputs(0, 'client-c')];
      await sessionWithOutputs(0, 'client-d');
      const e = await at(
        '/soap/sessions',
        `<wsen:Enumerate ${E04}><wsen:Filter Dialect="${XPATH_10}" xmlns:s="${SYM}">s:State = 'Open'</wsen:Filter></wsen:Enumerate>`,
        'client-c',
      );
      expect(e.code, e.answer.body).to.equal(undefined);
      const r = await at(
        '/soap/sessions',
        pull(cursorOf(e.answer.body)!, '<wsen:MaxElements>10</wsen:MaxElements>'),
        'client-c',
      );
      expect(r.code, r.answer.body).to.equal(undefined);
      const ids = [...r.answer.body.matchAll(/<sym:SessionId>([^<]+)<\/sym:SessionId>/g)].map((m) => m[1]);
      expect(ids.sort()).to.deep.equal([...mine].sort());
      expect(r.answer.body).to.contain('EndOfSequence');
      const dialect = await at(
        '/soap/sessions',
        `<wsen:Enumerate ${E04}><wsen:Filter Dialect="urn:example:sql">x</wsen:Filter></wsen:Enumerate>`,
        'client-c',
      );
      expect(dialect.code).to.equal('SSP_ENUMERATION_DIALECT_UNAVAILABLE');
      expect(dialect.answer.body).to.contain(
        `<wsen:SupportedDialect xmlns:wsen="${WSEN_2004}">${XPATH_10}</wsen:SupportedDialect>`,
      );
      const bomb = await at(
        '/soap/sessions',
        `<wsen:Enumerate ${E04}><wsen:Filter>count(//*[count(//*[count(//*)&gt;0])&gt;0])</wsen:Filter></wsen:Enumerate>`,
        'client-c',
      );
      expect(bomb.code).to.equal('SSP_ENUMERATION_FILTER_INVALID');
      expect(bomb.answer.body).to.contain('wsen:CannotProcessFilter');
    });
  });

  describe('2011: Enumerate starts and goes on', () => {
    it('NewContext with MaxItems answers the first page; an EnumerationContext continues to the end', async () => {
      const sessionId = await sessionWithOutputs(5);
      const path = `/soap/sessions/${sessionId}`;
      const e = await at(
        path,
        `<wsen:Enumerate ${E11}><wsen:NewContext><wsen:Expires>PT10M</wsen:Expires></wsen:NewContext><wsen:MaxItems>2</wsen:MaxItems></wsen:Enumerate>`,
      );
      expect(e.code, e.answer.body).to.equal(undefined);
      expect(e.pick('GrantedExpires')).to.equal('PT600S');
      const got = texts(e.answer.body);
      let c = cursorOf(e.answer.body);
      for (let i = 0; i < 10 && c !== undefined; i++) {
        const r = await at(
          path,
          `<wsen:Enumerate ${E11}>${ctxXml(c)}<wsen:MaxItems>2</wsen:MaxItems></wsen:Enumerate>`,
        );
        expect(r.code, r.answer.body).to.equal(undefined);
        got.push(...texts(r.answer.body));
        c = cursorOf(r.answer.body);
      }
      expect(got.sort()).to.deep.equal(['out-0', 'out-1', 'out-2', 'out-3', 'out-4']);
      const endTo = await at(
        path,
        `<wsen:Enumerate ${E11}><wsen:NewContext><wsen:EndTo><wsa:Address xmlns:wsa="http://www.w3.org/2005/08/addressing">http://127.0.0.1:1/</wsa:Address></wsen:EndTo></wsen:NewContext></wsen:Enumerate>`,
      );
      expect(endTo.code).to.equal('SSP_ENUMERATION_ENDTO_UNSUPPORTED');
      expect(endTo.answer.body).to.contain('wsen:EndToNotSupported');
      // A 2004/09 context is not continued in the 2011 namespace.
      const e04 = await at(path, `<wsen:Enumerate ${E04}/>`);
      const mixed = await at(
        path,
        `<wsen:Enumerate ${E11}>${ctxXml(cursorOf(e04.answer.body)!)}</wsen:Enumerate>`,
      );
      expect(mixed.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
      const release = await at(
        path,
        `<wsen:Release ${E11}>${ctxXml(cursorOf(e04.answer.body)!)}</wsen:Release>`,
      );
      expect(release.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
    });
  });

  describe('EndTo and EnumerationEnd (enumeration.endToHosts)', () => {
    let h2: Harness;
    let receiver: Server;
    let port = 0;
    const received: { action: string | undefined; body: string }[] = [];

    before(async () => {
      receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          const a = req.headers['soapaction'];
          received.push({ action: typeof a === 'string' ? a : undefined, body });
          res.writeHead(202).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      port = (receiver.address() as AddressInfo).port;
      h2 = await startHarness({ phases: consumersFromHeader, enumeration: { endToHosts: ['127.0.0.1'] } });
    });
    after(async () => {
      await h2?.close();
      await new Promise((r) => receiver?.close(r));
    });

    /** A session of client-e on the second harness. */
    async function sessionOfE(): Promise<string> {
      const as = { headers: { [CONSUMER_HEADER]: 'client-e' } };
      const c = await h2.post(
        op(
          'connect',
          '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
        ),
        as,
      );
      const s = await h2.post(
        op('createSession', `<sym:connectionId>${c.pick('connectionId')!}</sym:connectionId>`),
        as,
      );
      return s.pick('sessionId')!;
    }

    const enumerateWithEndTo = (sessionId: string, address: string): Promise<CallResult> =>
      h2.post(
        `<wsen:Enumerate ${E11}><wsen:NewContext><wsen:EndTo><wsa:Address xmlns:wsa="http://www.w3.org/2005/08/addressing">${address}</wsa:Address>` +
          `<wsa:ReferenceParameters xmlns:wsa="http://www.w3.org/2005/08/addressing"><x:Ref xmlns:x="urn:example:consumer">7</x:Ref></wsa:ReferenceParameters></wsen:EndTo>` +
          `<wsen:Expires>PT1S</wsen:Expires></wsen:NewContext></wsen:Enumerate>`,
        { path: `/soap/sessions/${sessionId}`, headers: { [CONSUMER_HEADER]: 'client-e' } },
      );

    it('an expired context sends one EnumerationEnd to its allowed EndTo, from whichever proxy sweeps', async () => {
      const sessionId = await sessionOfE();
      const e = await enumerateWithEndTo(sessionId, `http://127.0.0.1:${port}/end`);
      expect(e.code, e.answer.body).to.equal(undefined);
      const reaper = new Reaper(h2.store, h2.router, h2.lifetimes, h2.metrics, {
        sweepIntervalMs: 1000,
        claimLeaseMs: 10_000,
        onSessionExpiry: 'destroy',
        endEnumeration: enumerationEnder(h2.store, envelope),
      });
      expect(await reaper.sweep(Date.now())).to.deep.equal([]);
      await new Promise((r) => setTimeout(r, 1100));
      await reaper.sweep(Date.now());
      expect(received).to.have.length(1);
      expect(received[0]!.action).to.equal(`"${WSEN_2011}/EnumerationEnd"`);
      expect(received[0]!.body).to.contain(`<wsen:Reason>${WSEN_2011}/SourceCancelling</wsen:Reason>`);
      expect(received[0]!.body).to.contain('<x:Ref xmlns:x="urn:example:consumer">7</x:Ref>');
      expect(received[0]!.body).to.contain(cursorOf(e.answer.body)!.split('.')[0]);
      await reaper.sweep(Date.now() + 5000);
      expect(received, 'sent once').to.have.length(1);
    });

    it('refuses an EndTo at a host that is not allowed, or not http(s), with UnusableEPR', async () => {
      const sessionId = await sessionOfE();
      for (const address of [
        'http://10.0.0.1/end',
        'http://localhost:1/end',
        'file:///etc/passwd',
        'not a url',
      ]) {
        const r = await enumerateWithEndTo(sessionId, address);
        expect(r.code, address).to.equal('SSP_ENUMERATION_ENDTO_REFUSED');
        expect(r.answer.body).to.contain('wsen:UnusableEPR');
      }
    });
  });
});
