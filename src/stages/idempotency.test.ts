import { expect } from 'chai';
import { Writable } from 'node:stream';
import winston from 'winston';
import { GatewayError } from '../errors/catalogue';
import { GridRouter } from '../backend/grid-router';
import { log } from '../log';
import { operationTable } from '../operations/table';
import type { AnsweredCall, ResolvedCall } from '../pipeline/context';
import { bindOperations, type BoundOperation } from '../pipeline/operation';
import { isDecodedFields, type DecodedFields } from '../soap/schema';
import { parseXml } from '../soap/xml';
import { Lifetimes, NEVER_IDLE } from '../lifetime/lifetimes';
import { MemoryStore } from '../store/memory-store';
import { StoreUnavailableError, type RememberedReply } from '../store/store';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import { answerRetries, rememberAnswer, scopedClientKey } from './idempotency';

const TTL = 60_000;

const tableStore = new MemoryStore();
const operations = bindOperations(
  testContract().operations,
  operationTable({
    router: new GridRouter([], 'default'),
    store: tableStore,
    lifetimes: new Lifetimes(tableStore, NEVER_IDLE),
    maxTasksPerBatch: 100,
    reliability: { clientKeyTtlMs: TTL, maxLeaseMs: 60_000, gridHoldMs: 1000 },
  }),
);

function bound(name: string): BoundOperation {
  for (const o of operations.values()) if (o.name === name) return o;
  throw new Error(`no operation ${name}`);
}

function argsOf(name: string, inner: string): DecodedFields {
  const v = bound(name).request.decode(parseXml(op(name, inner)));
  if (!isDecodedFields(v)) throw new Error(`${name} decoded to a simple value`);
  return v;
}

interface CallOptions {
  consumer?: string;
  messageId?: string;
  resend?: boolean;
}

function call(name: string, inner: string, o: CallOptions = {}): ResolvedCall {
  const operation = bound(name);
  const payload = parseXml(op(name, inner));
  const ctx: ResolvedCall = Object.assign(fakeCall(), {
    raw: Buffer.alloc(0),
    envelope: payload,
    header: null,
    payload,
    signer: null,
    consumer: { id: o.consumer ?? 'client-a', via: 'anonymous' as const },
    policy: null,
    operation,
    args: argsOf(name, inner),
  });
  ctx.messageId = o.messageId;
  ctx.resend = o.resend ?? false;
  return ctx;
}

const connectArgs = (password: string, app = 'echo'): string =>
  `<sym:applicationName>${app}</sym:applicationName><sym:username>user-a</sym:username><sym:password>${password}</sym:password>`;
const sendArgs = (text: string, clientKey?: string): string =>
  `<sym:sessionId>s-1</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>` +
  (clientKey ? `<sym:clientKey>${clientKey}</sym:clientKey>` : '');
const fetchArgs = (lease?: number): string =>
  `<sym:sessionId>s-1</sym:sessionId><sym:countMax>1</sym:countMax>` +
  (lease === undefined ? '' : `<sym:leaseMillis>${lease}</sym:leaseMillis>`);

/** The call after invoke: what rememberAnswer sees. */
function answered(ctx: ResolvedCall, result: unknown): AnsweredCall {
  const a: AnsweredCall = Object.assign(ctx, { result });
  return a;
}

/** A memory store that records every remembered reply it is given. */
class RecordingStore extends MemoryStore {
  readonly puts: { key: string; rec: RememberedReply; ttlMs: number }[] = [];
  lookups = 0;
  override async getReply(key: string): Promise<RememberedReply | undefined> {
    this.lookups++;
    return super.getReply(key);
  }
  override async putReply(key: string, rec: RememberedReply, ttlMs: number): Promise<void> {
    this.puts.push({ key, rec, ttlMs });
    return super.putReply(key, rec, ttlMs);
  }
}

async function expectFault(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a GatewayError');
}

