import { expect } from 'chai';
import {
  CONSUMER_HEADER,
  consumersFromHeader,
  op,
  startHarness,
  type CallResult,
  type Harness,
} from '../../test/helpers/in-process';
import { validateAgainstContract } from '../../test/helpers/xsd';
import { SYM, WSA, WSNT } from '../soap/ws-namespaces';
import { taskOutputEvent } from './messages';
import { DIALECT_CONCRETE, DIALECT_FULL, DIALECT_SIMPLE } from './topics';

const NT = `xmlns:wsnt="${WSNT}" xmlns:wsa="${WSA}" xmlns:s="${SYM}"`;
const topic = (t: string, dialect = DIALECT_SIMPLE): string =>
  `<wsnt:Filter><wsnt:TopicExpression Dialect="${dialect}">${t}</wsnt:TopicExpression></wsnt:Filter>`;
const subscribe = (consumer: string, inner = '', params = ''): string =>
  `<wsnt:Subscribe ${NT}><wsnt:ConsumerReference><wsa:Address>${consumer}</wsa:Address>${params}</wsnt:ConsumerReference>${inner}</wsnt:Subscribe>`;
const EMPTY = (local: string): string => `<wsnt:${local} xmlns:wsnt="${WSNT}"/>`;
const getMessages = (max?: number, ack?: number): string =>
  `<wsnt:GetMessages ${NT}>${max === undefined ? '' : `<wsnt:MaximumNumber>${max}</wsnt:MaximumNumber>`}${ack === undefined ? '' : `<s:Ack>${ack}</s:Ack>`}</wsnt:GetMessages>`;

/** The path of the Address inside the first element named `local` of a reply. */
function addressIn(body: string, local: string): string {
  const m = new RegExp(`<wsnt:${local}[^>]*><wsa:Address>([^<]*)</wsa:Address>`).exec(body);
  if (!m) throw new Error(`no ${local} in ${body.slice(0, 400)}`);
  return new URL(m[1]!).pathname;
}

