import { expect } from 'chai';
import {
  op,
  startHarness,
  type CallResult,
  type Harness,
  CONSUMER_HEADER,
  consumersFromHeader,
} from '../../test/helpers/in-process';
import { MemoryStore } from '../store/memory-store';
import type { RememberedReply } from '../store/store';

/**
 * A memory store that can lose its remembered answers, as when the proxy that answered died
 * before recording the answer: a retry then reaches the grid, which must de-duplicate it.
 */
class ForgetfulStore extends MemoryStore {
  forgetReplies = false;
  override async getReply(key: string): Promise<RememberedReply | undefined> {
    return this.forgetReplies ? undefined : super.getReply(key);
  }
}

const MAX_BATCH = 2;

const sid = (id: string): string => `<sym:sessionId>${id}</sym:sessionId>`;
const task = (text: string, extra = ''): string =>
  `<sym:taskSubmissionAttributes>${extra}<sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
const key = (k: string): string => `<sym:clientKey>${k}</sym:clientKey>`;

/** Text of every element with this local name, in document order. */
function all(xml: string, local: string): string[] {
  const re = new RegExp(`<(?:\\w+:)?${local}(?:\\s[^>]*)?>([^<]*)</(?:\\w+:)?${local}>`, 'g');
  return [...xml.matchAll(re)].map((m) => m[1]!);
}

describe('operations/task-input: sendTaskInput and sendTaskInputBatch', () => {
  let h: Harness;
  const store = new ForgetfulStore();
  let sessionId: string;
  const as = (consumer: string, body: string): Promise<CallResult> =>
    h.post(body, { headers: { [CONSUMER_HEADER]: consumer } });

  async function ok(body: string): Promise<CallResult> {
    const r = await as('client-a', body);
    expect(r.code, r.answer.body).to.equal(undefined);
    return r;
  }

  async function newSession(): Promise<string> {
    const c = await ok(
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>',
      ),
    );
    const s = await ok(
      op('createSession', `<sym:connectionId>${c.pick('connectionId')!}</sym:connectionId>`),
    );
    return s.pick('sessionId')!;
  }

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader, store, maxTasksPerBatch: MAX_BATCH });
    sessionId = await newSession();
  });
  afterEach(() => {
    store.forgetReplies = false;
  });
  after(() => h?.close());

  describe('sendTaskInput', () => {
    it('returns a task id and queues one task on the grid', async () => {
      const before = h.grid.stats().tasksAccepted;
      const r = await ok(op('sendTaskInput', sid(sessionId) + task('hello')));
      expect(r.answer.body).to.contain('sendTaskInputResponse');
      expect(r.pick('taskId')).to.match(/^[A-Za-z0-9._:-]+$/);
      expect(h.grid.stats().tasksAccepted).to.equal(before + 1);
    });

    it('gives successive sends distinct task ids', async () => {
      const a = (await ok(op('sendTaskInput', sid(sessionId) + task('same')))).pick('taskId');
      const b = (await ok(op('sendTaskInput', sid(sessionId) + task('same')))).pick('taskId');
      expect(a).not.to.equal(b);
    });

    it('carries the tag to the grid: the output comes back with it', async () => {
      const s = await newSession();
      const sent = await ok(
        op(
          'sendTaskInput',
          sid(s) + task('tagged', '<sym:tag>tag-x</sym:tag><sym:taskPriority>5</sym:taskPriority>'),
        ),
      );
      const fetched = await ok(
        op(
          'fetchTaskOutput',
          sid(s) + '<sym:countMax>1</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>',
        ),
      );
      expect(fetched.pick('taskId')).to.equal(sent.pick('taskId'));
      expect(fetched.pick('tag')).to.equal('tag-x');
      expect(fetched.pick('text')).to.equal('tagged');
    });

    it('refuses an unknown session with SSP_UNKNOWN_SESSION', async () => {
      const r = await as('client-a', op('sendTaskInput', sid('no-such-session') + task('x')));
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('refuses another consumer’s session with SSP_NOT_OWNER and queues nothing', async () => {
      const before = h.grid.stats().tasksAccepted;
      const r = await as('client-b', op('sendTaskInput', sid(sessionId) + task('not mine')));
      expect(r.code).to.equal('SSP_NOT_OWNER');
      expect(r.pick('taskId')).to.equal(undefined);
      expect(h.grid.stats().tasksAccepted).to.equal(before);
    });
  });

  describe('sendTaskInputBatch', () => {
    it('returns one task id per task, all distinct, and queues them all', async () => {
      const before = h.grid.stats().tasksAccepted;
      const r = await ok(op('sendTaskInputBatch', sid(sessionId) + task('b1') + task('b2')));
      const ids = all(r.answer.body, 'taskId');
      expect(ids).to.have.length(2);
      expect(new Set(ids).size).to.equal(2);
      expect(h.grid.stats().tasksAccepted).to.equal(before + 2);
    });

    it('returns the ids in the order of the tasks: each output matches its input', async () => {
      const s = await newSession();
      const r = await ok(op('sendTaskInputBatch', sid(s) + task('first') + task('second')));
      const ids = all(r.answer.body, 'taskId');
      const fetched = await ok(
        op(
          'fetchTaskOutput',
          sid(s) + '<sym:countMax>2</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>',
        ),
      );
      let body = fetched.answer.body;
      if (all(body, 'taskId').length < 2) {
        const more = await ok(
          op(
            'fetchTaskOutput',
            sid(s) + '<sym:countMax>1</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>',
          ),
        );
        body += more.answer.body;
      }
      const outIds = all(body, 'taskId');
      const texts = all(body, 'text');
      const byId = new Map(outIds.map((id, i) => [id, texts[i]]));
      expect(byId.get(ids[0]!)).to.equal('first');
      expect(byId.get(ids[1]!)).to.equal('second');
    });

    it(`accepts exactly maxTasksPerBatch (${MAX_BATCH}) tasks and refuses one more with SSP_INVALID_ARGUMENT`, async () => {
      const atLimit = await as('client-a', op('sendTaskInputBatch', sid(sessionId) + task('1') + task('2')));
      expect(atLimit.code).to.equal(undefined);
      const before = h.grid.stats().tasksAccepted;
      const over = await as(
        'client-a',
        op('sendTaskInputBatch', sid(sessionId) + task('1') + task('2') + task('3')),
      );
      expect(over.code).to.equal('SSP_INVALID_ARGUMENT');
      expect(over.answer.body).to.contain('InvalidArgumentFault');
      expect(over.answer.body).to.contain(`at most ${MAX_BATCH} tasks`);
      expect(over.ctx.gridMs).to.equal(0);
      expect(h.grid.stats().tasksAccepted).to.equal(before);
    });

    it('refuses an unknown session with SSP_UNKNOWN_SESSION', async () => {
      const r = await as('client-a', op('sendTaskInputBatch', sid('no-such-session') + task('x')));
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('refuses another consumer’s session with SSP_NOT_OWNER and queues nothing', async () => {
      const before = h.grid.stats().tasksAccepted;
      const r = await as('client-b', op('sendTaskInputBatch', sid(sessionId) + task('x') + task('y')));
      expect(r.code).to.equal('SSP_NOT_OWNER');
      expect(h.grid.stats().tasksAccepted).to.equal(before);
    });
  });

  describe('client keys', () => {
    it('two sends with the same clientKey get the same task id and the grid accepts one task', async () => {
      const stats0 = h.grid.stats();
      const body = op('sendTaskInput', sid(sessionId) + task('once') + key('send-once-1'));
      const first = await ok(body);
      const second = await ok(body);
      expect(second.pick('taskId')).to.equal(first.pick('taskId'));
      // The proxy answered the retry from its memory: the grid saw one submit.
      expect(second.ctx.repeated).to.equal(true);
      const stats1 = h.grid.stats();
      expect(stats1.tasksAccepted - stats0.tasksAccepted).to.equal(1);
      expect(stats1.duplicateSubmits - stats0.duplicateSubmits).to.equal(0);
    });

    it('the grid gets the client key as its submit key: a retry that reaches the grid is de-duplicated there', async () => {
      const stats0 = h.grid.stats();
      const body = op('sendTaskInput', sid(sessionId) + task('once more') + key('send-once-2'));
      const first = await ok(body);
      store.forgetReplies = true;
      const second = await ok(body);
      expect(second.ctx.repeated).to.equal(false);
      expect(second.pick('taskId')).to.equal(first.pick('taskId'));
      const stats1 = h.grid.stats();
      expect(stats1.tasksAccepted - stats0.tasksAccepted).to.equal(1);
      expect(stats1.duplicateSubmits - stats0.duplicateSubmits).to.equal(1);
    });

    it('a batch retried with its clientKey gets the same task ids, at the proxy and at the grid', async () => {
      const stats0 = h.grid.stats();
      const body = op('sendTaskInputBatch', sid(sessionId) + task('k1') + task('k2') + key('batch-once-1'));
      const first = all((await ok(body)).answer.body, 'taskId');
      const remembered = all((await ok(body)).answer.body, 'taskId');
      store.forgetReplies = true;
      const deduplicated = all((await ok(body)).answer.body, 'taskId');
      expect(first).to.have.length(2);
      expect(remembered).to.deep.equal(first);
      expect(deduplicated).to.deep.equal(first);
      const stats1 = h.grid.stats();
      expect(stats1.tasksAccepted - stats0.tasksAccepted).to.equal(2);
      expect(stats1.duplicateSubmits - stats0.duplicateSubmits).to.equal(1);
    });

    it('without a client key two identical sends are two tasks', async () => {
      const before = h.grid.stats().tasksAccepted;
      const body = op('sendTaskInput', sid(sessionId) + task('twice'));
      const a = (await ok(body)).pick('taskId');
      const b = (await ok(body)).pick('taskId');
      expect(a).not.to.equal(b);
      expect(h.grid.stats().tasksAccepted).to.equal(before + 2);
    });

    it('refuses a clientKey reused for a different task with SSP_CLIENT_KEY_REUSED', async () => {
      await ok(op('sendTaskInput', sid(sessionId) + task('original') + key('send-reused-1')));
      const before = h.grid.stats().tasksAccepted;
      const r = await as(
        'client-a',
        op('sendTaskInput', sid(sessionId) + task('different') + key('send-reused-1')),
      );
      expect(r.code).to.equal('SSP_CLIENT_KEY_REUSED');
      expect(h.grid.stats().tasksAccepted).to.equal(before);
    });
  });
});
