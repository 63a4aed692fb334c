/**
 * Fuzz target 4: the whole pipeline in process (test/helpers/in-process.ts: every stage, the
 * memory store and the reference grid over loopback TCP), fed requests built from the contract's
 * operations with real and made-up ids, in SOAP 1.1 and 1.2, unsigned (security off) or signed
 * (security on), then mangled at the HTTP level (method, path, content type, SOAPAction) and at
 * byte level.
 *
 * Property: every answer is a success (HTTP 200, no fault) or a SOAP fault whose code is in the
 * catalogue and is not SSP_INTERNAL (the uncoded 500 an unexpected exception becomes), with the
 * catalogue's status and the code in the fault detail; the pipeline never rejects, never leaves
 * an unhandled rejection behind, and answers within a bound (10 s, plus the wait a valid
 * fetchTaskOutput may ask for).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { CATALOGUE, type ErrorCodeName } from '../../src/errors/catalogue';
import { log, setLogLevel } from '../../src/log';
import { TrustStore } from '../../src/security/truststore';
import { WssVerifier } from '../../src/security/verifier';
import { MemoryStore } from '../../src/store/memory-store';
import { runRequest, startHarness, type Harness } from '../helpers/in-process';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { faultCodeOf, signedEnvelope } from '../helpers/wss-client';
import { applyMutations, mutationArb, SOAP11, SOAP12, SYM, type Mutation } from './arbitraries';
import { fuzz, mochaTimeoutMs, showBytes } from './runner';

interface Ids {
  connectionId: string;
  sessionId: string;
}

type Gen = (ids: Ids) => string;

const text = fc.constantFrom(
  '',
  'x',
  'hello',
  'fail:boom',
  'a &amp; b',
  '  ',
  'é😀',
  '-1',
  '99999999999999999999',
  'true',
);
const id = fc.constantFrom<'real' | string>(
  'real',
  'real',
  'real',
  '',
  'nope',
  '0',
  'x'.repeat(300),
  's-<1>'.replace(/</g, '&lt;'),
);
const pick = (v: string, real: string): string => (v === 'real' ? real : v);
const el = (name: string, inner: string): string => `<sym:${name}>${inner}</sym:${name}>`;
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { freq: 3 });

/** Bodies of the contract's operations, sometimes with a field missing, extra or out of range. */
const bodyArb: fc.Arbitrary<{ op: string; inner: Gen; wait: number }> = fc.oneof(
  fc.record({ app: fc.constantFrom('echo', 'cpu', 'nope', ''), user: text, pw: text }).map((r) => ({
    op: 'connect',
    wait: 0,
    inner: () => el('applicationName', r.app) + el('username', r.user || 'u') + el('password', r.pw),
  })),
  fc.record({ c: id, name: opt(text), prio: opt(fc.integer({ min: -5, max: 200 })) }).map((r) => ({
    op: 'createSession',
    wait: 0,
    inner: (ids: Ids) =>
      el('connectionId', pick(r.c, ids.connectionId)) +
      (r.name !== null || r.prio !== null
        ? el(
            'sessionCreationAttributes',
            (r.name !== null ? el('name', r.name) : '') +
              (r.prio !== null ? el('priority', String(r.prio)) : ''),
          )
        : ''),
  })),
  fc.record({ s: id }).map((r) => ({
    op: 'getSessionStatus',
    wait: 0,
    inner: (ids: Ids) => el('sessionId', pick(r.s, ids.sessionId)),
  })),
  fc.record({ s: id, tag: opt(text), input: text, key: opt(fc.constantFrom('k1', 'k2', '')) }).map((r) => ({
    op: 'sendTaskInput',
    wait: 0,
    inner: (ids: Ids) =>
      el('sessionId', pick(r.s, ids.sessionId)) +
      el(
        'taskSubmissionAttributes',
        (r.tag !== null ? el('tag', r.tag) : '') + el('taskInput', el('text', r.input)),
      ) +
      (r.key !== null ? el('clientKey', r.key) : ''),
  })),
  fc.record({ s: id, n: fc.integer({ min: 0, max: 4 }), key: opt(fc.constantFrom('k1', 'k3')) }).map((r) => ({
    op: 'sendTaskInputBatch',
    wait: 0,
    inner: (ids: Ids) =>
      el('sessionId', pick(r.s, ids.sessionId)) +
      el('taskSubmissionAttributes', el('taskInput', el('binary', 'AAE='))).repeat(r.n) +
      (r.key !== null ? el('clientKey', r.key) : ''),
  })),
  fc
    .record({
      s: id,
      count: fc.integer({ min: -1, max: 5 }),
      wait: opt(fc.integer({ min: 0, max: 20 })),
      lease: opt(fc.integer({ min: 0, max: 2000 })),
      ack: opt(fc.constantFrom('t', '')),
    })
    .map((r) => ({
      op: 'fetchTaskOutput',
      wait: r.wait ?? 0,
      inner: (ids: Ids) =>
        el('sessionId', pick(r.s, ids.sessionId)) +
        el('countMax', String(r.count)) +
        (r.wait !== null ? el('timeoutMillis', String(r.wait)) : '') +
        (r.lease !== null ? el('leaseMillis', String(r.lease)) : '') +
        (r.ack !== null ? el('acknowledge', r.ack) : ''),
    })),
  fc.record({ s: id, token: fc.constantFrom('t', '', 'x'.repeat(80)) }).map((r) => ({
    op: 'acknowledgeTaskOutput',
    wait: 0,
    inner: (ids: Ids) => el('sessionId', pick(r.s, ids.sessionId)) + el('deliveryToken', r.token),
  })),
  // Closing only made-up ids keeps the shared session open for the other calls.
  fc
    .record({ s: fc.constantFrom('nope', ''), flags: opt(fc.constantFrom('DestroyOnClose', 'Detach', 'x')) })
    .map((r) => ({
      op: 'closeSession',
      wait: 0,
      inner: () => el('sessionId', r.s) + (r.flags !== null ? el('closeFlags', r.flags) : ''),
    })),
  fc.constantFrom('closeConnection', 'openSession', 'noSuchOperation').map((op) => ({
    op,
    wait: 0,
    inner: (ids: Ids) =>
      el('connectionId', 'nope') + (op === 'openSession' ? el('sessionId', ids.sessionId) : ''),
  })),
);

