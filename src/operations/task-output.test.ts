import { expect } from 'chai';
import {
  op,
  runRequest,
  startHarness,
  testContract,
  type CallResult,
  type Harness,
  CONSUMER_HEADER,
  consumersFromHeader,
} from '../../test/helpers/in-process';
import { eventually } from '../../test/grid/helpers';
import { SOAP11 } from '../../test/helpers/soap-http';
import { isDecodedFields, type Decoded } from '../soap/schema';
import { childElements, parseXml } from '../soap/xml';

interface Output {
  taskId: string;
  tag: string | undefined;
  successful: boolean;
  exception: string | undefined;
  text?: string;
  xml?: string;
  binary?: Buffer;
}

interface FetchResult {
  outputs: Output[];
  deliveryToken: string | undefined;
}

const optionalString = (v: Decoded | undefined): string | undefined =>
  typeof v === 'string' ? v : undefined;

/** Decodes a fetchTaskOutputResponse with the WSDL's own codec. */
function fetched(r: CallResult): FetchResult {
  expect(r.code, r.answer.body).to.equal(undefined);
  const env = parseXml(r.answer.body);
  const body = childElements(env).find((e) => e.local === 'Body');
  const el = body ? childElements(body)[0] : undefined;
  if (!el) throw new Error(`no response element in ${r.answer.body}`);
  const v = testContract().byName.get('fetchTaskOutput')!.response.decode(el);
  if (!isDecodedFields(v)) throw new Error('fetchTaskOutputResponse decoded to a simple value');
  const list = v['taskOutput'];
  const outputs = (Array.isArray(list) ? list : []).map((o): Output => {
    if (!isDecodedFields(o)) throw new Error('a taskOutput decoded to a simple value');
    const out: Output = {
      taskId: String(o['taskId']),
      tag: optionalString(o['tag']),
      successful: o['successful'] === true,
      exception: optionalString(o['exception']),
    };
    const p = o['taskOutput'];
    if (p !== undefined && isDecodedFields(p)) {
      const text = optionalString(p['text']);
      const xml = optionalString(p['xml']);
      const bin = p['binary'];
      if (text !== undefined) out.text = text;
      if (xml !== undefined) out.xml = xml;
      if (Buffer.isBuffer(bin)) out.binary = bin;
    }
    return out;
  });
  return { outputs, deliveryToken: optionalString(v['deliveryToken']) };
}

