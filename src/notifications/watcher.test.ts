import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CONSUMER_HEADER,
  consumersFromHeader,
  op,
  startHarness,
  type CallResult,
  type Harness,
} from '../../test/helpers/in-process';
import { loadProxyContract } from '../operations/contract';
import { ROOT } from '../paths';
import { SYM, WSA, WSNT } from '../soap/ws-namespaces';
import { DIALECT_SIMPLE } from './topics';
import { SessionWatcher } from './watcher';

const NT = `xmlns:wsnt="${WSNT}" xmlns:wsa="${WSA}" xmlns:s="${SYM}"`;
const sid = (id: string): string => `<sym:sessionId>${id}</sym:sessionId>`;
const textTask = (text: string): string =>
  `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;

describe('notifications: the session watcher (grid outputs into subscriptions)', () => {
  let h: Harness;
  let watcher: SessionWatcher;
  const call = (path: string, body: string): Promise<CallResult> =>
    h.post(body, { path, headers: { [CONSUMER_HEADER]: 'client-a' } });

  async function subscribedSession(topic: string | null): Promise<{ sessionId: string; pp: string }> {
    const c = await call(
      '/soap',
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
    );
    const s = await call(
      '/soap',
      op('createSession', `<sym:connectionId>${c.pick('connectionId')}</sym:connectionId>`),
    );
    const sessionId = s.pick('sessionId')!;
    const p = await call('/soap/pullpoints', `<wsnt:CreatePullPoint xmlns:wsnt="${WSNT}"/>`);
    const pp = new URL(/<wsa:Address>([^<]+)<\/wsa:Address>/.exec(p.answer.body)![1]!).pathname;
    const filter =
      topic === null
        ? ''
        : `<wsnt:Filter><wsnt:TopicExpression Dialect="${DIALECT_SIMPLE}">s:${topic}</wsnt:TopicExpression></wsnt:Filter>`;
    const r = await call(
      `/soap/sessions/${sessionId}`,
      `<wsnt:Subscribe ${NT}><wsnt:ConsumerReference><wsa:Address>http://proxy${pp}</wsa:Address></wsnt:ConsumerReference>${filter}</wsnt:Subscribe>`,
    );
    expect(r.code, r.answer.body).to.equal(undefined);
    return { sessionId, pp };
  }

  async function messages(pp: string, n: number): Promise<string> {
    let all = '';
    const end = Date.now() + 10_000;
    while ((all.match(/<wsnt:NotificationMessage>/g) ?? []).length < n) {
      if (Date.now() > end) throw new Error(`only got: ${all.slice(0, 800)}`);
      const r = await call(pp, `<wsnt:GetMessages xmlns:wsnt="${WSNT}"/>`);
      all += r.answer.body;
      await sleep(20);
    }
    return all;
  }

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader });
    const contract = loadProxyContract(ROOT);
    watcher = new SessionWatcher(h.store, h.router, h.notifier, contract.encodeOutput, {
      waitMs: 200,
      leaseMs: 2000,
      maxSessions: 10,
      gridHoldMs: 5000,
      inlineOutputMaxChars: 400,
      pollMs: 20,
      batch: 100,
    });
    watcher.start();
  });
  after(async () => {
    await watcher.stop();
    await h.close();
  });

  it('carries each output in TaskOutputAvailable and reports the task Done', async () => {
    const { sessionId, pp } = await subscribedSession(null);
    await call('/soap', op('sendTaskInput', sid(sessionId) + textTask('hello')));
    const got = await messages(pp, 2);
    expect(got).to.match(/<sym:TaskOutputAvailable [^>]*topic="TaskOutputAvailable"/);
    expect(got).to.include('<sym:text>hello</sym:text>');
    expect(got).to.match(/<sym:TaskStateChanged [^>]*topic="TaskStateChanged\/Done"/);
    // Carried: nothing waits for fetchTaskOutput.
    const f = await call('/soap', op('fetchTaskOutput', sid(sessionId) + '<sym:countMax>10</sym:countMax>'));
    expect(f.answer.body).not.to.include('<sym:taskOutput>');
  });

  it('references an output too large to carry; it waits for fetchTaskOutput', async () => {
    const { sessionId, pp } = await subscribedSession('TaskOutputAvailable');
    const big = 'x'.repeat(1000);
    await call('/soap', op('sendTaskInput', sid(sessionId) + textTask(big)));
    const got = await messages(pp, 1);
    expect(got).to.match(
      /<sym:OutputReference taskId="[^"]+" successful="true" size="\d+">fetchTaskOutput<\/sym:OutputReference>/,
    );
    const f = await call('/soap', op('fetchTaskOutput', sid(sessionId) + '<sym:countMax>10</sym:countMax>'));
    expect(f.answer.body).to.include(big);
  });

  it('keeps outputs for fetchTaskOutput when the subscribers asked only for task states', async () => {
    const { sessionId, pp } = await subscribedSession('TaskStateChanged');
    await call('/soap', op('sendTaskInput', sid(sessionId) + textTask('kept')));
    const got = await messages(pp, 1);
    expect(got).to.include('TaskStateChanged/Done').and.not.include('TaskOutputAvailable');
    const f = await call('/soap', op('fetchTaskOutput', sid(sessionId) + '<sym:countMax>10</sym:countMax>'));
    expect(f.answer.body).to.include('<sym:text>kept</sym:text>');
  });

  it('stops watching a session without subscriptions', async () => {
    const { sessionId, pp } = await subscribedSession('TaskStateChanged');
    await call(pp, `<wsnt:DestroyPullPoint xmlns:wsnt="${WSNT}"/>`);
    const end = Date.now() + 5000;
    while (!(await h.store.claimWatches(Date.now() + 60_000, 1000, 100)).every((id) => id !== sessionId)) {
      if (Date.now() > end) throw new Error('still watched');
      await sleep(50);
    }
    await call('/soap', op('sendTaskInput', sid(sessionId) + textTask('after')));
    await sleep(300);
    const f = await call(
      '/soap',
      op(
        'fetchTaskOutput',
        sid(sessionId) + '<sym:countMax>10</sym:countMax><sym:timeoutMillis>2000</sym:timeoutMillis>',
      ),
    );
    expect(f.answer.body).to.include('<sym:text>after</sym:text>');
  });
});
