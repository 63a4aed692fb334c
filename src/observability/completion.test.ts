import { expect } from 'chai';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { verifyAuditFile } from '../commands/audit';
import { CATALOGUE, GatewayError, type ErrorCodeName } from '../errors/catalogue';
import { log } from '../log';
import type { CallContext } from '../pipeline/context';
import type { Answer } from '../pipeline/phases';
import {
  fakeCall,
  op,
  runRequest,
  startHarness,
  type CallResult,
  type Harness,
  CONSUMER_HEADER,
  consumersFromHeader,
} from '../../test/helpers/in-process';
import { AuditLog } from './audit-log';
import { auditCalls, logFaults, recordMetrics } from './completion';
import { ProxyMetrics } from './metrics';

type Line = Record<string, unknown>;

/** A histogram's values carry the name of their series (_bucket, _sum, _count). */
const metricNameOf = (v: object): unknown => ('metricName' in v ? v.metricName : undefined);

const PASSWORD = 'pw-secret-123';
const connectBody = (password = 'pw'): string =>
  op(
    'connect',
    `<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>${password}</sym:password>`,
  );
const sid = (id: string): string => `<sym:sessionId>${id}</sym:sessionId>`;

function answerOf(fault: GatewayError | null): Answer {
  return { status: fault ? fault.status : 200, headers: {}, body: '<ok/>', fault };
}

/** Collects the operational log's entries while `fn` runs; the console stays quiet meanwhile. */
async function captureLog(fn: () => void | Promise<void>): Promise<Record<string, unknown>[]> {
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
  const consoles = log.transports.filter((t) => t instanceof winston.transports.Console);
  const silenced = consoles.map((t) => t.silent);
  const logSilent = log.silent;
  consoles.forEach((t) => (t.silent = true));
  log.silent = false;
  log.add(sink);
  try {
    await fn();
  } finally {
    log.remove(sink);
    log.silent = logSilent;
    consoles.forEach((t, i) => (t.silent = silenced[i]));
  }
  return entries;
}

