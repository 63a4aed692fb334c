/**
 * WS-BaseNotification 1.3 end to end, with real peers on both sides of the proxy: a Java subscriber that
 * `wsimport` (JAX-WS RI, Debian's jaxws) generated from the WSDL the proxy serves, signing every request
 * with WS-Security (test/java/wsimport-client/SymphonyNotificationClient.java; its Subscribe is
 * SubscribeExample.java, the README's Java example), and the JAX-WS NotificationConsumer that checks
 * every Notify's signature with JSR-105 (test/java/wsn-consumer/, test/helpers/wsn-consumer.ts).
 *
 * One proxy (WS-Security on, responses and Notify signed with an RSA test key, the reference grid), one
 * subscriber JVM driven a command at a time, and three consumers of the same session's task outputs:
 *   A  the consumer: every Notify accepted, outputs 1..20 in order; then Renew, Pause, Resume and
 *      Unsubscribe through the generated SubscriptionManagerPort;
 *   B  the consumer with --fail-first 2 --status-on-fail 503: the proxy retries until it gets through;
 *   C  a bare node:http server that keeps the bytes of each Notify, for xmlsec1.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SOAP11_NS } from '../../src/soap/envelope';
import { SYM, WSA, WSNT, WSNT_W } from '../../src/soap/ws-namespaces';
import { childElements, parseXml, textOf, type XmlElement } from '../../src/soap/xml';
import { DS_NS, WSU_NS } from '../../src/security/names';
import { requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { hasXmlsec1, verifyWithXmlsec1, XMLSEC1_INSTALL } from '../helpers/signature-peers';
import { buildClient, CLIENT_SUPPORT_FILES, JAXWS_RT, requireJaxws } from '../helpers/wsimport';
import { buildConsumer, startConsumer, type Consumer, type NotifyRecord } from '../helpers/wsn-consumer';

const NOTIFY_ACTION = `${WSNT_W}/NotificationConsumer/Notify`;
const SIMPLE = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple';
const TOPIC = 'sym:TaskOutputAvailable';
const PAYLOAD = `{${SYM}}TaskOutputAvailable`;
const TASKS = 20;
const DELIVERY_MS = 30_000;
/** How long a paused or ended subscription is watched for deliveries it must not get. */
const QUIET_MS = 1500;

/** One JSON answer of SymphonyNotificationClient. */
interface Answer {
  cmd: string;
  ok: boolean;
  error?: string;
  fault?: { exception: string; detail: string | null; errorCode?: string; description?: string[] };
  requestsSigned: number;
  responsesVerified: number;
  [seen: string]: unknown;
}

interface Epr {
  address: string;
  referenceParameters: Record<string, string>;
}

interface Subscribed extends Answer {
  request: {
    endpoint: string;
    topicExpression: string;
    dialect: string;
    symResolvesTo: string | null;
    symDeclaredOn: string | null;
    consumerAddress: string;
    initialTerminationTime: string;
  };
  subscriptionReference: Epr;
  address: string;
  currentTime: string;
  terminationTime: string;
}

/**
 * The subscriber JVM: one command per stdin line, one JSON line back per command (the first, "ready",
 * when the WSDL's policy is read). Commands run one at a time, in order.
 */
class JavaSubscriber {
  private readonly pending: ((a: Answer) => void)[] = [];
  private readonly early: Answer[] = [];
  private stderrText = '';
  private exited = false;