describe('notifications: Subscribe, the subscription manager and pull points (in process)', () => {
  let h: Harness;
  const as = (path: string, body: string, consumer = 'client-a'): Promise<CallResult> =>
    h.post(body, { path, headers: { [CONSUMER_HEADER]: consumer } });

  async function session(consumer = 'client-a'): Promise<{ connectionId: string; sessionId: string }> {
    const c = await as(
      '/soap',
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
      consumer,
    );
    const connectionId = c.pick('connectionId')!;
    const s = await as(
      '/soap',
      op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`),
      consumer,
    );
    return { connectionId, sessionId: s.pick('sessionId')! };
  }

  async function pullPoint(consumer = 'client-a'): Promise<string> {
    const r = await as('/soap/pullpoints', EMPTY('CreatePullPoint'), consumer);
    expect(r.code, r.answer.body).to.equal(undefined);
    return addressIn(r.answer.body, 'PullPoint');
  }

  before(async () => {
    h = await startHarness({
      phases: consumersFromHeader,
      notifications: {
        destinations: [{ consumer: 'client-a', hosts: ['consumer.bank.example'], allowHttp: false }],
        limits: { maxSubscriptionsPerConsumer: 6, maxPullPointsPerConsumer: 3 },
      },
    });
  });
  after(() => h.close());

  it('subscribes an allowed https consumer to a session and answers the standard response', async () => {
    const { sessionId } = await session();
    const r = await as(
      `/soap/sessions/${sessionId}`,
      subscribe(
        'https://consumer.bank.example/n',
        topic('s:TaskStateChanged/Done', DIALECT_CONCRETE) +
          '<wsnt:InitialTerminationTime>PT10M</wsnt:InitialTerminationTime>',
        '<wsa:ReferenceParameters><p:Ref xmlns:p="urn:p">r-1</p:Ref></wsa:ReferenceParameters>',
      ),
    );
    expect(r.code, r.answer.body).to.equal(undefined);
    const path = addressIn(r.answer.body, 'SubscriptionReference');
    expect(path).to.match(/^\/soap\/subscriptions\/[A-Za-z0-9_-]{22}$/);
    expect(r.answer.body).to.include('<sym:SubscriptionId');
    const current = Date.parse(r.pick('CurrentTime')!);
    const end = Date.parse(r.pick('TerminationTime')!);
    expect(end - current).to.be.within(599_000, 601_000);
    const body = /<soap:Body>(.*)<\/soap:Body>/s.exec(r.answer.body)![1]!;
    expect(await validateAgainstContract(body)).to.deep.equal([]);
    const id = path.split('/').pop()!;
    const sub = await h.store.getSubscription(id);
    expect(sub?.consumer).to.equal('client-a');
    expect(sub?.topics).to.deep.equal([{ path: 'TaskStateChanged/Done', exact: true }]);
    expect(sub?.sink).to.deep.include({ kind: 'http', address: 'https://consumer.bank.example/n' });
    // Each Notify echoes it as a header block marked as WS-Addressing says.
    expect(sub?.sink).to.deep.include({
      parameters: `<p:Ref xmlns:wsarp="${WSA}" wsarp:IsReferenceParameter="true" xmlns:p="urn:p">r-1</p:Ref>`,
    });
  });

  it('refuses consumers outside the allowlist, unknown topics and dialects, and filters it does not offer', async () => {
    const { sessionId, connectionId } = await session();
    const at = `/soap/sessions/${sessionId}`;
    const cases: [string, string][] = [
      [subscribe('https://evil.example/x'), 'SSP_CONSUMER_REFUSED'],
      [subscribe('http://consumer.bank.example/x'), 'SSP_CONSUMER_REFUSED'],
      [subscribe('https://169.254.169.254/latest'), 'SSP_CONSUMER_REFUSED'],
      [subscribe('https://consumer.bank.example/x', topic('s:Nope')), 'SSP_TOPIC_NOT_SUPPORTED'],
      [
        subscribe('https://consumer.bank.example/x', topic('s:TaskStateChanged', DIALECT_FULL)),
        'SSP_TOPIC_DIALECT_UNKNOWN',
      ],
      [
        subscribe('https://consumer.bank.example/x', topic('q:TaskStateChanged')),
        'SSP_INVALID_TOPIC_EXPRESSION',
      ],
      [
        subscribe(
          'https://consumer.bank.example/x',
          '<wsnt:Filter><wsnt:MessageContent Dialect="urn:x">a</wsnt:MessageContent></wsnt:Filter>',
        ),
        'SSP_INVALID_FILTER',
      ],
      [
        subscribe(
          'https://consumer.bank.example/x',
          '<wsnt:InitialTerminationTime>2001-01-01T00:00:00Z</wsnt:InitialTerminationTime>',
        ),
        'SSP_INITIAL_TERMINATION_INVALID',
      ],
      [
        subscribe(
          'https://consumer.bank.example/x',
          '<wsnt:SubscriptionPolicy><wsnt:UseRaw/></wsnt:SubscriptionPolicy>',
        ),
        'SSP_POLICY_UNSUPPORTED',
      ],
      [
        subscribe(
          'https://consumer.bank.example/x',
          '<wsnt:SubscriptionPolicy><o:Fast xmlns:o="urn:o"/></wsnt:SubscriptionPolicy>',
        ),
        'SSP_POLICY_UNRECOGNIZED',
      ],
      [`<wsnt:Subscribe ${NT}><wsnt:ConsumerReference/></wsnt:Subscribe>`, 'SSP_CONSUMER_REFUSED'],
      [
        subscribe(
          'https://consumer.bank.example/x',
          '',
          '<wsa:ReferenceParameters><s:Sequence subscription="x" first="1" last="9"/></wsa:ReferenceParameters>',
        ),
        'SSP_CONSUMER_REFUSED',
      ],
    ];
    for (const [body, expected] of cases) {
      const r = await as(at, body);
      expect(r.code, body).to.equal(expected);
    }
    const filter = await as(
      at,
      subscribe(
        'https://consumer.bank.example/x',
        '<wsnt:Filter><wsnt:MessageContent Dialect="urn:x">a</wsnt:MessageContent></wsnt:Filter>',
      ),
    );
    expect(filter.answer.body).to.include('wsnt:InvalidFilterFault').and.include('<wsnt:UnknownFilter');
    const past = await as(
      at,
      subscribe(
        'https://consumer.bank.example/x',
        '<wsnt:InitialTerminationTime>-PT1M</wsnt:InitialTerminationTime>',
      ),
    );
    expect(past.answer.body).to.include('<wsnt:MinimumTime>');
    // Task topics belong to sessions: a connection refuses them.
    const onConnection = await as(
      `/soap/connections/${connectionId}`,
      subscribe('https://consumer.bank.example/x', topic('s:TaskOutputAvailable')),
    );
    expect(onConnection.code).to.equal('SSP_TOPIC_NOT_SUPPORTED');
  });

  it("refuses another consumer's session, and hides subscriptions from other consumers", async () => {
    const { sessionId } = await session();
    const stranger = await as(
      `/soap/sessions/${sessionId}`,
      subscribe('https://consumer.bank.example/x'),
      'client-b',
    );
    expect(stranger.code).to.equal('SSP_NOT_OWNER');
    const r = await as(`/soap/sessions/${sessionId}`, subscribe('https://consumer.bank.example/x'));
    const path = addressIn(r.answer.body, 'SubscriptionReference');
    for (const body of [EMPTY('Unsubscribe'), EMPTY('PauseSubscription')]) {
      expect((await as(path, body, 'client-b')).code).to.equal('SSP_SUBSCRIPTION_UNKNOWN');
    }
    expect((await as('/soap/subscriptions/AAAAAAAAAAAAAAAAAAAAAA', EMPTY('Unsubscribe'))).code).to.equal(
      'SSP_SUBSCRIPTION_UNKNOWN',
    );
    expect((await as('/soap/subscriptions', EMPTY('Unsubscribe'))).code).to.equal('SSP_SUBSCRIPTION_UNKNOWN');
  });

  it('renews, pauses, resumes and unsubscribes', async () => {
    const { sessionId } = await session();
    const r = await as(`/soap/sessions/${sessionId}`, subscribe('https://consumer.bank.example/x'));
    const path = addressIn(r.answer.body, 'SubscriptionReference');
    const id = path.split('/').pop()!;
    const renew = await as(
      path,
      `<wsnt:Renew ${NT}><wsnt:TerminationTime>PT2H</wsnt:TerminationTime></wsnt:Renew>`,
    );
    expect(renew.code, renew.answer.body).to.equal(undefined);
    expect(Date.parse(renew.pick('TerminationTime')!) - Date.now()).to.be.within(7_190_000, 7_210_000);
    const nil = await as(
      path,
      `<wsnt:Renew ${NT} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><wsnt:TerminationTime xsi:nil="true"/></wsnt:Renew>`,
    );
    // No end asked: the longest the operator allows (a day in the harness).
    expect(Date.parse(nil.pick('TerminationTime')!) - Date.now()).to.be.within(86_390_000, 86_410_000);
    const past = await as(
      path,
      `<wsnt:Renew ${NT}><wsnt:TerminationTime>2000-01-01T00:00:00Z</wsnt:TerminationTime></wsnt:Renew>`,
    );
    expect(past.code).to.equal('SSP_RENEW_TERMINATION_INVALID');
    expect(past.answer.body).to.include('wsnt:UnacceptableTerminationTimeFault');
    expect((await as(path, EMPTY('PauseSubscription'))).code).to.equal(undefined);
    expect((await h.store.getSubscription(id))?.paused).to.equal(true);
    expect((await as(path, EMPTY('ResumeSubscription'))).code).to.equal(undefined);
    expect((await h.store.getSubscription(id))?.paused).to.equal(false);
    expect((await as(path, EMPTY('Unsubscribe'))).code).to.equal(undefined);
    expect(await h.store.getSubscription(id)).to.equal(undefined);
    expect((await as(path, EMPTY('Unsubscribe'))).code).to.equal('SSP_SUBSCRIPTION_UNKNOWN');
  });

  it('accepts the action spellings clients derive from bw-2 for the same body', async () => {
    const { sessionId } = await session();
    const r = await as(`/soap/sessions/${sessionId}`, subscribe('https://consumer.bank.example/x'));
    const path = addressIn(r.answer.body, 'SubscriptionReference');
    for (const action of [
      'http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/PauseSubscriptionRequest',
      'http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/PauseSubscriptionRequest',
    ]) {
      const p = await h.post(EMPTY('PauseSubscription'), {
        path,
        headers: { [CONSUMER_HEADER]: 'client-a', soapaction: `"${action}"` },
      });
      expect(p.code, action).to.equal(undefined);
    }
    const wrong = await h.post(EMPTY('PauseSubscription'), {
      path,
      headers: {
        [CONSUMER_HEADER]: 'client-a',
        soapaction: '"http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest"',
      },
    });
    expect(wrong.code).to.equal('SSP_ACTION_MISMATCH');
  });

  it('delivers to a pull point: next GetMessages acknowledges, sym:Ack repeats a lost batch', async () => {
    const { sessionId, connectionId } = await session();
    const pp = await pullPoint();
    const r = await as(
      `/soap/sessions/${sessionId}`,
      subscribe(`http://ignored.example${pp}`, topic('s:TaskOutputAvailable')),
    );
    expect(r.code, r.answer.body).to.equal(undefined);
    const item = { taskId: '1', successful: true, taskOutput: { text: 'x' } };
    const events = [1, 2, 3].map((i) =>
      taskOutputEvent(
        sessionId,
        { ...item, taskId: String(i) },
        `<sym:Output xmlns:sym="${SYM}"><sym:taskId>${i}</sym:taskId><sym:successful>true</sym:successful></sym:Output>`,
        true,
        Date.now(),
      ),
    );
    await h.notifier.publish([`session:${sessionId}`, `connection:${connectionId}`], events);
    const first = await as(pp, getMessages(2));
    expect(first.code, first.answer.body).to.equal(undefined);
    expect(first.answer.body.match(/<wsnt:NotificationMessage>/g)).to.have.length(2);
    expect(first.answer.body).to.match(/<sym:Batch [^>]*first="1" last="2"/);
    expect(first.answer.body).to.match(/<sym:TaskOutputAvailable [^>]*seq="1" topic="TaskOutputAvailable"/);
    const body = /<soap:Body>(.*)<\/soap:Body>/s.exec(first.answer.body)![1]!;
    expect(await validateAgainstContract(body)).to.deep.equal([]);
    // The reply was "lost": asking again with the previous acknowledgement gets the same batch.
    const again = await as(pp, getMessages(2, 0));
    expect(again.answer.body).to.match(/<sym:Batch [^>]*first="1" last="2"/);
    const next = await as(pp, getMessages(10, 2));
    expect(next.answer.body).to.match(/<sym:Batch [^>]*first="3" last="3"/);
    const beyond = await as(pp, getMessages(10, 9));
    expect(beyond.code).to.equal('SSP_GET_MESSAGES_REFUSED');
    // A plain client's next call acknowledges what it got.
    const empty = await as(pp, getMessages(10));
    expect(empty.answer.body).not.to.include('NotificationMessage');
    expect((await as(pp, getMessages(5), 'client-b')).code).to.equal('SSP_SUBSCRIPTION_UNKNOWN');
    expect((await as(pp, EMPTY('DestroyPullPoint'))).code).to.equal(undefined);
    expect((await as(pp, getMessages(1))).code).to.equal('SSP_SUBSCRIPTION_UNKNOWN');
  });

  it('a closed session tells its subscribers, then ends their subscriptions', async () => {
    const { sessionId, connectionId } = await session();
    const pp = await pullPoint();
    await as(`/soap/sessions/${sessionId}`, subscribe(`http://x${pp}`, topic('s:SessionStateChanged')));
    await as(
      `/soap/connections/${connectionId}`,
      subscribe(`http://x${pp}`, topic('s:SessionStateChanged/Closed', DIALECT_CONCRETE)),
    );
    await as(
      '/soap',
      op(
        'closeSession',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:closeFlags>DestroyOnClose</sym:closeFlags>`,
      ),
    );
    const got = await as(pp, getMessages(10));
    const topics = [...got.answer.body.matchAll(/topic="([^"]+)"/g)].map((m) => m[1]);
    expect(topics).to.have.members([
      'SessionStateChanged/Closed',
      'ResourceTerminated',
      'SessionStateChanged/Closed',
    ]);
    expect(got.answer.body).to.include('<sym:Cause>client</sym:Cause>');
    expect(await h.store.subscriptionsOf(`session:${sessionId}`)).to.deep.equal([]);
    await as(pp, EMPTY('DestroyPullPoint'));
  });

  it('refuses a pull point of another consumer as a ConsumerReference, and enforces the quotas', async () => {
    const { sessionId } = await session();
    const theirs = await pullPoint('client-b');
    const r = await as(`/soap/sessions/${sessionId}`, subscribe(`http://x${theirs}`));
    expect(r.code).to.equal('SSP_CONSUMER_REFUSED');
    const pps: string[] = [];
    for (;;) {
      const c = await as('/soap/pullpoints', EMPTY('CreatePullPoint'), 'client-c');
      if (c.code) {
        expect(c.code).to.equal('SSP_SUBSCRIPTION_QUOTA');
        expect(c.answer.body).to.include('wsnt:UnableToCreatePullPointFault');
        break;
      }
      pps.push(addressIn(c.answer.body, 'PullPoint'));
    }
    expect(pps).to.have.length(3);
  });
});