const sid = (id: string): string => `<sym:sessionId>${id}</sym:sessionId>`;
const textTask = (text: string): string =>
  `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;

interface FetchOptions {
  countMax?: number;
  timeoutMillis?: number;
  leaseMillis?: number;
  acknowledge?: string;
}

function fetchBody(sessionId: string, o: FetchOptions = {}): string {
  return op(
    'fetchTaskOutput',
    sid(sessionId) +
      `<sym:countMax>${o.countMax ?? 10}</sym:countMax>` +
      (o.timeoutMillis === undefined ? '' : `<sym:timeoutMillis>${o.timeoutMillis}</sym:timeoutMillis>`) +
      (o.leaseMillis === undefined ? '' : `<sym:leaseMillis>${o.leaseMillis}</sym:leaseMillis>`) +
      (o.acknowledge === undefined ? '' : `<sym:acknowledge>${o.acknowledge}</sym:acknowledge>`),
  );
}

describe('operations/task-output: fetchTaskOutput and acknowledgeTaskOutput', () => {
  let h: Harness;
  const as = (consumer: string, body: string): Promise<CallResult> =>
    h.post(body, { headers: { [CONSUMER_HEADER]: consumer } });
  const fetch = async (sessionId: string, o: FetchOptions = {}): Promise<FetchResult> =>
    fetched(await as('client-a', fetchBody(sessionId, o)));

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

  async function send(sessionId: string, text: string): Promise<string> {
    return (await ok(op('sendTaskInput', sid(sessionId) + textTask(text)))).pick('taskId')!;
  }

  /** Waits until the grid has `n` outputs ready for the session. */
  async function outputsReady(sessionId: string, n: number): Promise<void> {
    const ready = await eventually(async () => {
      const r = await ok(op('getSessionStatus', sid(sessionId)));
      return Number(r.pick('outputsReady')) >= n;
    });
    expect(ready, `${n} outputs ready`).to.equal(true);
  }

  /** Long-polls until `n` outputs were collected (or the deadline passed). */
  async function collect(sessionId: string, n: number, o: FetchOptions = {}): Promise<Output[]> {
    const got: Output[] = [];
    const deadline = Date.now() + 5000;
    while (got.length < n && Date.now() < deadline) {
      got.push(...(await fetch(sessionId, { timeoutMillis: 1000, ...o, countMax: n - got.length })).outputs);
    }
    return got;
  }

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader });
  });
  after(() => h?.close());

  describe('waiting', () => {
    it('without timeoutMillis answers at once, empty, when no output is ready', async () => {
      const s = await newSession();
      const t0 = Date.now();
      const r = await fetch(s);
      expect(Date.now() - t0).to.be.lessThan(1000);
      expect(r).to.deep.equal({ outputs: [], deliveryToken: undefined });
    });

    it('long-polls: waits until an output arrives and answers at once then', async () => {
      const s = await newSession();
      const t0 = Date.now();
      const pending = fetch(s, { timeoutMillis: 10_000 });
      await new Promise((r) => setTimeout(r, 150));
      const taskId = await send(s, 'arrives later');
      const r = await pending;
      const elapsed = Date.now() - t0;
      expect(r.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
      expect(r.outputs[0]!.text).to.equal('arrives later');
      expect(elapsed).to.be.at.least(140).and.lessThan(5000);
    });

    it('ends a long poll with nothing to deliver after timeoutMillis, empty', async () => {
      const s = await newSession();
      const t0 = Date.now();
      const r = await fetch(s, { timeoutMillis: 300 });
      const elapsed = Date.now() - t0;
      expect(r.outputs).to.deep.equal([]);
      expect(elapsed).to.be.at.least(250).and.lessThan(3000);
    });

    it('a long poll on a session destroyed meanwhile ends with SSP_UNKNOWN_SESSION', async () => {
      const s = await newSession();
      const t0 = Date.now();
      const pending = as('client-a', fetchBody(s, { timeoutMillis: 10_000 }));
      await new Promise((r) => setTimeout(r, 100));
      await ok(op('closeSession', sid(s)));
      const r = await pending;
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
      expect(Date.now() - t0).to.be.lessThan(5000);
    });
  });

  describe('payloads and failures', () => {
    it('returns text, XML and binary outputs as they were sent', async () => {
      const s = await newSession();
      const xml = '<m:quote xmlns:m="urn:example:quote"><m:price>1.5</m:price></m:quote>';
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x0a]);
      const r = await ok(
        op(
          'sendTaskInputBatch',
          sid(s) +
            textTask('plain text &amp; more &lt;tag&gt;') +
            `<sym:taskSubmissionAttributes><sym:taskInput><sym:xml>${xml}</sym:xml></sym:taskInput></sym:taskSubmissionAttributes>` +
            `<sym:taskSubmissionAttributes><sym:taskInput><sym:binary>${bytes.toString('base64')}</sym:binary></sym:taskInput></sym:taskSubmissionAttributes>`,
        ),
      );
      const ids = [...r.answer.body.matchAll(/<sym:taskId>([^<]+)<\/sym:taskId>/g)].map((m) => m[1]!);
      expect(ids).to.have.length(3);
      const outputs = await collect(s, 3);
      const byId = new Map(outputs.map((o) => [o.taskId, o]));
      expect(byId.size).to.equal(3);
      const [text, x, bin] = ids.map((id) => byId.get(id)!);
      expect(text).to.include({ successful: true, text: 'plain text & more <tag>' });
      expect(x!.successful).to.equal(true);
      expect(x!.xml).to.equal(xml);
      expect(bin!.successful).to.equal(true);
      expect(bin!.binary).to.deep.equal(bytes);
    });

    it('returns a failed task as successful=false with its exception and no payload', async () => {
      const s = await newSession();
      const taskId = await send(s, 'fail:the input was rejected');
      const [out] = await collect(s, 1);
      expect(out).to.deep.equal({
        taskId,
        tag: undefined,
        successful: false,
        exception: out!.exception,
      });
      expect(out!.exception).to.contain('the input was rejected');
    });

    it('returns at most countMax outputs; the rest wait for the next fetch', async () => {
      const s = await newSession();
      await ok(op('sendTaskInputBatch', sid(s) + textTask('a') + textTask('b') + textTask('c')));
      await outputsReady(s, 3);
      const first = await fetch(s, { countMax: 2 });
      expect(first.outputs).to.have.length(2);
      const second = await fetch(s, { countMax: 2 });
      expect(second.outputs).to.have.length(1);
      expect(new Set([...first.outputs, ...second.outputs].map((o) => o.text))).to.deep.equal(
        new Set(['a', 'b', 'c']),
      );
    });

    it('an unleased fetch hands each output out once and gives no delivery token', async () => {
      const s = await newSession();
      await send(s, 'once only');
      const [out] = await collect(s, 1);
      expect(out!.text).to.equal('once only');
      const again = await fetch(s, { timeoutMillis: 200 });
      expect(again).to.deep.equal({ outputs: [], deliveryToken: undefined });
    });
  });

  describe('leased fetches', () => {
    it('a leased fetch returns a delivery token; without acknowledge the next leased fetch returns the outputs again', async () => {
      const s = await newSession();
      const taskId = await send(s, 'leased');
      const first = await fetch(s, { leaseMillis: 60_000, timeoutMillis: 5000 });
      expect(first.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
      expect(first.deliveryToken).to.match(/^[A-Za-z0-9_.-]+$/);

      const second = await fetch(s, { leaseMillis: 60_000 });
      expect(second.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
      expect(second.outputs[0]!.text).to.equal('leased');
      expect(second.deliveryToken).to.be.a('string').and.not.equal(first.deliveryToken);

      // The proxy holds the outputs now; it released the grid's hold on them.
      expect(await eventually(() => h.grid.stats().outputsHeld === 0)).to.equal(true);
    });

    it('acknowledgeTaskOutput releases a lease: the outputs do not come back', async () => {
      const s = await newSession();
      await send(s, 'to acknowledge');
      const first = await fetch(s, { leaseMillis: 60_000, timeoutMillis: 5000 });
      expect(first.outputs).to.have.length(1);
      const ack = await ok(
        op(
          'acknowledgeTaskOutput',
          sid(s) + `<sym:deliveryToken>${first.deliveryToken!}</sym:deliveryToken>`,
        ),
      );
      expect(ack.answer.body).to.contain('acknowledgeTaskOutputResponse');
      const after = await fetch(s, { leaseMillis: 60_000 });
      expect(after.outputs).to.deep.equal([]);
      expect(after.deliveryToken).to.be.a('string');
    });

    it('a leased fetch that names the previous token in acknowledge releases it', async () => {
      const s = await newSession();
      await send(s, 'acknowledged by the next fetch');
      const first = await fetch(s, { leaseMillis: 60_000, timeoutMillis: 5000 });
      expect(first.outputs).to.have.length(1);
      const next = await fetch(s, { leaseMillis: 60_000, acknowledge: first.deliveryToken! });
      expect(next.outputs).to.deep.equal([]);
      const reclaim = await fetch(s, { leaseMillis: 60_000 });
      expect(reclaim.outputs).to.deep.equal([]);
    });

    it('a lease that lapses goes to the next fetch, even an unleased one', async () => {
      const s = await newSession();
      const taskId = await send(s, 'lapsing');
      const first = await fetch(s, { leaseMillis: 1000, timeoutMillis: 5000 });
      expect(first.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
      expect((await fetch(s)).outputs, 'still leased').to.deep.equal([]);
      await new Promise((r) => setTimeout(r, 1100));
      const later = await fetch(s);
      expect(later.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
    });

    it('a retried leased fetch with the same MessageID gets the same outputs and token', async () => {
      const s = await newSession();
      const taskId = await send(s, 'retried fetch');
      await outputsReady(s, 1);
      const envelope = `<s:Envelope xmlns:s="${SOAP11}"><s:Header><wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:fetch-retry-1</wsa:MessageID></s:Header><s:Body>${fetchBody(s, { leaseMillis: 60_000 })}</s:Body></s:Envelope>`;
      const post = async (): Promise<FetchResult> =>
        fetched(await runRequest(h.pipeline, { body: envelope, headers: { [CONSUMER_HEADER]: 'client-a' } }));
      const first = await post();
      const retry = await post();
      expect(first.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
      expect(retry).to.deep.equal(first);
    });

    it('acknowledging an unknown token does nothing', async () => {
      const s = await newSession();
      const r = await ok(
        op('acknowledgeTaskOutput', sid(s) + '<sym:deliveryToken>no-such-token</sym:deliveryToken>'),
      );
      expect(r.answer.status).to.equal(200);
    });
  });

  describe('refusals', () => {
    it('fetch and acknowledge on an unknown session: SSP_UNKNOWN_SESSION', async () => {
      const f = await as('client-a', fetchBody('no-such-session', { timeoutMillis: 1000 }));
      expect(f.code).to.equal('SSP_UNKNOWN_SESSION');
      expect(f.answer.body).to.contain('UnknownSessionFault');
      const a = await as(
        'client-a',
        op('acknowledgeTaskOutput', sid('no-such-session') + '<sym:deliveryToken>tok</sym:deliveryToken>'),
      );
      expect(a.code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('fetch on a destroyed session: SSP_UNKNOWN_SESSION', async () => {
      const s = await newSession();
      await ok(op('closeSession', sid(s)));
      const r = await as('client-a', fetchBody(s));
      expect(r.code).to.equal('SSP_UNKNOWN_SESSION');
    });

    it('another consumer’s fetch and acknowledge: SSP_NOT_OWNER, and the outputs stay for the owner', async () => {
      const s = await newSession();
      const taskId = await send(s, 'not yours');
      await outputsReady(s, 1);
      for (const o of [{}, { leaseMillis: 60_000 }, { timeoutMillis: 1000 }]) {
        const r = await as('client-b', fetchBody(s, o));
        expect(r.code, JSON.stringify(o)).to.equal('SSP_NOT_OWNER');
        expect(r.answer.body).to.contain('NotOwnerFault');
        expect(r.answer.body).not.to.contain('not yours');
      }
      const a = await as(
        'client-b',
        op('acknowledgeTaskOutput', sid(s) + '<sym:deliveryToken>tok</sym:deliveryToken>'),
      );
      expect(a.code).to.equal('SSP_NOT_OWNER');
      const mine = await fetch(s);
      expect(mine.outputs.map((o) => o.taskId)).to.deep.equal([taskId]);
    });
  });
});
