import { expect } from 'chai';
import { Writable } from 'node:stream';
import winston from 'winston';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import { SOAP11_NS, SOAP12_NS, type SoapVersion } from '../soap/envelope';
import { parseXml } from '../soap/xml';
import { StoreUnavailableError } from '../store/store';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import type { CallContext } from './context';
import type { BoundOperation } from './operation';
import { asGatewayError, createPipeline, PHASES, runPhases, type Answer, type Phases } from './phases';

const operation: BoundOperation = (() => {
  const info = testContract().byName.get('connect');
  if (!info) throw new Error('the WSDL has no connect');
  return { ...info, handler: async () => ({}), traits: { remembered: false, rerunOnResend: () => true } };
})();

/** Phases whose hooks establish what each phase promises, recording the order they ran in. */
function workingPhases(seen: string[]): Phases {
  const payload = parseXml(op('connect', ''));
  return {
    transport: [
      async (ctx) => {
        seen.push('transport');
        ctx.raw = Buffer.from('<x/>');
      },
    ],
    envelope: [
      async (ctx) => {
        seen.push('envelope');
        ctx.envelope = payload;
        ctx.header = null;
        ctx.payload = payload;
      },
    ],
    security: [
      async (ctx) => {
        seen.push('security');
        ctx.signer = null;
        ctx.consumer = { id: 'client-a', via: 'anonymous' };
      },
    ],
    authorization: [
      async (ctx) => {
        seen.push('authorization');
        ctx.policy = null;
      },
    ],
    operation: [
      async (ctx) => {
        seen.push('operation');
        ctx.operation = operation;
        ctx.args = {};
      },
    ],
    policy: [
      async () => {
        seen.push('policy-1');
      },
      async () => {
        seen.push('policy-2');
      },
    ],
    invoke: async () => {
      seen.push('invoke');
      return { connectionId: 'c-1' };
    },
    reply: [
      async (ctx) => {
        seen.push(`reply:${JSON.stringify(ctx.result)}`);
        ctx.response = `<r>${JSON.stringify(ctx.result)}</r>`;
      },
    ],
    completion: [],
  };
}

async function thrownBy(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Collects what the proxy logs while `fn` runs. */
async function logsOf(fn: () => Promise<void> | void): Promise<Record<string, unknown>[]> {
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
    await fn();
  } finally {
    log.remove(sink);
  }
  return entries;
}

const answerOf = (status = 200): Answer => ({ status, headers: {}, body: '', fault: null });

