/**
 * The proxy's signed responses, checked by two independent implementations: xmlsec1 (libxmlsec,
 * C) and Apache Santuario (Java, with a coverage check that the references are exactly the
 * dispatched Body and the Timestamp). Both RSA and ECDSA response keys, SOAP 1.1 and 1.2,
 * successful responses and faults.
 */
import { expect } from 'chai';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { requirePeer } from '../helpers/peers';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import {
  hasSantuario,
  hasXmlsec1,
  SANTUARIO_INSTALL,
  verifyManyWithSantuario,
  verifyWithXmlsec1,
  XMLSEC1_INSTALL,
} from '../helpers/signature-peers';
import { op, pick, postSoap } from '../helpers/soap-http';
import { signedEnvelope } from '../helpers/wss-client';

type Version = '1.1' | '1.2';

describe('security: signed responses verify in xmlsec1 and Apache Santuario', function () {
  this.timeout(120000);
  let pki: TestPki;
  let grid: GridProcess;
  const proxies: Record<'rsa' | 'ec', ProxyProcess | null> = { rsa: null, ec: null };

  before(async function () {
    requirePeer(this, 'xmlsec1', hasXmlsec1(), XMLSEC1_INSTALL);
    requirePeer(this, 'Apache Santuario (libxml-security-java)', hasSantuario(), SANTUARIO_INSTALL);
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
    for (const kind of ['rsa', 'ec'] as const) {
      const signing = kind === 'rsa' ? pki.proxyRsa : pki.proxyEc;
      proxies[kind] = await startProxyProcess(
        proxyConfig([grid.address], '', {
          security: {
            mode: 'wss',
            trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
            responseSigning: { enabled: true, certFile: signing.certFile, keyFile: signing.keyFile },
          },
        }),
      );
    }
  });

  after(async () => {
    await proxies.rsa?.stop();
    await proxies.ec?.stop();
    await grid?.stop();
  });

  /** Every kind of response a client meets, collected from one proxy in one SOAP version. */
  async function collect(url: string, version: Version): Promise<{ name: string; xml: string }[]> {
    const call = async (inner: string): Promise<{ status: number; text: string }> =>
      postSoap(
        url,
        signedEnvelope(inner, {
          soapVersion: version,
          certPem: pki.client.certPem,
          keyPem: pki.client.keyPem,
        }),
        {
          version,
        },
      );
    const out: { name: string; xml: string }[] = [];
    const connect = await call(
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
    );
    expect(connect.status).to.equal(200);
    out.push({ name: 'connect', xml: connect.text });
    const connectionId = pick(connect.text, 'connectionId')!;
    const session = await call(op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`));
    out.push({ name: 'createSession', xml: session.text });
    const sessionId = pick(session.text, 'sessionId')!;
    const send = await call(
      op(
        'sendTaskInput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:xml><p:order xmlns:p="urn:bank:orders" z="2" a="1">é &amp; ü</p:order></sym:xml></sym:taskInput></sym:taskSubmissionAttributes>`,
      ),
    );
    expect(send.status, send.text).to.equal(200);
    out.push({ name: 'sendTaskInput', xml: send.text });
    const fetched = await call(
      op(
        'fetchTaskOutput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>10</sym:countMax><sym:timeoutMillis>3000</sym:timeoutMillis>`,
      ),
    );
    expect(fetched.status).to.equal(200);
    out.push({ name: 'fetchTaskOutput (an XML payload from the grid)', xml: fetched.text });
    const fault = await call(op('getSessionStatus', '<sym:sessionId>no-such-session</sym:sessionId>'));
    expect(fault.status).to.not.equal(200);
    out.push({ name: 'UnknownSessionFault', xml: fault.text });
    const unsigned = await postSoap(
      url,
      `<s:Envelope xmlns:s="${version === '1.1' ? 'http://schemas.xmlsoap.org/soap/envelope/' : 'http://www.w3.org/2003/05/soap-envelope'}"><s:Body>${op('connect', '')}</s:Body></s:Envelope>`,
      { version },
    );
    out.push({ name: 'AuthenticationFault for an unsigned request', xml: unsigned.text });
    return out;
  }

  for (const kind of ['rsa', 'ec'] as const) {
    for (const version of ['1.1', '1.2'] as const) {
      it(`${kind === 'rsa' ? 'RSA-SHA256' : 'ECDSA-SHA256'} responses, SOAP ${version}: both peers accept every one`, async () => {
        const proxy = proxies[kind]!;
        const signing = kind === 'rsa' ? pki.proxyRsa : pki.proxyEc;
        const responses = await collect(proxy.url, version);
        for (const r of responses) {
          expect(r.xml, r.name).to.contain('<ds:SignatureValue>');
          const x = await verifyWithXmlsec1(r.xml, signing.certFile);
          expect(x.ok, `xmlsec1 refused ${r.name}: ${x.output}`).to.equal(true);
        }
        const java = await verifyManyWithSantuario(
          responses.map((r) => ({ envelopeXml: r.xml, signerCertPemFile: signing.certFile })),
        );
        java.forEach((v, i) =>
          expect(v.ok, `Santuario refused ${responses[i]!.name}: ${v.output}`).to.equal(true),
        );
      });
    }
  }

  it('a response altered in transit is refused by both peers', async () => {
    const [first] = await collect(proxies.rsa!.url, '1.1');
    const altered = first!.xml.replace(/<sym:connectionId>([^<]+)</, '<sym:connectionId>$1x<');
    expect(altered).to.not.equal(first!.xml);
    expect((await verifyWithXmlsec1(altered, pki.proxyRsa.certFile)).ok).to.equal(false);
    const [java] = await verifyManyWithSantuario([
      { envelopeXml: altered, signerCertPemFile: pki.proxyRsa.certFile },
    ]);
    expect(java!.ok).to.equal(false);
  });
});
