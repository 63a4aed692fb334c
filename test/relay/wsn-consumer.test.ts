/**
 * The WS-BaseNotification test consumer (test/helpers/wsn-consumer.ts, a JAX-WS RI endpoint generated
 * by wsimport from test/java/wsn-consumer/consumer.wsdl) on its own: Notify messages built and signed
 * here with xml-crypto, in the shape the proxy will send, are accepted and recorded when well signed,
 * and refused with HTTP 500 when anything that matters is not covered by a valid signature of the
 * expected key. --fail-first makes it refuse the first deliveries, so that sender tests can watch retries.
 */
import { expect } from 'chai';
import { randomUUID, X509Certificate } from 'node:crypto';
import { request } from 'node:http';
import { SignedXml } from 'xml-crypto';
import { requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import {
  hasJaxws,
  startConsumer,
  WSN_CONSUMER_INSTALL,
  type Consumer,
  type NotifyRecord,
} from '../helpers/wsn-consumer';

const NS = {
  soap: 'http://schemas.xmlsoap.org/soap/envelope/',
  wsse: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd',
  wsu: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd',
  wsa: 'http://www.w3.org/2005/08/addressing',
  wsnt: 'http://docs.oasis-open.org/wsn/b-2',
  sym: 'http://soapproxy.symphony/v1',
} as const;
const NOTIFY_ACTION = 'http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify';
const CONCRETE = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete';
const X509V3 = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3';
const BASE64 =
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

type Part = 'body' | 'timestamp' | 'to' | 'action' | 'messageId' | 'sequence';
const ALL_PARTS: readonly Part[] = ['body', 'timestamp', 'to', 'action', 'messageId', 'sequence'];

interface NotifyOptions {
  to: string;
  subscription: string;
  /** One NotificationMessage each: a sym:TaskStateChanged with this seq and state. */
  messages: { seq: number; state: string }[];
  /** Signing key and the certificate put in the BinarySecurityToken. */
  keyPem: string;
  certPem: string;
  /** The parts the signature references (default: all six). */
  signed?: readonly Part[];
}

/** A Notify in the shape the proxy sends (docs/design/notifications.md §8.4–§8.5), signed with xml-crypto. */
function signedNotify(o: NotifyOptions): { xml: string; messageId: string } {
  const u = randomUUID();
  const id: Record<Part | 'bst', string> = {
    body: `Body-${u}`,
    timestamp: `TS-${u}`,
    to: `To-${u}`,
    action: `Action-${u}`,
    messageId: `MID-${u}`,
    sequence: `Seq-${u}`,
    bst: `X509-${u}`,
  };
  const messageId = `urn:uuid:${randomUUID()}`;
  const created = new Date();
  const expires = new Date(created.getTime() + 300_000);
  const seqs = o.messages.map((m) => m.seq);
  const holders = o.messages
    .map(
      (m) =>
        `<wsnt:NotificationMessage>` +
        `<wsnt:SubscriptionReference><wsa:Address>http://127.0.0.1:8080/symphony/subscriptions/${o.subscription}</wsa:Address></wsnt:SubscriptionReference>` +
        `<wsnt:Topic Dialect="${CONCRETE}" xmlns:sym="${NS.sym}">sym:TaskStateChanged/${m.state}</wsnt:Topic>` +
        `<wsnt:ProducerReference><wsa:Address>http://127.0.0.1:8080/symphony/sessions/S1</wsa:Address></wsnt:ProducerReference>` +
        `<wsnt:Message><sym:TaskStateChanged xmlns:sym="${NS.sym}" seq="${m.seq}" topic="TaskStateChanged/${m.state}">` +
        `<sym:SessionId>S1</sym:SessionId><sym:TaskId>7</sym:TaskId><sym:State>${m.state}</sym:State>` +
        `</sym:TaskStateChanged></wsnt:Message>` +
        `</wsnt:NotificationMessage>`,
    )
    .join('');
  const unsigned =
    `<soap:Envelope xmlns:soap="${NS.soap}" xmlns:wsse="${NS.wsse}" xmlns:wsu="${NS.wsu}" xmlns:wsa="${NS.wsa}" xmlns:wsnt="${NS.wsnt}" xmlns:sym="${NS.sym}">` +
    `<soap:Header>` +
    `<wsse:Security soap:mustUnderstand="1">` +
    `<wsu:Timestamp wsu:Id="${id.timestamp}"><wsu:Created>${created.toISOString()}</wsu:Created><wsu:Expires>${expires.toISOString()}</wsu:Expires></wsu:Timestamp>` +
    `<wsse:BinarySecurityToken EncodingType="${BASE64}" ValueType="${X509V3}" wsu:Id="${id.bst}">${new X509Certificate(o.certPem).raw.toString('base64')}</wsse:BinarySecurityToken>` +
    `</wsse:Security>` +
    `<wsa:To wsu:Id="${id.to}">${o.to}</wsa:To>` +
    `<wsa:Action wsu:Id="${id.action}">${NOTIFY_ACTION}</wsa:Action>` +
    `<wsa:MessageID wsu:Id="${id.messageId}">${messageId}</wsa:MessageID>` +
    `<sym:Sequence wsu:Id="${id.sequence}" subscription="${o.subscription}" first="${Math.min(...seqs)}" last="${Math.max(...seqs)}"/>` +
    `</soap:Header>` +
    `<soap:Body wsu:Id="${id.body}"><wsnt:Notify>${holders}</wsnt:Notify></soap:Body>` +
    `</soap:Envelope>`;

  const sig = new SignedXml({
    privateKey: o.keyPem,
    signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    canonicalizationAlgorithm: EXC_C14N,
    idMode: 'wssecurity',
    getKeyInfoContent: () =>
      `<wsse:SecurityTokenReference><wsse:Reference URI="#${id.bst}" ValueType="${X509V3}"/></wsse:SecurityTokenReference>`,
  });
  for (const part of o.signed ?? ALL_PARTS) {
    sig.addReference({
      xpath: `//*[@*[local-name()='Id' and namespace-uri()='${NS.wsu}']='${id[part]}']`,
      transforms: [EXC_C14N],
      digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
    });
  }
  sig.computeSignature(unsigned, {
    prefix: 'ds',
    location: {
      reference: `//*[local-name()='Security' and namespace-uri()='${NS.wsse}']`,
      action: 'append',
    },
    existingPrefixes: { wsse: NS.wsse, wsu: NS.wsu },
  });
  return { xml: sig.getSignedXml(), messageId };
}

/** POSTs a SOAP 1.1 message as a sender would: with the Notify SOAPAction. */
function post(url: string, xml: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: `"${NOTIFY_ACTION}"` },
        timeout: 15_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(xml);
  });
}