interface Call {
  signed: boolean;
  version: '1.1' | '1.2';
  body: { op: string; inner: Gen; wait: number };
  method: string;
  path: string;
  contentType: 'match' | 'other' | 'garbage' | 'none';
  action: 'none' | 'match' | 'other';
  mutations: Mutation[];
}

const callArb: fc.Arbitrary<Call> = fc.record({
  signed: fc.boolean(),
  version: fc.constantFrom('1.1' as const, '1.2' as const),
  body: bodyArb,
  method: fc.oneof({ weight: 20, arbitrary: fc.constant('POST') }, fc.constantFrom('GET', 'PUT')),
  path: fc.oneof(
    { weight: 20, arbitrary: fc.constant('/soap') },
    fc.constantFrom('/soap?wsdl', '/other', '/soap/'),
  ),
  contentType: fc.oneof(
    { weight: 20, arbitrary: fc.constant('match' as const) },
    fc.constantFrom('other' as const, 'garbage' as const, 'none' as const),
  ),
  action: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('none' as const, 'match' as const) },
    fc.constant('other' as const),
  ),
  mutations: fc.oneof(
    { weight: 3, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: 2, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) },
  ),
});

describe('fuzz: the whole pipeline answers every request with a success or a coded fault', function () {
  this.timeout(mochaTimeoutMs());
  let pki: TestPki;
  let open: Harness;
  let secured: Harness;
  let openIds: Ids;
  let securedIds: Ids;
  let previousLevel = 'info';
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => {
    unhandled.push(e);
  };

  before(async () => {
    previousLevel = log.level;
    setLogLevel('error');
    process.on('unhandledRejection', onUnhandled);
    pki = await makeTestPki();
    const trust = await TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [pki.crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
    const store = new MemoryStore();
    const verifier = new WssVerifier(
      trust,
      { ttlSeconds: 300, skewSeconds: 60, allowSha1: false, allowMd5: false },
      store,
    );
    open = await startHarness();
    secured = await startHarness({ verifier, store });
    openIds = await open.openSession();
    // The secured harness needs a signed connect and createSession.
    const signedCall = async (inner: string): Promise<string> => {
      const r = await runRequest(secured.pipeline, { body: signedEnvelope(inner, pki.client) });
      return r.answer.body;
    };
    const conn = /<(?:\w+:)?connectionId>([^<]+)</.exec(
      await signedCall(
        `<sym:connect xmlns:sym="${SYM}"><sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password></sym:connect>`,
      ),
    )?.[1];
    const sess = /<(?:\w+:)?sessionId>([^<]+)</.exec(
      await signedCall(
        `<sym:createSession xmlns:sym="${SYM}"><sym:connectionId>${conn}</sym:connectionId></sym:createSession>`,
      ),
    )?.[1];
    if (!conn || !sess) throw new Error('could not open a signed session');
    securedIds = { connectionId: conn, sessionId: sess };
  });

  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    setLogLevel(previousLevel);
    await open?.close();
    await secured?.close();
  });

  it('never crashes, hangs or answers an uncoded 500', async () => {
    const stats = { ok: 0, faults: {} as Record<string, number> };
    const codes = new Set(Object.keys(CATALOGUE));
    await fuzz(
      callArb,
      async (call: Call) => {
        const h = call.signed ? secured : open;
        const ids = call.signed ? securedIds : openIds;
        const payload = `<sym:${call.body.op} xmlns:sym="${SYM}">${call.body.inner(ids)}</sym:${call.body.op}>`;
        const soapNs = call.version === '1.1' ? SOAP11 : SOAP12;
        const xml = call.signed
          ? signedEnvelope(payload, { ...pki.client, soapVersion: call.version })
          : `<?xml version="1.0"?><s:Envelope xmlns:s="${soapNs}"><s:Body>${payload}</s:Body></s:Envelope>`;
        const body = applyMutations(Buffer.from(xml, 'utf8'), call.mutations);
        const matchType =
          call.version === '1.1' ? 'text/xml; charset=utf-8' : 'application/soap+xml; charset=utf-8';
        const otherType =
          call.version === '1.1' ? 'application/soap+xml; charset=utf-8' : 'text/xml; charset=utf-8';
        const headers: Record<string, string> = {};
        if (call.contentType !== 'none') {
          headers['content-type'] =
            call.contentType === 'match'
              ? matchType
              : call.contentType === 'other'
                ? otherType
                : 'text/plain; charset=latin1; x';
        }
        if (call.action !== 'none') {
          headers['soapaction'] = `"${SYM}/${call.action === 'match' ? call.body.op : 'getSessionStatus'}"`;
        }
        const wait = Number(/timeoutMillis>\s*(\d{1,6})\s*</.exec(body.toString('latin1'))?.[1] ?? 0);
        const boundMs = 10_000 + Math.min(60_000, wait);
        let timer: NodeJS.Timeout | undefined;
        const result = await Promise.race([
          runRequest(h.pipeline, { method: call.method, path: call.path, headers, body }),
          new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), boundMs))),
        ]).finally(() => clearTimeout(timer));
        const where = `request ${showBytes(body)}`;
        if (result === 'timeout') throw new Error(`no answer within ${boundMs} ms to ${where}`);
        if (unhandled.length) throw new Error(`unhandled rejection: ${String(unhandled.splice(0)[0])}`);
        const { answer } = result;
        if (!answer.fault) {
          expect(answer.status, `a success must be HTTP 200: ${answer.body.slice(0, 300)}`).to.equal(200);
          stats.ok++;
          return;
        }
        const code = answer.fault.code as ErrorCodeName;
        stats.faults[code] = (stats.faults[code] ?? 0) + 1;
        expect(codes.has(code), `fault code ${code} is not in the catalogue`).to.equal(true);
        expect(
          code,
          `uncoded failure: ${answer.fault.message} ${String((answer.fault.cause as Error | undefined)?.stack ?? '')}`,
        ).to.not.equal('SSP_INTERNAL');
        expect(answer.status, `status of ${code}`).to.be.oneOf([CATALOGUE[code].status, 500]);
        const inBody = faultCodeOf(answer.body);
        if (inBody) expect(inBody.code, 'the fault detail carries the code').to.equal(code);
        else expect(answer.body, 'a fault without a detail still names its code').to.contain(code);
      },
      {
        name: 'pipeline in process',
        seed: 0x919e,
        chunk: 25,
        maxExecutionMs: 75_000,
        stats: () => `successes ${stats.ok}, faults ${JSON.stringify(stats.faults)}`,
      },
    );
    expect(stats.ok, 'some requests must succeed, or the fuzzer never reaches the grid').to.be.greaterThan(0);
  });
});
