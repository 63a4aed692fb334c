import { expect } from 'chai';
import { GatewayError } from '../errors/catalogue';
import { StoreUnavailableError } from '../store/store';
import { SOAP12 } from '../../test/helpers/soap-http';
import { op, runRequest, startHarness, type Harness } from '../../test/helpers/in-process';
import type { Phases } from './phases';

describe('pipeline: the whole request path in-process (memory store, reference grid)', () => {
  let h: Harness;
  const seen: string[] = [];
  before(async () => {
    h = await startHarness({
      // A probe at the end of every phase records the order the phases ran in.
      phases: (p): Phases => {
        const mark = (name: string) => async (): Promise<void> => {
          seen.push(name);
        };
        return {
          ...p,
          transport: [...p.transport, mark('transport')],
          envelope: [...p.envelope, mark('envelope')],
          security: [...p.security, mark('security')],
          authorization: [...p.authorization, mark('authorization')],
          operation: [...p.operation, mark('operation')],
          policy: [...p.policy, mark('policy')],
          reply: [mark('reply'), ...p.reply],
          completion: [...p.completion, () => void seen.push('completion')],
        };
      },
    });
  });
  after(() => h?.close());

  it('runs connect → createSession → sendTaskInput → fetchTaskOutput against the grid', async () => {
    const { sessionId } = await h.openSession();
    const sent = await h.post(
      op(
        'sendTaskInput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:text>hello</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
      ),
    );
    expect(sent.code).to.equal(undefined);
    const taskId = sent.pick('taskId');
    expect(taskId).to.be.a('string');
    const fetched = await h.post(
      op(
        'fetchTaskOutput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>1</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>`,
      ),
    );
    expect(fetched.answer.status).to.equal(200);
    expect(fetched.pick('taskId')).to.equal(taskId);
    expect(fetched.pick('text')).to.equal('hello');
    expect(fetched.ctx.gridMs).to.be.greaterThan(0);
  });

  it('runs the phases in their declared order, completion last', async () => {
    seen.length = 0;
    await h.openSession();
    expect(seen.slice(0, 8)).to.deep.equal([
      'transport',
      'envelope',
      'security',
      'authorization',
      'operation',
      'policy',
      'reply',
      'completion',
    ]);
  });

  it('answers every refusal with a coded fault in the request’s SOAP version', async () => {
    const cases: [Parameters<typeof runRequest>[1], string, number][] = [
      [{ method: 'GET' }, 'SSP_METHOD_NOT_ALLOWED', 405],
      [{ headers: { 'content-type': 'application/json' }, body: '{}' }, 'SSP_UNSUPPORTED_MEDIA_TYPE', 415],
      [{ path: '/elsewhere', body: '<x/>' }, 'SSP_UNKNOWN_PATH', 404],
      [{ body: '<a><b></a>' }, 'SSP_MALFORMED_XML', 500],
      [{ body: '<!DOCTYPE x><x/>' }, 'SSP_FORBIDDEN_XML', 500],
      [{ body: '<x xmlns="urn:evil"/>' }, 'SSP_NOT_SOAP', 500],
    ];
    for (const [req, code, status] of cases) {
      const r = await runRequest(h.pipeline, req);
      expect(r.code, code).to.equal(code);
      expect(r.answer.status, code).to.equal(status);
      expect(r.answer.body, code).to.contain(`<sym:code>${code}</sym:code>`);
      expect(r.answer.headers['x-correlation-id']).to.equal(r.ctx.correlationId);
    }
    const v12 = await runRequest(h.pipeline, {
      headers: { 'content-type': 'application/soap+xml; charset=utf-8' },
      body: `<s:Envelope xmlns:s="${SOAP12}"><s:Body>${op('nothingLikeThis', '')}</s:Body></s:Envelope>`,
    });
    expect(v12.code).to.equal('SSP_UNKNOWN_OPERATION');
    expect(v12.answer.status).to.equal(400);
    expect(v12.answer.body).to.contain('ssp:SSP_UNKNOWN_OPERATION');
  });

  it('gives grid refusals their catalogue codes', async () => {
    const unknown = await h.post(op('getSessionStatus', '<sym:sessionId>no-such-session</sym:sessionId>'));
    expect(unknown.code).to.equal('SSP_UNKNOWN_SESSION');
    const badApp = await h.post(
      op(
        'connect',
        '<sym:applicationName>nope</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
    );
    expect(badApp.code).to.equal('SSP_UNKNOWN_APPLICATION');
  });

  it('turns an unexpected throw into SSP_INTERNAL and a store outage into a retryable fault', async () => {
    for (const [thrown, code] of [
      [new Error('boom'), 'SSP_INTERNAL'],
      [new StoreUnavailableError('redis down'), 'SSP_STORE_UNAVAILABLE'],
      [new GatewayError('SSP_GRID_BUSY', 'busy'), 'SSP_GRID_BUSY'],
    ] as const) {
      const failing = await startHarnessWithInvoke(() => Promise.reject(thrown));
      try {
        const r = await failing.post(op('getSessionStatus', '<sym:sessionId>s</sym:sessionId>'));
        expect(r.code).to.equal(code);
        expect(r.answer.body).not.to.contain('boom');
      } finally {
        await failing.close();
      }
    }
  });
});

function startHarnessWithInvoke(invoke: Phases['invoke']): Promise<Harness> {
  return startHarness({ phases: (p) => ({ ...p, invoke }) });
}