/** Runs a first call of a remembered operation to its recorded answer. */
async function firstCall(store: MemoryStore, ctx: ResolvedCall, result: unknown): Promise<void> {
  expect(await answerRetries(store)(ctx)).to.equal(undefined);
  await rememberAnswer(store, TTL)(answered(ctx, result));
}

describe('stages/idempotency: retries answered from the store, resends by trait', () => {
  let store: RecordingStore;
  beforeEach(() => {
    store = new RecordingStore();
  });
  afterEach(() => store.close());

  describe('the client key', () => {
    it('is the explicit clientKey argument, scoped by consumer, even when a MessageID is present', async () => {
      const ctx = call('sendTaskInput', sendArgs('x', 'key-1'), { messageId: 'msg-1' });
      await answerRetries(store)(ctx);
      expect(ctx.clientKey).to.equal(scopedClientKey('client-a', 'key-1'));
    });

    it('is the MessageID when there is no clientKey argument', async () => {
      const ctx = call('sendTaskInput', sendArgs('x'), { messageId: 'msg-1' });
      await answerRetries(store)(ctx);
      expect(ctx.clientKey).to.equal(scopedClientKey('client-a', 'msg-1'));
    });

    it('is undefined without either, and nothing is remembered', async () => {
      const ctx = call('sendTaskInput', sendArgs('x'));
      expect(await answerRetries(store)(ctx)).to.equal(undefined);
      expect(ctx.clientKey).to.equal(undefined);
      expect(ctx.pendingAnswer).to.equal(undefined);
      expect(store.lookups).to.equal(0);
    });

    it('is set for an operation that is not remembered, without a store lookup', async () => {
      const ctx = call('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>', { messageId: 'msg-1' });
      expect(await answerRetries(store)(ctx)).to.equal(undefined);
      expect(ctx.clientKey).to.equal(scopedClientKey('client-a', 'msg-1'));
      expect(ctx.pendingAnswer).to.equal(undefined);
      expect(store.lookups).to.equal(0);
    });

    it('scopedClientKey separates consumers and does not reveal the raw key', () => {
      const a = scopedClientKey('client-a', 'key-1');
      expect(a).to.equal(scopedClientKey('client-a', 'key-1'));
      expect(a).not.to.equal(scopedClientKey('client-b', 'key-1'));
      expect(a).not.to.equal(scopedClientKey('client-a', 'key-2'));
      // The separator keeps (consumer, key) pairs that concatenate alike apart.
      expect(scopedClientKey('client-a', 'b')).not.to.equal(scopedClientKey('client-ab', ''));
      expect(a).not.to.contain('key-1');
    });
  });

  describe('remembered operations', () => {
    it('a first call with a key sets pendingAnswer, and rememberAnswer stores the result under it', async () => {
      const ctx = call('connect', connectArgs('pw-1'), { messageId: 'msg-1' });
      expect(await answerRetries(store)(ctx)).to.equal(undefined);
      expect(ctx.repeated).to.equal(false);
      const pending = ctx.pendingAnswer;
      expect(pending?.key).to.equal(scopedClientKey('client-a', 'msg-1'));
      expect(pending?.fingerprint).to.be.a('string').and.not.equal('');

      await rememberAnswer(store, TTL)(answered(ctx, { connectionId: 'c-1' }));
      expect(store.puts).to.have.length(1);
      expect(store.puts[0]!.ttlMs).to.equal(TTL);
      expect(await store.getReply(scopedClientKey('client-a', 'msg-1'))).to.deep.equal({
        fingerprint: pending?.fingerprint,
        reply: JSON.stringify({ connectionId: 'c-1' }),
      });
    });

    it('a second call with the same key and request gets the remembered answer and is marked repeated', async () => {
      await firstCall(store, call('connect', connectArgs('pw-1'), { messageId: 'msg-1' }), {
        connectionId: 'c-1',
      });
      const retry = call('connect', connectArgs('pw-1'), { messageId: 'msg-1' });
      expect(await answerRetries(store)(retry)).to.deep.equal({ reply: { connectionId: 'c-1' } });
      expect(retry.repeated).to.equal(true);
      expect(retry.pendingAnswer).to.equal(undefined);
      // The repeat is not stored again.
      await rememberAnswer(store, TTL)(answered(retry, { connectionId: 'c-1' }));
      expect(store.puts).to.have.length(1);
    });

    it('an explicit clientKey identifies a retry even under a new MessageID', async () => {
      await firstCall(store, call('sendTaskInput', sendArgs('x', 'key-1'), { messageId: 'msg-1' }), {
        taskId: 't-1',
      });
      const retry = call('sendTaskInput', sendArgs('x', 'key-1'), { messageId: 'msg-2' });
      expect(await answerRetries(store)(retry)).to.deep.equal({ reply: { taskId: 't-1' } });
      expect(retry.repeated).to.equal(true);
    });

    it('the same key with a different request is refused with SSP_CLIENT_KEY_REUSED', async () => {
      await firstCall(store, call('sendTaskInput', sendArgs('x', 'key-1')), { taskId: 't-1' });
      const e = await expectFault(answerRetries(store)(call('sendTaskInput', sendArgs('y', 'key-1'))));
      expect(e.code).to.equal('SSP_CLIENT_KEY_REUSED');
      expect(e.message).to.contain('sendTaskInput');
    });

    it('the same key for a different operation is refused with SSP_CLIENT_KEY_REUSED', async () => {
      await firstCall(
        store,
        call('closeSession', '<sym:sessionId>s-1</sym:sessionId>', { messageId: 'msg-1' }),
        {},
      );
      const reopen = call(
        'openSession',
        '<sym:connectionId>c-1</sym:connectionId><sym:sessionId>s-1</sym:sessionId>',
        {
          messageId: 'msg-1',
        },
      );
      const e = await expectFault(answerRetries(store)(reopen));
      expect(e.code).to.equal('SSP_CLIENT_KEY_REUSED');
      expect(e.message).to.contain('openSession');
    });

    it('keys are per consumer: another consumer with the same key is a new call', async () => {
      await firstCall(store, call('sendTaskInput', sendArgs('x', 'key-1')), { taskId: 't-1' });
      const other = call('sendTaskInput', sendArgs('x', 'key-1'), { consumer: 'client-b' });
      expect(await answerRetries(store)(other)).to.equal(undefined);
      expect(other.repeated).to.equal(false);
      expect(other.pendingAnswer?.key).to.equal(scopedClientKey('client-b', 'key-1'));
    });

    it('the password is not compared: the same key with another password gets the remembered answer', async () => {
      await firstCall(store, call('connect', connectArgs('pw-first-8d1c'), { messageId: 'msg-1' }), {
        connectionId: 'c-1',
      });
      const retry = call('connect', connectArgs('pw-second-3e9a'), { messageId: 'msg-1' });
      expect(await answerRetries(store)(retry)).to.deep.equal({ reply: { connectionId: 'c-1' } });
      expect(retry.repeated).to.equal(true);
    });

    it('the other connect arguments are compared', async () => {
      await firstCall(store, call('connect', connectArgs('pw-1'), { messageId: 'msg-1' }), {
        connectionId: 'c-1',
      });
      const e = await expectFault(
        answerRetries(store)(call('connect', connectArgs('pw-1', 'other-app'), { messageId: 'msg-1' })),
      );
      expect(e.code).to.equal('SSP_CLIENT_KEY_REUSED');
    });

    it('the password never reaches the store, and does not change the fingerprint', async () => {
      const a = call('connect', connectArgs('pw-secret-5b7f'), { messageId: 'msg-1' });
      await firstCall(store, a, { connectionId: 'c-1' });
      const b = call('connect', connectArgs('pw-other-2a4d'), { messageId: 'msg-2' });
      await firstCall(store, b, { connectionId: 'c-2' });
      expect(store.puts).to.have.length(2);
      const stored = JSON.stringify(store.puts);
      expect(stored).not.to.contain('pw-secret-5b7f');
      expect(stored).not.to.contain('pw-other-2a4d');
      expect(store.puts[0]!.rec.fingerprint).to.equal(store.puts[1]!.rec.fingerprint);
    });

    it('the clientKey argument itself is not part of the fingerprint', async () => {
      const a = call('sendTaskInput', sendArgs('x', 'key-1'));
      const b = call('sendTaskInput', sendArgs('x', 'key-2'));
      await answerRetries(store)(a);
      await answerRetries(store)(b);
      expect(a.pendingAnswer?.fingerprint).to.equal(b.pendingAnswer?.fingerprint);
      expect(a.pendingAnswer?.key).not.to.equal(b.pendingAnswer?.key);
    });

    it('binary payloads are fingerprinted by content', async () => {
      const bin = (b64: string, key: string): string =>
        `<sym:sessionId>s-1</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:binary>${b64}</sym:binary></sym:taskInput></sym:taskSubmissionAttributes><sym:clientKey>${key}</sym:clientKey>`;
      const a = call('sendTaskInput', bin('AAEC', 'key-1'));
      const same = call('sendTaskInput', bin('AAEC', 'key-2'));
      const other = call('sendTaskInput', bin('AAED', 'key-3'));
      for (const c of [a, same, other]) await answerRetries(store)(c);
      expect(a.pendingAnswer?.fingerprint).to.equal(same.pendingAnswer?.fingerprint);
      expect(a.pendingAnswer?.fingerprint).not.to.equal(other.pendingAnswer?.fingerprint);
    });

    it('a store outage while looking up a remembered answer propagates', async () => {
      class DownStore extends MemoryStore {
        override async getReply(): Promise<RememberedReply | undefined> {
          throw new StoreUnavailableError('the store is down');
        }
      }
      const down = new DownStore();
      let thrown: unknown;
      try {
        await answerRetries(down)(call('connect', connectArgs('pw-1'), { messageId: 'msg-1' }));
      } catch (e) {
        thrown = e;
      }
      expect(thrown).to.be.instanceOf(StoreUnavailableError);
    });
  });

  describe('signed resends (ctx.resend) with no remembered answer', () => {
    it('connect is refused as a replay, with or without a key', async () => {
      for (const messageId of ['msg-1', undefined]) {
        const e = await expectFault(
          answerRetries(store)(call('connect', connectArgs('pw-1'), { messageId, resend: true })),
        );
        expect(e.code, String(messageId)).to.equal('SSP_WSS_REPLAY');
      }
    });

    it('createSession and openSession are refused as replays', async () => {
      const create = call('createSession', '<sym:connectionId>c-1</sym:connectionId>', {
        messageId: 'msg-1',
        resend: true,
      });
      expect((await expectFault(answerRetries(store)(create))).code).to.equal('SSP_WSS_REPLAY');
      const open = call(
        'openSession',
        '<sym:connectionId>c-1</sym:connectionId><sym:sessionId>s-1</sym:sessionId>',
        {
          messageId: 'msg-2',
          resend: true,
        },
      );
      expect((await expectFault(answerRetries(store)(open))).code).to.equal('SSP_WSS_REPLAY');
    });

    it('connect with a remembered answer gets that answer', async () => {
      await firstCall(store, call('connect', connectArgs('pw-1'), { messageId: 'msg-1' }), {
        connectionId: 'c-1',
      });
      const resend = call('connect', connectArgs('pw-1'), { messageId: 'msg-1', resend: true });
      expect(await answerRetries(store)(resend)).to.deep.equal({ reply: { connectionId: 'c-1' } });
      expect(resend.repeated).to.equal(true);
    });

    it('sendTaskInput with a key is allowed to run again, and its answer will be remembered', async () => {
      const ctx = call('sendTaskInput', sendArgs('x', 'key-1'), { resend: true });
      expect(await answerRetries(store)(ctx)).to.equal(undefined);
      expect(ctx.pendingAnswer?.key).to.equal(scopedClientKey('client-a', 'key-1'));
    });

    it('sendTaskInput without any key is refused as a replay', async () => {
      const e = await expectFault(
        answerRetries(store)(call('sendTaskInput', sendArgs('x'), { resend: true })),
      );
      expect(e.code).to.equal('SSP_WSS_REPLAY');
    });

    it('closeSession with a key is allowed (closing twice is closing once)', async () => {
      const ctx = call('closeSession', '<sym:sessionId>s-1</sym:sessionId>', {
        messageId: 'msg-1',
        resend: true,
      });
      expect(await answerRetries(store)(ctx)).to.equal(undefined);
      expect(ctx.pendingAnswer).not.to.equal(undefined);
    });

    it('getSessionStatus is allowed, with or without a key', async () => {
      for (const messageId of ['msg-1', undefined]) {
        const ctx = call('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>', {
          messageId,
          resend: true,
        });
        expect(await answerRetries(store)(ctx), String(messageId)).to.equal(undefined);
      }
    });

    it('fetchTaskOutput without leaseMillis is refused as a replay', async () => {
      const e = await expectFault(
        answerRetries(store)(call('fetchTaskOutput', fetchArgs(), { messageId: 'msg-1', resend: true })),
      );
      expect(e.code).to.equal('SSP_WSS_REPLAY');
    });

    it('fetchTaskOutput with leaseMillis and a key is allowed; with leaseMillis and no key it is refused', async () => {
      const keyed = call('fetchTaskOutput', fetchArgs(30_000), { messageId: 'msg-1', resend: true });
      expect(await answerRetries(store)(keyed)).to.equal(undefined);
      expect(keyed.clientKey).to.equal(scopedClientKey('client-a', 'msg-1'));
      const unkeyed = call('fetchTaskOutput', fetchArgs(30_000), { resend: true });
      expect((await expectFault(answerRetries(store)(unkeyed))).code).to.equal('SSP_WSS_REPLAY');
    });

    it('without resend, every operation runs (no replay refusal)', async () => {
      expect(await answerRetries(store)(call('connect', connectArgs('pw-1')))).to.equal(undefined);
      expect(await answerRetries(store)(call('fetchTaskOutput', fetchArgs()))).to.equal(undefined);
    });
  });

  describe('rememberAnswer', () => {
    it('does nothing without a pending answer', async () => {
      const ctx = call('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>', { messageId: 'msg-1' });
      await answerRetries(store)(ctx);
      await rememberAnswer(store, TTL)(answered(ctx, { sessionStatus: {} }));
      expect(store.puts).to.deep.equal([]);
    });

    it('logs a store failure instead of throwing: the call itself succeeded', async () => {
      class FailingStore extends MemoryStore {
        override async putReply(): Promise<void> {
          throw new StoreUnavailableError('the store is down');
        }
      }
      const failing = new FailingStore();
      const ctx = call('connect', connectArgs('pw-1'), { messageId: 'msg-1' });
      await answerRetries(failing)(ctx);
      expect(ctx.pendingAnswer).not.to.equal(undefined);

      const entries: Record<string, unknown>[] = [];
      const sink = new winston.transports.Stream({
        stream: new Writable({
          objectMode: true,
          write(info: Record<string, unknown>, _enc, done) {
            entries.push(info);
            done();
          },
        }),
      });
      log.add(sink);
      try {
        await rememberAnswer(failing, TTL)(answered(ctx, { connectionId: 'c-1' }));
      } finally {
        log.remove(sink);
      }
      const warning = entries.find((e) => e['message'] === 'could not remember an answer for retries');
      expect(warning, JSON.stringify(entries)).not.to.equal(undefined);
      expect(warning).to.deep.include({
        level: 'warn',
        correlationId: ctx.correlationId,
        operation: 'connect',
        error: 'the store is down',
      });
    });
  });
});