  constructor(private readonly child: ChildProcess) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => {
      if (this.stderrText.length < 256 * 1024) this.stderrText += c;
    });
    child.stdin!.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      this.exited = true;
      const gone: Answer = {
        cmd: 'exit',
        ok: false,
        error: `the subscriber JVM exited (${code ?? signal}):\n${this.stderrText}`,
        requestsSigned: 0,
        responsesVerified: 0,
      };
      for (const p of this.pending.splice(0)) p(gone);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let a: Answer;
      try {
        a = JSON.parse(line) as Answer;
      } catch {
        return; // not ours (the RI prints nothing on stdout, but be safe)
      }
      const p = this.pending.shift();
      if (p) p(a);
      else this.early.push(a);
    });
  }

  private next(timeoutMs: number): Promise<Answer> {
    const a = this.early.shift();
    if (a) return Promise.resolve(a);
    if (this.exited) return Promise.reject(new Error(`the subscriber JVM is gone:\n${this.stderrText}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer from the subscriber in ${timeoutMs} ms:\n${this.stderrText}`)),
        timeoutMs,
      );
      this.pending.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  ready(): Promise<Answer> {
    return this.next(60_000);
  }

  /** Sends one command and resolves with its answer (failed commands too: `ok` says). */
  async call<A extends Answer = Answer>(command: string): Promise<A> {
    this.child.stdin!.write(`${command}\n`);
    return (await this.next(60_000)) as A;
  }

  /** Like call(), asserting that the command succeeded with every response verified. */
  async ok<A extends Answer = Answer>(command: string): Promise<A> {
    const a = await this.call<A>(command);
    expect(a.ok, `${command}: ${a.error ?? ''}`).to.equal(true);
    expect(a.responsesVerified, `${command}: every response verified`).to.equal(a.requestsSigned);
    return a;
  }

  /** quit: the JVM prints its WS-Security counts and exits. */
  quit(): Promise<Answer> {
    return this.call('quit');
  }

  stderr(): string {
    return this.stderrText;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** A consumer that keeps the raw bytes of every Notify and answers 202, as the JAX-WS RI does. */
interface RawConsumer {
  url: string;
  bodies: string[];
  server: Server;
}

async function startRawConsumer(): Promise<RawConsumer> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}/raw`, bodies, server };
}

/** Every accepted Notify of one subscription, and the sequence numbers it carried, in arrival order. */
function delivered(
  records: NotifyRecord[],
  subscription: string,
): { notifies: NotifyRecord[]; seqs: number[] } {
  const notifies = records.filter((r) => r.accepted && r.subscription === subscription);
  return { notifies, seqs: notifies.flatMap((r) => r.messages.map((m) => m.seq ?? -1)) };
}

/** Whether each of `from`..`to` arrived at least once. */
const covers = (seqs: number[], from: number, to: number): boolean => {
  const seen = new Set(seqs);
  for (let s = from; s <= to; s++) if (!seen.has(s)) return false;
  return true;
};

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The sequence numbers as first seen (the order of delivery) and how many arrived again: delivery is
 * at least once, so a batch may repeat; consumers de-duplicate on (subscription, seq).
 */
function firstSeen(seqs: number[]): { order: number[]; duplicates: number } {
  const seen = new Set<number>();
  const order: number[] = [];
  for (const s of seqs) {
    if (seen.has(s)) continue;
    seen.add(s);
    order.push(s);
  }
  return { order, duplicates: seqs.length - order.length };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Elements of the tree, depth first. */
function* walk(el: XmlElement): Generator<XmlElement> {
  yield el;
  for (const c of childElements(el)) yield* walk(c);
}

const nameOf = (el: XmlElement): string => `{${el.uri}}${el.local}`;
const wsuId = (el: XmlElement): string | undefined =>
  el.attrs.find((a) => a.uri === WSU_NS && a.local === 'Id')?.value;

function only(el: XmlElement, uri: string, local: string): XmlElement {
  const found = childElements(el).filter((c) => c.uri === uri && c.local === local);
  expect(found, `${el.local} has one ${local}`).to.have.length(1);
  return found[0]!;
}

describe('WS-BaseNotification: a wsimport-generated Java subscriber, the JAX-WS consumer, signed end to end', function () {
  this.timeout(120_000);
  let dir = '';
  let pki: TestPki;
  let grid: GridProcess | undefined;
  let proxy: ProxyProcess | undefined;
  let subscriber: JavaSubscriber | undefined;
  let consumer: Consumer | undefined; // A
  let failing: Consumer | undefined; // B
  let raw: RawConsumer | undefined; // C
  let opened: Answer & { sessionId: string; epr: Epr };
  const subs: Record<'a' | 'b' | 'c', Subscribed | undefined> = { a: undefined, b: undefined, c: undefined };
  let sent: Answer & { taskIds: string[] };

  before(async function () {
    this.timeout(300_000); // wsimport + javac of the subscriber (and, the first time, of the consumer)
    requireJaxws(this);
    requirePeer(this, 'xmlsec1', hasXmlsec1(), XMLSEC1_INSTALL);
    dir = mkdtempSync(join(tmpdir(), 'ssp-wsimport-notifications-'));
    const consumerBuilt = buildConsumer();
    consumerBuilt.catch(() => undefined); // awaited below
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
    proxy = await startProxyProcess(
      proxyConfig([grid.address], '', {
        security: {
          mode: 'wss',
          trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
          // RSA-SHA256, as the WSDL's Basic256Sha256 policy promises: the subscriber holds responses to it.
          responseSigning: { enabled: true, certFile: pki.proxyRsa.certFile, keyFile: pki.proxyRsa.keyFile },
        },
        notifications: {
          destinations: [{ consumer: '*', hosts: ['127.0.0.1'], allowHttp: true }],
          delivery: { retryBaseMs: 50, retryCapMs: 500, maxAttempts: 4, pollMs: 20 },
          watch: { waitMs: 500 },
        },
      }),
    );
    const built = await buildClient(proxy.url, dir, {
      extension: false,
      generated: ['NotificationProducerPortType.java', 'SubscriptionManagerPortType.java'],
      clientFiles: [...CLIENT_SUPPORT_FILES, 'SubscribeExample.java', 'SymphonyNotificationClient.java'],
    });
    await consumerBuilt;
    [consumer, failing, raw] = await Promise.all([
      startConsumer({ certFile: pki.proxyRsa.certFile }),
      startConsumer({ certFile: pki.proxyRsa.certFile, failFirst: 2, statusOnFail: 503 }),
      startRawConsumer(),
    ]);
    subscriber = new JavaSubscriber(
      spawn(
        'java',
        [
          '-XX:TieredStopAtLevel=1',
          '-XX:+UseSerialGC',
          '-cp',
          `${built.classes}:${JAXWS_RT}`,
          'SymphonyNotificationClient',
          '--wsdl',
          built.wsdlFile,
          '--endpoint',
          proxy.url,
          '--client-cert',
          pki.client.certFile,
          '--client-key',
          pki.client.keyFile,
          '--response-cert',
          pki.proxyRsa.certFile,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    const ready = await subscriber.ready();
    expect(ready, subscriber.stderr()).to.deep.include({
      cmd: 'ready',
      ok: true,
      policySuite: 'Basic256Sha256',
    });

    // Every subscription exists before the first task: each one sees all the outputs.
    opened = await subscriber.ok('open');
    subs.a = await subscriber.ok<Subscribed>(`subscribe ${consumer.url}`);
    subs.b = await subscriber.ok<Subscribed>(`subscribe ${failing.url}`);
    subs.c = await subscriber.ok<Subscribed>(`subscribe ${raw.url}`);
    sent = await subscriber.ok(`send ${TASKS} task`);
  });

  after(async () => {
    if (subscriber) {
      await Promise.race([subscriber.quit().catch(() => undefined), sleep(10_000)]);
      subscriber.kill();
    }
    await Promise.all([consumer?.stop(), failing?.stop()]);
    if (raw) await new Promise((resolve) => raw!.server.close(resolve));
    await proxy?.stop();
    await grid?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The id a subscription's SubscribeResponse gave it (the sym:SubscriptionId reference parameter). */
  const idOf = (s: Subscribed | undefined): string => {
    expect(s, 'subscribed in before()').to.not.equal(undefined);
    return s!.subscriptionReference.referenceParameters[`{${SYM}}SubscriptionId`]!;
  };

  /** Waits until `c` has accepted the seqs from..to of the subscription; returns its accepted Notifies. */
  async function deliveredTo(c: Consumer, s: Subscribed | undefined, from: number, to: number) {
    const id = idOf(s);
    const records = await c.waitForRecords((r) => covers(delivered(r, id).seqs, from, to), DELIVERY_MS);
    return { records, ...delivered(records, id) };
  }

  it('Subscribe through the generated NotificationProducerPort at the session’s EPR Address answers a SubscriptionReference', () => {
    const base = proxy!.url.replace(/\/$/, '');
    expect(opened.epr.address).to.equal(`${base}/sessions/${opened.sessionId}`);
    for (const [name, c] of [
      ['a', consumer!.url],
      ['b', failing!.url],
      ['c', raw!.url],
    ] as const) {
      const s = subs[name]!;
      // As sent: to the session, the topic's prefix in scope (the DOM element's declaration), PT10M.
      expect(s.request).to.deep.include({
        endpoint: opened.epr.address,
        topicExpression: TOPIC,
        dialect: SIMPLE,
        symResolvesTo: SYM,
        consumerAddress: c,
        initialTerminationTime: 'PT10M',
      });
      // JAXB RI 2.3 writes the DOM element's xmlns:sym on the enclosing wsnt:Filter: in scope all the same.
      expect(s.request.symDeclaredOn).to.be.oneOf(['TopicExpression', 'Filter']);
      const id = idOf(s);
      expect(id).to.match(/^[A-Za-z0-9_-]{22}$/);
      expect(s.address).to.equal(`${base}/subscriptions/${id}`);
      expect(s.subscriptionReference.address).to.equal(s.address);
      // InitialTerminationTime PT10M: granted as asked, relative to the producer's CurrentTime.
      expect(Date.parse(s.terminationTime) - Date.parse(s.currentTime)).to.equal(600_000);
      expect(Date.parse(s.currentTime)).to.be.closeTo(Date.now(), 120_000);
    }
    expect(new Set([idOf(subs.a), idOf(subs.b), idOf(subs.c)]).size).to.equal(3);
    expect(sent.taskIds).to.have.length(TASKS);
  });

  it('a TopicExpression as the generated JAXBElement<TopicExpressionType> leaves "sym" undeclared → InvalidTopicExpressionFault', async () => {
    // Why SubscribeExample builds a DOM element: JAXB writes the topic's text, and nothing declares its prefix.
    const r = await subscriber!.call(`subscribe-jaxb-topic ${consumer!.url}`);
    expect(r.ok).to.equal(false);
    expect(r.responsesVerified, 'the fault was signed and verified').to.equal(r.requestsSigned);
    expect(r.fault).to.deep.include({
      exception: 'InvalidTopicExpressionFault',
      detail: 'InvalidTopicExpressionFaultType',
      errorCode: 'SSP_INVALID_TOPIC_EXPRESSION',
    });
    expect(r.fault!.description!.join(' ')).to.contain(
      "the prefix 'sym' of 'sym:TaskOutputAvailable' is not declared",
    );
  });

  it('consumer A: every Notify signed by the proxy and accepted; outputs 1..20 as TaskOutputAvailable, each once, in order', async () => {
    const id = idOf(subs.a);
    const { records, notifies, seqs } = await deliveredTo(consumer!, subs.a, 1, TASKS);
    const mine = records.filter((r) => r.subscription === id);
    // Nothing refused: every Notify of this subscription verified (JSR-105, pinned certificate) and was taken.
    expect(
      mine.filter((r) => !r.accepted || !r.signatureOk),
      consumer!.stderr(),
    ).to.deep.equal([]);
    expect(
      records.every((r) => r.subscription === id),
      'only subscription A writes to consumer A',
    ).to.equal(true);
    for (const n of notifies) {
      expect(n).to.deep.include({ to: consumer!.url, action: NOTIFY_ACTION, subscription: id });
      expect(n.messageId).to.match(/^urn:uuid:[0-9a-f-]{36}$/);
      expect(n.messages.length).to.be.at.least(1);
      // The sym:Sequence header spans exactly the Notify's messages.
      expect([n.first, n.last]).to.deep.equal([n.messages[0]!.seq, n.messages[n.messages.length - 1]!.seq]);
      for (const m of n.messages) expect(m).to.deep.include({ topic: TOPIC, payload: PAYLOAD });
    }
    const { order, duplicates } = firstSeen(seqs);
    expect(order.slice(0, TASKS)).to.deep.equal(range(1, TASKS));
    console.log(
      `      consumer A: ${notifies.length} Notify, ${seqs.length} messages, ${duplicates} duplicate(s)`,
    );
  });

  it('consumer B refuses the first two Notify (503): the proxy retries, and B still gets 1..20 in order', async () => {
    const id = idOf(subs.b);
    const { records, notifies, seqs } = await deliveredTo(failing!, subs.b, 1, TASKS);
    const refused = records.filter((r) => !r.accepted);
    expect(
      refused.map((r) => [r.subscription, r.signatureOk, r.status]),
      'the two refusals, well signed',
    ).to.deep.equal([
      [id, true, 503],
      [id, true, 503],
    ]);
    expect(records.indexOf(refused[1]!), 'refused first, then accepted').to.equal(1);
    // A retry carries the same batch, signed afresh (a new MessageID per attempt).
    expect(records[1]!.first).to.equal(records[0]!.first);
    expect(records[2]!.first).to.equal(records[0]!.first);
    expect(new Set(records.map((r) => r.messageId)).size).to.equal(records.length);
    for (const n of notifies) {
      expect(n).to.deep.include({ to: failing!.url, subscription: id, signatureOk: true });
      for (const m of n.messages) expect(m).to.deep.include({ topic: TOPIC, payload: PAYLOAD });
    }
    const { order, duplicates } = firstSeen(seqs);
    expect(order.slice(0, TASKS)).to.deep.equal(range(1, TASKS));
    console.log(
      `      consumer B: 2 refused, then ${notifies.length} Notify accepted, ${seqs.length} messages, ${duplicates} duplicate(s)`,
    );
  });

  /** The first Notify consumer C captured, waited for. */
  async function capturedNotify(): Promise<string> {
    const until = Date.now() + DELIVERY_MS;
    while (raw!.bodies.length === 0) {
      if (Date.now() > until) throw new Error('consumer C received no Notify');
      await sleep(50);
    }
    return raw!.bodies[0]!;
  }

  it('xmlsec1 verifies a Notify as the proxy sent it; its SignedInfo covers Body, Timestamp, To, Action, MessageID and Sequence', async () => {
    const xml = await capturedNotify();
    const env = parseXml(xml, { maxDepth: 64, maxAttributes: 64, maxNameLength: 256, maxElements: 100_000 });
    expect(nameOf(env)).to.equal(`{${SOAP11_NS}}Envelope`);
    const byId = new Map<string, XmlElement>();
    for (const e of walk(env)) {
      const id = wsuId(e);
      if (id === undefined) continue;
      expect(byId.has(id), `wsu:Id ${id} is unique`).to.equal(false);
      byId.set(id, e);
    }
    // xmlsec1 registers IDs only where told: every element that carries a wsu:Id, by namespace and name.
    const carriers = [...new Set([...byId.values()].map((e) => `${e.uri}:${e.local}`))];
    const idAttrs = carriers.flatMap((c) => ['--id-attr:Id', c]);
    const verdict = await verifyWithXmlsec1(xml, pki.proxyRsa.certFile, idAttrs);
    expect(verdict.ok, `xmlsec1 ${idAttrs.join(' ')}:\n${verdict.output}\n${xml}`).to.equal(true);
    expect(verdict.output).to.contain('SignedInfo References (ok/all): 6/6');

    const header = only(env, SOAP11_NS, 'Header');
    const body = only(env, SOAP11_NS, 'Body');
    const security = only(
      header,
      'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd',
      'Security',
    );
    const signedInfo = only(only(security, DS_NS, 'Signature'), DS_NS, 'SignedInfo');
    const referenced = childElements(signedInfo)
      .filter((e) => e.uri === DS_NS && e.local === 'Reference')
      .map((r) => {
        const uri = r.attrs.find((a) => a.local === 'URI')!.value;
        const target = byId.get(uri.replace(/^#/, ''));
        expect(target, `reference ${uri} resolves`).to.not.equal(undefined);
        return target!;
      });
    expect(referenced.map(nameOf)).to.have.members([
      `{${SOAP11_NS}}Body`,
      `{${WSU_NS}}Timestamp`,
      `{${WSA}}To`,
      `{${WSA}}Action`,
      `{${WSA}}MessageID`,
      `{${SYM}}Sequence`,
    ]);
    // The references are the message's own parts, each the one element of its kind in its place.
    expect(referenced).to.include(body);
    expect(referenced).to.include(only(security, WSU_NS, 'Timestamp'));
    const headers = childElements(header);
    for (const r of referenced.filter((e) => e.uri === WSA || e.uri === SYM)) {
      expect(
        headers.filter((h) => nameOf(h) === nameOf(r)),
        nameOf(r),
      ).to.deep.equal([r]);
    }

    const value = (local: string, uri = WSA): string => textOf(only(header, uri, local)).trim();
    expect(value('To')).to.equal(raw!.url);
    expect(value('Action')).to.equal(NOTIFY_ACTION);
    const sequence = only(header, SYM, 'Sequence');
    expect(sequence.attrs.find((a) => a.local === 'subscription')?.value).to.equal(idOf(subs.c));

    // The NotificationMessage names its subscription and producer by the EPRs the client was given.
    const notify = only(body, WSNT, 'Notify');
    const message = childElements(notify)[0]!;
    const address = (el: XmlElement): string => textOf(only(el, WSA, 'Address')).trim();
    expect(address(only(message, WSNT, 'SubscriptionReference'))).to.equal(subs.c!.address);
    expect(address(only(message, WSNT, 'ProducerReference'))).to.equal(opened.epr.address);
    const topic = only(message, WSNT, 'Topic');
    expect(topic.attrs.find((a) => a.local === 'Dialect')?.value).to.equal(SIMPLE);
    expect(textOf(topic).trim()).to.equal(TOPIC);
    const payload = childElements(only(message, WSNT, 'Message'))[0]!;
    expect(nameOf(payload)).to.equal(PAYLOAD);
    expect(payload.attrs.find((a) => a.local === 'seq')?.value).to.equal('1');
  });

  it('the signature covers what wsnt:Topic’s prefix means (a QName in text): rebinding "sym" there breaks it', async () => {
    // Exclusive C14N drops a namespace declaration that no element or attribute name uses, so the
    // xmlns:sym that gives "sym:TaskOutputAvailable" its meaning is outside every digest unless the
    // Body reference lists it (ec:InclusiveNamespaces PrefixList="sym"); docs/design/notifications.md §9.6.
    const xml = await capturedNotify();
    const topic = /<wsnt:Topic [^>]*xmlns:sym="http:\/\/soapproxy\.symphony\/v1"[^>]*>/.exec(xml);
    expect(topic, 'the Topic declares its prefix').to.not.equal(null);
    const rebound = xml.replace(
      topic![0],
      topic![0].replace(`xmlns:sym="${SYM}"`, 'xmlns:sym="urn:x-other"'),
    );
    expect(rebound).to.not.equal(xml);
    const carriers = [
      `${SOAP11_NS}:Body`,
      `${WSU_NS}:Timestamp`,
      `${WSA}:To`,
      `${WSA}:Action`,
      `${WSA}:MessageID`,
      `${SYM}:Sequence`,
    ];
    const idAttrs = carriers.flatMap((c) => ['--id-attr:Id', c]);
    expect((await verifyWithXmlsec1(xml, pki.proxyRsa.certFile, idAttrs)).ok, 'as sent').to.equal(true);
    const verdict = await verifyWithXmlsec1(rebound, pki.proxyRsa.certFile, idAttrs);
    expect(
      verdict.ok,
      `the topic now reads {urn:x-other}TaskOutputAvailable, yet:\n${verdict.output}`,
    ).to.equal(false);
  });

  it('Renew through the generated SubscriptionManagerPort at the SubscriptionReference Address moves the end', async () => {
    const r = await subscriber!.ok(`renew ${subs.a!.address} PT20M`);
    expect(r.request).to.deep.equal([{ name: 'TerminationTime', nil: false, text: 'PT20M' }]);
    expect(Date.parse(String(r.terminationTime)) - Date.parse(String(r.currentTime))).to.equal(1_200_000);
    expect(Date.parse(String(r.terminationTime))).to.be.greaterThan(Date.parse(subs.a!.terminationTime));
  });

  it('PauseSubscription holds A’s deliveries while B and C get the new outputs; ResumeSubscription delivers them, in order', async () => {
    const paused = await subscriber!.ok(`pause ${subs.a!.address}`);
    expect(paused.response).to.deep.equal([`{${WSNT}}PauseSubscriptionResponse`]);
    const before = delivered(consumer!.records(), idOf(subs.a)).seqs.length;
    await subscriber!.ok('send 5 paused');
    // The outputs were published: B has them.
    await deliveredTo(failing!, subs.b, TASKS + 1, TASKS + 5);
    await sleep(QUIET_MS);
    const whilePaused = delivered(consumer!.records(), idOf(subs.a)).seqs;
    expect(whilePaused.slice(before), 'nothing delivered to A while paused').to.deep.equal([]);
    expect(Math.max(...whilePaused)).to.equal(TASKS);

    const resumed = await subscriber!.ok(`resume ${subs.a!.address}`);
    expect(resumed.response).to.deep.equal([`{${WSNT}}ResumeSubscriptionResponse`]);
    const { seqs } = await deliveredTo(consumer!, subs.a, TASKS + 1, TASKS + 5);
    expect(firstSeen(seqs).order).to.deep.equal(range(1, TASKS + 5));
  });

  it('Unsubscribe ends A: later outputs reach B only, and a Renew of A then gets ResourceUnknownFault', async () => {
    const r = await subscriber!.ok(`unsubscribe ${subs.a!.address}`);
    expect(r.response).to.deep.equal([`{${WSNT}}UnsubscribeResponse`]);
    const count = delivered(consumer!.records(), idOf(subs.a)).seqs.length;
    await subscriber!.ok('send 3 after');
    await deliveredTo(failing!, subs.b, TASKS + 6, TASKS + 8);
    await sleep(QUIET_MS);
    expect(delivered(consumer!.records(), idOf(subs.a)).seqs.length, 'nothing after Unsubscribe').to.equal(
      count,
    );

    const renew = await subscriber!.call(`renew ${subs.a!.address} PT20M`);
    expect(renew.ok).to.equal(false);
    expect(renew.responsesVerified, 'the fault was signed and verified').to.equal(renew.requestsSigned);
    expect(renew.fault).to.deep.include({
      exception: 'ResourceUnknownFault',
      detail: 'ResourceUnknownFaultType',
      errorCode: 'SSP_SUBSCRIPTION_UNKNOWN',
    });
  });

  it('every request was signed and every response verified with the WSDL policy’s algorithms', async () => {
    const s = subscriber!;
    subscriber = undefined; // after() has nothing left to stop
    const q = await s.quit().finally(() => s.kill());
    expect(q).to.deep.include({ cmd: 'quit', ok: true });
    // open (2), 3 + 1 Subscribe, 3 sends, Renew, Pause, Resume, Unsubscribe, Renew after it.
    expect(q.requestsSigned).to.be.at.least(14);
    expect(q.responsesVerified).to.equal(q.requestsSigned);
    expect(q.responseSignatureMethods).to.deep.equal(['http://www.w3.org/2001/04/xmldsig-more#rsa-sha256']);
  });
});