describe('pipeline/phases: the phase runner and the hook contract', () => {
  describe('runPhases', () => {
    it('declares the phases in their order, completion last', () => {
      expect(PHASES).to.deep.equal([
        'transport',
        'envelope',
        'security',
        'authorization',
        'operation',
        'policy',
        'invoke',
        'reply',
        'completion',
      ]);
    });

    it('runs the hooks in phase order and returns the replied call', async () => {
      const seen: string[] = [];
      const ctx = fakeCall();
      const done = await runPhases(workingPhases(seen), ctx);
      expect(seen).to.deep.equal([
        'transport',
        'envelope',
        'security',
        'authorization',
        'operation',
        'policy-1',
        'policy-2',
        'invoke',
        'reply:{"connectionId":"c-1"}',
      ]);
      expect(done).to.equal(ctx);
      expect(done.result).to.deep.equal({ connectionId: 'c-1' });
      expect(done.response).to.equal('<r>{"connectionId":"c-1"}</r>');
    });

    it('runs the hooks of one phase in their declared order', async () => {
      const seen: string[] = [];
      const p = workingPhases(seen);
      p.transport = [async () => void seen.push('t-1'), ...p.transport, async () => void seen.push('t-2')];
      await runPhases(p, fakeCall());
      expect(seen.slice(0, 3)).to.deep.equal(['t-1', 'transport', 't-2']);
    });

    const broken: [Exclude<keyof Phases, 'policy' | 'invoke' | 'completion'>, string][] = [
      ['transport', 'a request body'],
      ['envelope', 'a parsed envelope'],
      ['security', 'a consumer'],
      ['authorization', 'a policy decision'],
      ['operation', 'an operation and its arguments'],
      ['reply', 'a response envelope'],
    ];
    for (const [phase, what] of broken) {
      it(`the ${phase} phase not establishing its fields gives SSP_INTERNAL naming the phase`, async () => {
        const seen: string[] = [];
        const p = workingPhases(seen);
        p[phase] = [];
        const e = await thrownBy(runPhases(p, fakeCall()));
        expect(e).to.be.instanceOf(GatewayError);
        const g = e as GatewayError;
        expect(g.code).to.equal('SSP_INTERNAL');
        expect(g.message).to.equal(`the ${phase} phase ended without ${what}`);
        // Nothing after the broken phase ran.
        const order = ['transport', 'envelope', 'security', 'authorization', 'operation', 'invoke', 'reply'];
        const ran = order.filter((name) => seen.some((s) => s.split(':')[0] === name));
        expect(ran).to.deep.equal(order.slice(0, order.indexOf(phase)));
      });
    }

    it('checks every promised field: an envelope phase without the payload is broken', async () => {
      const p = workingPhases([]);
      p.envelope = [
        async (ctx) => {
          ctx.envelope = parseXml('<x/>');
          ctx.header = null;
        },
      ];
      const e = await thrownBy(runPhases(p, fakeCall()));
      expect(e).to.be.instanceOf(GatewayError).with.property('code', 'SSP_INTERNAL');
      expect((e as GatewayError).message).to.contain('the envelope phase');
    });

    it('a null policy is a decision; an unset one is not', async () => {
      const p = workingPhases([]);
      await runPhases(p, fakeCall());
      p.authorization = [async () => undefined];
      const e = await thrownBy(runPhases(p, fakeCall()));
      expect((e as GatewayError).message).to.equal('the authorization phase ended without a policy decision');
    });

    it('a policy hook returning { reply } skips the later policy hooks and invoke; reply sees that value', async () => {
      const seen: string[] = [];
      const p = workingPhases(seen);
      p.policy = [
        async () => void seen.push('policy-1'),
        async () => {
          seen.push('policy-2');
          return { reply: { connectionId: 'remembered' } };
        },
        async () => void seen.push('policy-3'),
      ];
      const done = await runPhases(p, fakeCall());
      expect(seen.slice(5)).to.deep.equal(['policy-1', 'policy-2', 'reply:{"connectionId":"remembered"}']);
      expect(done.result).to.deep.equal({ connectionId: 'remembered' });
    });

    it('a { reply } whose value is empty still stops the policy phase', async () => {
      const seen: string[] = [];
      const p = workingPhases(seen);
      p.policy = [async () => ({ reply: {} }), async () => void seen.push('policy-2')];
      const done = await runPhases(p, fakeCall());
      expect(seen).not.to.include('policy-2');
      expect(seen).not.to.include('invoke');
      expect(done.result).to.deep.equal({});
    });

    it('a hook that throws a GatewayError ends the call with it; later hooks do not run', async () => {
      const seen: string[] = [];
      const p = workingPhases(seen);
      const refused = new GatewayError('SSP_RATE_LIMITED', 'too many');
      p.policy = [
        async () => {
          throw refused;
        },
        async () => void seen.push('policy-2'),
      ];
      expect(await thrownBy(runPhases(p, fakeCall()))).to.equal(refused);
      expect(seen).not.to.include('policy-2');
      expect(seen).not.to.include('invoke');
      expect(seen.some((s) => s.startsWith('reply'))).to.equal(false);
    });
  });

  describe('asGatewayError', () => {
    it('keeps a GatewayError as it is', () => {
      const g = new GatewayError('SSP_GRID_BUSY', 'busy');
      expect(asGatewayError(g)).to.equal(g);
    });

    it('turns a plain Error into SSP_INTERNAL without its message, keeping it as the cause', () => {
      const boom = new Error('secret detail');
      const g = asGatewayError(boom);
      expect(g.code).to.equal('SSP_INTERNAL');
      expect(g.retryable).to.equal(false);
      expect(g.message).not.to.contain('secret detail');
      expect(g.cause).to.equal(boom);
    });

    it('turns a store outage into a retryable SSP_STORE_UNAVAILABLE', () => {
      const down = new StoreUnavailableError('redis down');
      const g = asGatewayError(down);
      expect(g.code).to.equal('SSP_STORE_UNAVAILABLE');
      expect(g.retryable).to.equal(true);
      expect(g.retryAfterSeconds).to.equal(1);
      expect(g.cause).to.equal(down);
    });

    it('turns anything else thrown into SSP_INTERNAL', () => {
      expect(asGatewayError('a string').code).to.equal('SSP_INTERNAL');
      expect(asGatewayError(undefined).code).to.equal('SSP_INTERNAL');
    });
  });

  describe('createPipeline().handle', () => {
    it('answers a success with 200, the content type of the SOAP version and x-correlation-id', async () => {
      const ctx = fakeCall();
      const answer = await createPipeline(workingPhases([])).handle(ctx);
      expect(answer).to.deep.equal({
        status: 200,
        headers: { 'content-type': 'text/xml; charset=utf-8', 'x-correlation-id': ctx.correlationId },
        body: '<r>{"connectionId":"c-1"}</r>',
        fault: null,
      });
    });

    for (const [thrown, code] of [
      [new Error('boom'), 'SSP_INTERNAL'],
      [new StoreUnavailableError('redis down'), 'SSP_STORE_UNAVAILABLE'],
      [new GatewayError('SSP_GRID_BUSY', 'busy'), 'SSP_GRID_BUSY'],
      ['not even an error', 'SSP_INTERNAL'],
    ] as const) {
      it(`never rejects: a hook throwing ${String(thrown)} is answered with ${code}`, async () => {
        const p = workingPhases([]);
        p.invoke = () => Promise.reject(thrown);
        const ctx = fakeCall();
        const answer = await createPipeline(p).handle(ctx);
        expect(answer.fault?.code).to.equal(code);
        expect(answer.status).to.equal(500);
        expect(answer.body).to.contain(`<sym:code>${code}</sym:code>`);
        expect(answer.body).not.to.contain('boom');
        expect(answer.headers['x-correlation-id']).to.equal(ctx.correlationId);
      });
    }

    const versions: [SoapVersion, string, string, number][] = [
      ['1.1', SOAP11_NS, 'text/xml; charset=utf-8', 500],
      ['1.2', SOAP12_NS, 'application/soap+xml; charset=utf-8', 403],
    ];
    for (const [version, ns, contentType, status] of versions) {
      it(`renders the fault in the request’s SOAP version (${version})`, async () => {
        const p = workingPhases([]);
        p.transport = [
          async (ctx) => {
            ctx.soapVersion = version;
            throw new GatewayError('SSP_NOT_OWNER', 'not yours');
          },
        ];
        const ctx = fakeCall();
        const answer = await createPipeline(p).handle(ctx);
        expect(answer.status).to.equal(status);
        expect(answer.headers['content-type']).to.equal(contentType);
        expect(answer.headers['x-correlation-id']).to.equal(ctx.correlationId);
        expect(parseXml(answer.body).uri).to.equal(ns);
        expect(answer.body).to.contain('<sym:code>SSP_NOT_OWNER</sym:code>');
        expect(answer.body).to.contain(`<sym:correlationId>${ctx.correlationId}</sym:correlationId>`);
      });
    }

    it('carries Retry-After for a retryable fault', async () => {
      const p = workingPhases([]);
      p.invoke = () =>
        Promise.reject(new GatewayError('SSP_RATE_LIMITED', 'slow down', { retryAfterSeconds: 7 }));
      const answer = await createPipeline(p).handle(fakeCall());
      expect(answer.headers['retry-after']).to.equal('7');
    });

    it('writes the fault with the given writer', async () => {
      const p = workingPhases([]);
      p.invoke = () => Promise.reject(new Error('boom'));
      const writes: SoapVersion[] = [];
      const writer = (version: SoapVersion, body: string): string => {
        writes.push(version);
        return `<signed>${body}</signed>`;
      };
      const answer = await createPipeline(p, writer).handle(fakeCall());
      expect(writes).to.deep.equal(['1.1']);
      expect(answer.body).to.match(/^<signed><soap:Fault>/);
    });

    it('a writer (signer) that throws while writing the fault still yields the fault, unsigned', async () => {
      const p = workingPhases([]);
      p.invoke = () => Promise.reject(new GatewayError('SSP_GRID_BUSY', 'busy'));
      const writer = (): string => {
        throw new Error('the signing key is gone');
      };
      const ctx = fakeCall();
      let answer: Answer | undefined;
      const logs = await logsOf(async () => {
        answer = await createPipeline(p, writer).handle(ctx);
      });
      expect(answer?.fault?.code).to.equal('SSP_GRID_BUSY');
      expect(answer?.status).to.equal(500);
      expect(answer?.headers['x-correlation-id']).to.equal(ctx.correlationId);
      const root = parseXml(answer?.body ?? '');
      expect(root.uri).to.equal(SOAP11_NS);
      expect(answer?.body).to.contain('<sym:code>SSP_GRID_BUSY</sym:code>');
      expect(logs.find((l) => l['message'] === 'signing a fault failed')).to.deep.include({
        level: 'error',
        correlationId: ctx.correlationId,
        error: 'the signing key is gone',
      });
    });
  });

  describe('createPipeline().complete', () => {
    it('runs ctx.deferred in reverse, then the completion hooks in order, each with the call and its answer', () => {
      const seen: string[] = [];
      const p = workingPhases([]);
      const ctx = fakeCall();
      const answer = answerOf(200);
      p.completion = [
        (c, a) => {
          expect(c).to.equal(ctx);
          expect(a).to.equal(answer);
          seen.push('completion-1');
        },
        () => void seen.push('completion-2'),
      ];
      ctx.deferred.push(
        () => void seen.push('deferred-1'),
        () => void seen.push('deferred-2'),
        () => void seen.push('deferred-3'),
      );
      createPipeline(p).complete(ctx, answer);
      expect(seen).to.deep.equal(['deferred-3', 'deferred-2', 'deferred-1', 'completion-1', 'completion-2']);
    });

    it('a throwing deferred job or completion hook is logged and does not stop the others', async () => {
      const seen: string[] = [];
      const p = workingPhases([]);
      p.completion = [
        () => {
          throw new Error('completion failed');
        },
        () => void seen.push('completion-2'),
      ];
      const ctx = fakeCall();
      ctx.deferred.push(
        () => void seen.push('deferred-1'),
        () => {
          throw new Error('deferred failed');
        },
      );
      const logs = await logsOf(() => createPipeline(p).complete(ctx, answerOf(500)));
      expect(seen).to.deep.equal(['deferred-1', 'completion-2']);
      const errors = logs.filter((l) => l['message'] === 'completing a call failed');
      expect(errors.map((l) => l['error'])).to.deep.equal(['deferred failed', 'completion failed']);
      for (const l of errors) expect(l['correlationId']).to.equal(ctx.correlationId);
    });

    it('handle and complete together: a failed call still completes', async () => {
      const p = workingPhases([]);
      const completed: (string | undefined)[] = [];
      p.operation = [
        async () => {
          throw new GatewayError('SSP_UNKNOWN_OPERATION', 'no such operation');
        },
      ];
      p.completion = [(_c: CallContext, a) => void completed.push(a.fault?.code)];
      const pipeline = createPipeline(p);
      const ctx = fakeCall();
      const answer = await pipeline.handle(ctx);
      pipeline.complete(ctx, answer);
      expect(completed).to.deep.equal(['SSP_UNKNOWN_OPERATION']);
    });
  });
});