describe('observability/completion: metrics, audit and fault logs for every call', () => {
  let h: Harness;
  let dir: string;
  let auditFile: string;
  let audit: AuditLog;
  const savedSilent = log.silent;

  before(async () => {
    // Opening and closing the trail is reported on the operational log; keep the output clean.
    log.silent = true;
    dir = await mkdtemp(join(tmpdir(), 'ssp-completion-'));
    auditFile = join(dir, 'audit.jsonl');
    audit = await AuditLog.open(auditFile);
    h = await startHarness({ audit, phases: consumersFromHeader });
  });
  after(async () => {
    await h?.close();
    await audit?.close();
    log.silent = savedSilent;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function records(): Promise<Line[]> {
    await audit.flush();
    const text = await readFile(auditFile, 'utf8');
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Line);
  }

  async function recordOf(r: CallResult): Promise<Line> {
    const found = (await records()).filter((l) => l['correlationId'] === r.ctx.correlationId);
    expect(found, `audit records of ${r.ctx.correlationId}`).to.have.length(1);
    return found[0]!;
  }

  describe('recordMetrics', () => {
    async function requests(operation: string, outcome: string): Promise<number> {
      const all = await h.metrics.registry.getMetricsAsJSON();
      const m = all.find((x) => x.name === 'ssp_requests_total');
      const v = m?.values.find((x) => x.labels['operation'] === operation && x.labels['outcome'] === outcome);
      return v?.value ?? 0;
    }

    async function histogramCount(name: string, operation: string): Promise<number> {
      const all = await h.metrics.registry.getMetricsAsJSON();
      const m = all.find((x) => x.name === name);
      const v = m?.values.find(
        (x) => metricNameOf(x) === `${name}_count` && x.labels['operation'] === operation,
      );
      return v?.value ?? 0;
    }

    it('counts a success in ssp_requests_total under its operation with outcome ok', async () => {
      const before = await requests('connect', 'ok');
      const r = await h.post(connectBody());
      expect(r.code).to.equal(undefined);
      expect(await requests('connect', 'ok')).to.equal(before + 1);
    });

    it('counts a fault under its operation with the catalogue code as outcome', async () => {
      const okBefore = await requests('getSessionStatus', 'ok');
      const before = await requests('getSessionStatus', 'SSP_UNKNOWN_SESSION');
      const r = await h.post(op('getSessionStatus', sid('no-such-session')));
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
      expect(await requests('getSessionStatus', 'SSP_UNKNOWN_SESSION')).to.equal(before + 1);
      expect(await requests('getSessionStatus', 'ok')).to.equal(okBefore);
    });

    it('counts a call refused before its operation is known under operation "unknown"', async () => {
      const before = await requests('unknown', 'SSP_MALFORMED_XML');
      const r = await runRequest(h.pipeline, { body: '<a><b></a>' });
      expect(r.code).to.equal('SSP_MALFORMED_XML');
      expect(await requests('unknown', 'SSP_MALFORMED_XML')).to.equal(before + 1);
    });

    it('times every call in the proxy, and only calls that waited for the grid in the grid histogram', async () => {
      const proxyBefore = await histogramCount('ssp_proxy_duration_seconds', 'closeConnection');
      const gridBefore = await histogramCount('ssp_grid_duration_seconds', 'closeConnection');
      // Refused from the store alone: no grid time.
      const refused = await h.post(
        op('closeConnection', '<sym:connectionId>no-such-connection</sym:connectionId>'),
      );
      expect(refused.code).to.equal('SSP_UNKNOWN_CONNECTION');
      expect(await histogramCount('ssp_proxy_duration_seconds', 'closeConnection')).to.equal(proxyBefore + 1);
      expect(await histogramCount('ssp_grid_duration_seconds', 'closeConnection')).to.equal(gridBefore);

      const connected = await h.post(connectBody());
      const closed = await h.post(
        op('closeConnection', `<sym:connectionId>${connected.pick('connectionId')!}</sym:connectionId>`),
      );
      expect(closed.code).to.equal(undefined);
      expect(closed.ctx.gridMs).to.be.greaterThan(0);
      expect(await histogramCount('ssp_proxy_duration_seconds', 'closeConnection')).to.equal(proxyBefore + 2);
      expect(await histogramCount('ssp_grid_duration_seconds', 'closeConnection')).to.equal(gridBefore + 1);
    });

    it('never puts a consumer, connection or session id into a label', async () => {
      await h.post(connectBody(), { headers: { [CONSUMER_HEADER]: 'client-label-probe' } });
      const text = await h.metrics.registry.metrics();
      expect(text).not.to.contain('client-label-probe');
      expect(text).not.to.contain('no-such-session');
    });

    it('used on its own, counts the call it is given', async () => {
      const metrics = new ProxyMetrics(() => []);
      const hook = recordMetrics(metrics);
      hook(fakeCall(), answerOf(null));
      hook(fakeCall(), answerOf(new GatewayError('SSP_GRID_BUSY', 'busy')));
      const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'ssp_requests_total');
      const values = (m?.values ?? []).map((v) => ({ labels: v.labels, value: v.value }));
      expect(values).to.have.deep.members([
        { labels: { operation: 'unknown', outcome: 'ok' }, value: 1 },
        { labels: { operation: 'unknown', outcome: 'SSP_GRID_BUSY' }, value: 1 },
      ]);
    });
  });

  describe('auditCalls', () => {
    it('writes one record per call with who, what, which ids and how it ended', async () => {
      const headers = { [CONSUMER_HEADER]: 'client-a' };
      const c = await h.post(connectBody(), { headers });
      const connectionId = c.pick('connectionId')!;
      const s = await h.post(op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`), {
        headers,
      });
      const sessionId = s.pick('sessionId')!;
      const t = await h.post(
        op(
          'sendTaskInputBatch',
          sid(sessionId) +
            '<sym:taskSubmissionAttributes><sym:taskInput><sym:text>x</sym:text></sym:taskInput></sym:taskSubmissionAttributes>'.repeat(
              2,
            ),
        ),
        { headers },
      );
      expect(t.code, t.answer.body).to.equal(undefined);

      const connectRec = await recordOf(c);
      expect(connectRec).to.include({
        consumerId: 'client-a',
        operation: 'connect',
        connectionId,
        outcome: 'ok',
        clientIp: '127.0.0.1',
        bytesIn: c.ctx.raw!.length,
        bytesOut: Buffer.byteLength(c.answer.body),
      });
      expect(connectRec).not.to.have.property('faultCode');
      expect(connectRec['gridMs']).to.be.a('number').greaterThan(0);
      expect(connectRec['proxyMs']).to.be.a('number').at.least(0);

      expect(await recordOf(s)).to.include({
        operation: 'createSession',
        connectionId,
        sessionId,
        outcome: 'ok',
      });

      const sendRec = await recordOf(t);
      expect(sendRec).to.include({ operation: 'sendTaskInputBatch', sessionId, taskCount: 2, outcome: 'ok' });
      expect(sendRec['taskIds']).to.deep.equal(
        [...t.answer.body.matchAll(/<sym:taskId>([^<]+)</g)].map((m) => m[1]),
      );
    });

    it('audits a fault with its catalogue code', async () => {
      const r = await h.post(op('getSessionStatus', sid('no-such-session')), {
        headers: { [CONSUMER_HEADER]: 'client-b' },
      });
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
      expect(await recordOf(r)).to.include({
        consumerId: 'client-b',
        operation: 'getSessionStatus',
        sessionId: 'no-such-session',
        outcome: 'fault',
        faultCode: 'SSP_UNKNOWN_SESSION',
      });
    });

    it('audits a call refused before anyone or anything is known', async () => {
      const r = await runRequest(h.pipeline, { body: '<a><b></a>' });
      expect(r.code).to.equal('SSP_MALFORMED_XML');
      const rec = await recordOf(r);
      expect(rec).to.include({ outcome: 'fault', faultCode: 'SSP_MALFORMED_XML' });
      expect(rec).not.to.have.property('operation');
      expect(rec).not.to.have.property('consumerId');
    });

    it('never writes a password or payload bytes, in or out', async () => {
      const c = await h.post(connectBody(PASSWORD));
      expect(c.code).to.equal(undefined);
      const s = await h.post(
        op('createSession', `<sym:connectionId>${c.pick('connectionId')!}</sym:connectionId>`),
      );
      const sessionId = s.pick('sessionId')!;
      const binary = Buffer.from('binary-payload-secret-789');
      const sent = await h.post(
        op(
          'sendTaskInputBatch',
          sid(sessionId) +
            '<sym:taskSubmissionAttributes><sym:taskInput><sym:text>text-payload-secret-456</sym:text></sym:taskInput></sym:taskSubmissionAttributes>' +
            '<sym:taskSubmissionAttributes><sym:taskInput><sym:xml><m:secret xmlns:m="urn:example:m">xml-payload-secret-321</m:secret></sym:xml></sym:taskInput></sym:taskSubmissionAttributes>' +
            `<sym:taskSubmissionAttributes><sym:taskInput><sym:binary>${binary.toString('base64')}</sym:binary></sym:taskInput></sym:taskSubmissionAttributes>`,
        ),
      );
      expect(sent.code, sent.answer.body).to.equal(undefined);
      let outputs = 0;
      const deadline = Date.now() + 5000;
      while (outputs < 3 && Date.now() < deadline) {
        const f = await h.post(
          op(
            'fetchTaskOutput',
            sid(sessionId) + '<sym:countMax>3</sym:countMax><sym:timeoutMillis>1000</sym:timeoutMillis>',
          ),
        );
        outputs += [...f.answer.body.matchAll(/<sym:successful>/g)].length;
      }
      expect(outputs).to.equal(3);

      await audit.flush();
      const text = await readFile(auditFile, 'utf8');
      expect((await recordOf(c))['operation']).to.equal('connect');
      for (const secret of [
        PASSWORD,
        'text-payload-secret-456',
        'xml-payload-secret-321',
        'urn:example:m',
        binary.toString('base64'),
        'binary-payload-secret-789',
      ]) {
        expect(text, secret).not.to.contain(secret);
      }
      expect(text).not.to.match(/"password"|"taskInput"|"taskOutput"/);
    });

    it('keeps the trail a valid hash chain', async () => {
      await audit.flush();
      const v = await verifyAuditFile(auditFile);
      expect(v.ok).to.equal(true);
      expect(v).to.include({ records: (await records()).length });
    });

    it('does not throw once its trail is closed: the record is dropped', async () => {
      const other = await AuditLog.open(join(dir, 'closed.jsonl'));
      await other.close();
      const hook = auditCalls(other);
      expect(() => hook(fakeCall(), answerOf(null))).not.to.throw();
    });
  });

  describe('logFaults', () => {
    function callWithPayload(): CallContext {
      const ctx = fakeCall({ body: '<secret>payload-bytes-654</secret>' });
      ctx.raw = Buffer.from('<secret>payload-bytes-654</secret>');
      return ctx;
    }

    it('does not throw, and logs nothing, for a success', async () => {
      const entries = await captureLog(() => {
        expect(() => logFaults()(callWithPayload(), answerOf(null))).not.to.throw();
      });
      expect(entries).to.deep.equal([]);
    });

    it('does not throw for a fault of any catalogue code', async () => {
      const codes = Object.keys(CATALOGUE) as ErrorCodeName[];
      await captureLog(() => {
        for (const code of codes) {
          const fault = new GatewayError(code, `refused with ${code}`);
          expect(() => logFaults()(callWithPayload(), answerOf(fault)), code).not.to.throw();
          expect(() => logFaults()(fakeCall(), answerOf(fault)), code).not.to.throw();
        }
      });
      expect(codes.length).to.be.greaterThan(10);
    });

    it('logs an authentication refusal as a warning with its code and reason, never the payload', async () => {
      const ctx = callWithPayload();
      const entries = await captureLog(() =>
        logFaults()(ctx, answerOf(new GatewayError('SSP_WSS_SIGNATURE', 'the digest does not match'))),
      );
      expect(entries).to.have.length(1);
      expect(entries[0]).to.include({
        level: 'warn',
        message: 'request refused',
        correlationId: ctx.correlationId,
        code: 'SSP_WSS_SIGNATURE',
        reason: 'the digest does not match',
        remote: '127.0.0.1',
      });
      expect(JSON.stringify(entries)).not.to.contain('payload-bytes-654');
    });

    it('logs an internal failure as an error with the cause’s stack', async () => {
      const ctx = callWithPayload();
      const cause = new Error('the disk caught fire');
      const entries = await captureLog(() => {
        logFaults()(ctx, answerOf(new GatewayError('SSP_INTERNAL', 'internal error', { cause })));
        logFaults()(
          ctx,
          answerOf(new GatewayError('SSP_INTERNAL', 'internal error', { cause: 'a plain string' })),
        );
      });
      expect(entries).to.have.length(2);
      expect(entries[0]).to.include({
        level: 'error',
        message: 'request failed',
        correlationId: ctx.correlationId,
      });
      expect(entries[0]!['error'])
        .to.be.a('string')
        .that.contains('the disk caught fire')
        .and.contains('at ');
      expect(entries[1]!['error']).to.equal('a plain string');
      expect(JSON.stringify(entries)).not.to.contain('payload-bytes-654');
    });

    it('does not log an ordinary refusal such as an unknown session', async () => {
      const entries = await captureLog(() =>
        logFaults()(callWithPayload(), answerOf(new GatewayError('SSP_UNKNOWN_SESSION', 'unknown'))),
      );
      expect(entries).to.deep.equal([]);
    });

    it('runs in the pipeline for every call without disturbing the answer', async () => {
      let r: CallResult | undefined;
      const entries = await captureLog(async () => {
        r = await h.post(op('closeConnection', '<sym:connectionId>no-such-connection</sym:connectionId>'));
      });
      expect(r?.code).to.equal('SSP_UNKNOWN_CONNECTION');
      expect(entries.filter((e) => e['level'] === 'error')).to.deep.equal([]);
    });
  });
});