const byId = (records: NotifyRecord[], messageId: string): NotifyRecord[] =>
  records.filter((r) => r.messageId === messageId);

describe('WS-BaseNotification test consumer (wsimport from consumer.wsdl, JSR-105 signature check)', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let consumer: Consumer | undefined;
  let failing: Consumer | undefined;

  before(async function () {
    this.timeout(300_000); // the first run builds the consumer (wsimport + javac)
    requirePeer(this, 'wsimport, the JAX-WS RI and a JDK (jaxws)', hasJaxws(), WSN_CONSUMER_INSTALL);
    pki = await makeTestPki();
    consumer = await startConsumer({ certFile: pki.proxyRsa.certFile });
  });

  after(async () => {
    await consumer?.stop();
    await failing?.stop();
  });

  const notify = (over: Partial<NotifyOptions> = {}): { xml: string; messageId: string } =>
    signedNotify({
      to: consumer!.url,
      subscription: 'SUB1',
      messages: [
        { seq: 1, state: 'Done' },
        { seq: 2, state: 'Failed' },
      ],
      keyPem: pki.proxyRsa.keyPem,
      certPem: pki.proxyRsa.certPem,
      ...over,
    });

  /** A refused message: HTTP 500 with a SOAP fault, recorded as refused, never as accepted. */
  async function expectRefused(xml: string, messageId: string, reason: RegExp): Promise<void> {
    const res = await post(consumer!.url, xml);
    expect(res.status, res.body).to.equal(500);
    expect(res.body).to.contain('<faultcode>soap:Client</faultcode>').and.match(reason);
    const mine = byId(consumer!.records(), messageId);
    expect(mine, JSON.stringify(mine)).to.have.length(1);
    expect(mine[0]).to.include({ signatureOk: false, accepted: false, status: 500 });
    expect(mine[0]!.reason).to.match(reason);
  }

  it('accepts a Notify signed by the expected key and records its sequence and topics', async () => {
    const { xml, messageId } = notify();
    const res = await post(consumer!.url, xml);
    expect([200, 202], `${res.status} ${res.body}\n${consumer!.stderr()}`).to.include(res.status);
    const [record] = byId(await consumer!.waitForRecords((r) => byId(r, messageId).length > 0), messageId);
    expect(record).to.deep.equal({
      messageId,
      to: consumer!.url,
      action: NOTIFY_ACTION,
      subscription: 'SUB1',
      first: 1,
      last: 2,
      signatureOk: true,
      accepted: true,
      messages: [
        { seq: 1, topic: 'sym:TaskStateChanged/Done', payload: `{${NS.sym}}TaskStateChanged` },
        { seq: 2, topic: 'sym:TaskStateChanged/Failed', payload: `{${NS.sym}}TaskStateChanged` },
      ],
    });
  });

  it('refuses a Notify whose body was changed after signing', async () => {
    const { xml, messageId } = notify();
    const tampered = xml.replace('<sym:State>Done</sym:State>', '<sym:State>Dune</sym:State>');
    expect(tampered).to.not.equal(xml);
    await expectRefused(tampered, messageId, /digest of #Body-/);
  });

  it('refuses a Notify signed by another key, with its own or with the expected certificate', async () => {
    const other = notify({ keyPem: pki.otherClient.keyPem, certPem: pki.otherClient.certPem });
    await expectRefused(other.xml, other.messageId, /BinarySecurityToken is not the expected/);
    // The expected certificate in the token does not help: the key did not sign it.
    const forged = notify({ keyPem: pki.otherClient.keyPem });
    await expectRefused(forged.xml, forged.messageId, /SignatureValue/);
  });

  it('refuses a Notify whose signature does not cover the sym:Sequence header', async () => {
    const { xml, messageId } = notify({ signed: ALL_PARTS.filter((p) => p !== 'sequence') });
    await expectRefused(xml, messageId, /sym:Sequence is not signed/);
  });

  it('--fail-first 2 --status-on-fail 503: the first two deliveries fail with 503, the third is accepted', async () => {
    failing = await startConsumer({ certFile: pki.proxyRsa.certFile, failFirst: 2, statusOnFail: 503 });
    const answers: { status: number; body: string }[] = [];
    const ids: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      // A retry as the proxy sends it: the same batch, signed afresh.
      const { xml, messageId } = notify({ to: failing.url, messages: [{ seq: 5, state: 'Done' }] });
      answers.push(await post(failing.url, xml));
      ids.push(messageId);
    }
    expect(answers.map((a) => a.status).slice(0, 2)).to.deep.equal([503, 503]);
    for (const a of answers.slice(0, 2)) expect(a.body).to.contain('<faultcode>soap:Server</faultcode>');
    expect([200, 202]).to.include(answers[2]!.status);
    const records = await failing.waitForRecords((r) => r.length === 3);
    expect(records.map((r) => r.messageId)).to.deep.equal(ids);
    expect(records.map((r) => [r.signatureOk, r.accepted, r.status ?? null])).to.deep.equal([
      [true, false, 503],
      [true, false, 503],
      [true, true, null],
    ]);
    expect(records[2]!.messages).to.deep.equal([
      { seq: 5, topic: 'sym:TaskStateChanged/Done', payload: `{${NS.sym}}TaskStateChanged` },
    ]);
  });

  it('stop() ends the JVM: the port no longer answers', async () => {
    const c = await startConsumer({ certFile: pki.proxyRsa.certFile });
    await c.stop();
    const err = await post(c.url, '<x/>').then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).to.equal('ECONNREFUSED');
  });
});
