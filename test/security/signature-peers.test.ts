/**
 * Self-test of the signature-verification harness, independent of the proxy: envelopes of the shape
 * the proxy will emit are signed here by xmlsec1 from a template, with throwaway keys made by the
 * openssl CLI, and then checked by both peers (xmlsec1 and Apache Santuario).
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand, requirePeer } from '../helpers/peers';
import {
  hasSantuario,
  hasXmlsec1,
  runBounded,
  SANTUARIO_INSTALL,
  verifyManyWithSantuario,
  verifyWithSantuario,
  verifyWithXmlsec1,
  XMLSEC1_ID_ATTRS,
  XMLSEC1_INSTALL,
  type PeerVerdict,
} from '../helpers/signature-peers';

const NS = {
  soap11: 'http://schemas.xmlsoap.org/soap/envelope/',
  soap12: 'http://www.w3.org/2003/05/soap-envelope',
  wsse: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd',
  wsu: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd',
  ds: 'http://www.w3.org/2000/09/xmldsig#',
};
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const X509V3 = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3';
const B64BIN =
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary';
const SIG_METHOD = {
  rsa: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  ec: 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
};
const BODY_TEXT = 'task 42 finished: 3.14159';
const EXPIRES = '2030-01-01T00:05:00Z';

type Soap = 'soap11' | 'soap12';
type Alg = 'rsa' | 'ec';

interface Signer {
  keyFile: string;
  certFile: string;
  certB64: string;
}

interface Case {
  name: string;
  soap: Soap;
  alg: Alg;
  xml: string;
}

/** Body carries `Id` unqualified instead of wsu:Id when bodyIdAttr says so (an xmlsec1 probe). */
function template(soap: Soap, alg: Alg, certB64: string, bodyIdAttr = 'wsu:Id'): string {
  const mustUnderstand = soap === 'soap11' ? '1' : 'true';
  const ref = (id: string): string =>
    `<ds:Reference URI="#${id}"><ds:Transforms><ds:Transform Algorithm="${EXC_C14N}"/></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue>` +
    `</ds:Reference>`;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<soap:Envelope xmlns:soap="${NS[soap]}" xmlns:wsse="${NS.wsse}" xmlns:wsu="${NS.wsu}">` +
    `<soap:Header><wsse:Security soap:mustUnderstand="${mustUnderstand}">` +
    `<wsu:Timestamp wsu:Id="TS-1"><wsu:Created>2030-01-01T00:00:00Z</wsu:Created>` +
    `<wsu:Expires>${EXPIRES}</wsu:Expires></wsu:Timestamp>` +
    `<wsse:BinarySecurityToken EncodingType="${B64BIN}" ValueType="${X509V3}" wsu:Id="X509-1">${certB64}` +
    `</wsse:BinarySecurityToken>` +
    `<ds:Signature xmlns:ds="${NS.ds}"><ds:SignedInfo>` +
    `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"/><ds:SignatureMethod Algorithm="${SIG_METHOD[alg]}"/>` +
    `${ref('Body-1')}${ref('TS-1')}</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>` +
    `<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-1" ValueType="${X509V3}"/>` +
    `</wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature></wsse:Security></soap:Header>` +
    `<soap:Body ${bodyIdAttr}="Body-1"><m:TaskResult xmlns:m="urn:symphony-soap-proxy:test">` +
    `<m:Output>${BODY_TEXT}</m:Output></m:TaskResult></soap:Body></soap:Envelope>\n`
  );
}

/** Cuts the envelope into head, Body element and tail (our own fixtures: one Body, prefix soap). */
function splitBody(xml: string): { head: string; body: string; tail: string } {
  const start = xml.indexOf('<soap:Body');
  const end = xml.indexOf('</soap:Body>') + '</soap:Body>'.length;
  expect(start, 'Body start').to.be.greaterThan(0);
  expect(end, 'Body end').to.be.greaterThan(start);
  return { head: xml.slice(0, start), body: xml.slice(start, end), tail: xml.slice(end) };
}

function replaceOnce(xml: string, from: string, to: string): string {
  const at = xml.indexOf(from);
  expect(at, `fixture contains ${from}`).to.be.at.least(0);
  return xml.slice(0, at) + to + xml.slice(at + from.length);
}

function expectOk(v: PeerVerdict, who: string): void {
  expect(v.ok, `${who} should accept:\n${v.output}`).to.equal(true);
}

function expectRefused(v: PeerVerdict, who: string): void {
  expect(v.ok, `${who} should refuse:\n${v.output}`).to.equal(false);
}

describe('security: independent signature verifiers (xmlsec1, Apache Santuario)', function () {
  this.timeout(120000);
  let dir = '';
  const signers: Partial<Record<Alg, Signer>> = {};
  const cases: Case[] = [];

  function signer(alg: Alg): Signer {
    const s = signers[alg];
    if (!s) throw new Error(`no ${alg} signer`);
    return s;
  }

  async function run(cmd: string, args: string[]): Promise<void> {
    const r = await runBounded(cmd, args, 30000);
    // stderr only: openssl/xmlsec1 never print key material there.
    expect(r.code, `${cmd} ${args[0]} failed: ${r.stderr}`).to.equal(0);
  }

  async function makeSigner(alg: Alg, name: string = alg): Promise<Signer> {
    const keyFile = join(dir, `${name}.key`);
    const certFile = join(dir, `${name}.crt`);
    const keyArgs = alg === 'rsa' ? ['rsa:2048'] : ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    await run('openssl', [
      'req',
      '-x509',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=throwaway-${name}`,
      '-newkey',
      ...keyArgs,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
    const pem = readFileSync(certFile, 'utf8');
    const certB64 = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    return { keyFile, certFile, certB64 };
  }

  async function sign(tmpl: string, alg: Alg): Promise<string> {
    const input = join(dir, 'template.xml');
    const output = join(dir, 'signed.xml');
    writeFileSync(input, tmpl);
    await run('xmlsec1', [
      '--sign',
      '--privkey-pem',
      signer(alg).keyFile,
      ...XMLSEC1_ID_ATTRS,
      '--output',
      output,
      input,
    ]);
    return readFileSync(output, 'utf8');
  }

  before(async function () {
    requirePeer(this, 'xmlsec1', hasXmlsec1(), XMLSEC1_INSTALL);
    requirePeer(this, 'Apache Santuario (libxml-security-java on a JDK)', hasSantuario(), SANTUARIO_INSTALL);
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install -y openssl');
    dir = mkdtempSync(join(tmpdir(), 'ssp-sigtest-'));
    signers.rsa = await makeSigner('rsa');
    signers.ec = await makeSigner('ec');
    for (const soap of ['soap11', 'soap12'] as const) {
      for (const alg of ['rsa', 'ec'] as const) {
        const xml = await sign(template(soap, alg, signer(alg).certB64), alg);
        cases.push({
          name: `${soap === 'soap11' ? 'SOAP 1.1' : 'SOAP 1.2'} ${alg.toUpperCase()}`,
          soap,
          alg,
          xml,
        });
      }
    }
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs all four fixtures (SOAP 1.1/1.2 x RSA/ECDSA) with filled-in digests and signature', () => {
    expect(cases).to.have.length(4);
    for (const c of cases) {
      expect(c.xml, c.name).to.not.contain('<ds:DigestValue></ds:DigestValue>');
      expect(c.xml, c.name).to.not.contain('<ds:SignatureValue></ds:SignatureValue>');
      expect(c.xml, c.name).to.contain(SIG_METHOD[c.alg]);
      expect(c.xml, c.name).to.contain(NS[c.soap]);
    }
  });

  it('xmlsec1 accepts every fixture', async () => {
    for (const c of cases)
      expectOk(await verifyWithXmlsec1(c.xml, signer(c.alg).certFile), `xmlsec1 ${c.name}`);
  });

  it('Santuario accepts every fixture (one call, and one JVM for many)', async () => {
    const first = cases[0];
    expectOk(await verifyWithSantuario(first.xml, signer(first.alg).certFile), `Santuario ${first.name}`);
    const many = await verifyManyWithSantuario(
      cases.map((c) => ({ envelopeXml: c.xml, signerCertPemFile: signer(c.alg).certFile })),
    );
    expect(many).to.have.length(cases.length);
    many.forEach((v, i) => expectOk(v, `Santuario ${cases[i].name}`));
  });

  it('both refuse a signature checked against another key', async () => {
    const c = cases[0];
    const other = signer(c.alg === 'rsa' ? 'ec' : 'rsa').certFile;
    expectRefused(await verifyWithXmlsec1(c.xml, other), 'xmlsec1');
    const v = await verifyWithSantuario(c.xml, other);
    expect(v.output).to.equal('FAIL: BinarySecurityToken certificate is not the signer certificate');
  });

  it('both refuse an RSA signature whose token and given cert are another RSA key', async () => {
    const impostor = await makeSigner('rsa', 'rsa-impostor');
    // Signed with the real RSA key, but the token (and the cert handed to the peers) is the impostor's.
    const xml = await sign(template('soap11', 'rsa', impostor.certB64), 'rsa');
    expectRefused(await verifyWithXmlsec1(xml, impostor.certFile), 'xmlsec1');
    const v = await verifyWithSantuario(xml, impostor.certFile);
    expect(v.output).to.equal("FAIL: SignatureValue does not verify with the signer certificate's key");
  });

  describe('tampering', () => {
    const tampers: { name: string; apply: (xml: string) => string }[] = [
      {
        name: 'one character of the Body text changed',
        apply: (xml) => replaceOnce(xml, BODY_TEXT, BODY_TEXT.replace('42', '43')),
      },
      {
        name: "the Body's content moved into a header element",
        apply: (xml) => {
          const { head, body, tail } = splitBody(xml);
          const open = body.slice(0, body.indexOf('>') + 1);
          const content = body.slice(open.length, body.length - '</soap:Body>'.length);
          const moved = replaceOnce(
            head,
            '<soap:Header>',
            `<soap:Header><x:Moved xmlns:x="urn:x">${content}</x:Moved>`,
          );
          return `${moved}${open}</soap:Body>${tail}`;
        },
      },
      {
        name: 'the Timestamp Expires changed',
        apply: (xml) => replaceOnce(xml, EXPIRES, '2031-01-01T00:05:00Z'),
      },
    ];

    for (const t of tampers) {
      it(`both refuse: ${t.name}`, async () => {
        const tampered = cases.map((c) => ({ c, xml: t.apply(c.xml) }));
        for (const { c, xml } of tampered) {
          expect(xml, c.name).to.not.equal(c.xml);
          expectRefused(await verifyWithXmlsec1(xml, signer(c.alg).certFile), `xmlsec1 ${c.name}`);
        }
        const verdicts = await verifyManyWithSantuario(
          tampered.map(({ c, xml }) => ({ envelopeXml: xml, signerCertPemFile: signer(c.alg).certFile })),
        );
        verdicts.forEach((v, i) => {
          expectRefused(v, `Santuario ${tampered[i].c.name}`);
          // A refusal for the crypto, not for a harness error (compile failure, timeout, ...).
          expect(v.output, tampered[i].c.name).to.match(/^FAIL: (digest mismatch|SignatureValue)/);
        });
      });
    }
  });

  describe('wrapping: the signed Body moved into a header wrapper, a new Body dispatched', () => {
    function wrap(xml: string, newBody: string): string {
      const { head, body, tail } = splitBody(xml);
      const wrapped = `<soap:Header><w:Wrapper xmlns:w="urn:wrap">${body}</w:Wrapper>`;
      return replaceOnce(head, '<soap:Header>', wrapped) + newBody + tail;
    }

    it('the Java coverage check refuses a signature over a different element than the dispatched Body', async () => {
      const evil = cases.map((c) => ({
        c,
        xml: wrap(c.xml, '<soap:Body wsu:Id="Body-2"><m:Evil xmlns:m="urn:evil"/></soap:Body>'),
      }));
      const verdicts = await verifyManyWithSantuario(
        evil.map(({ c, xml }) => ({ envelopeXml: xml, signerCertPemFile: signer(c.alg).certFile })),
      );
      verdicts.forEach((v, i) => {
        expectRefused(v, `Santuario ${evil[i].c.name}`);
        expect(v.output).to.equal('FAIL: reference #Body-1 does not cover the dispatched Body or Timestamp');
      });
      // xmlsec1 registers every soap:Body's Id, so the moved Body still verifies there: the
      // cryptography is intact and only a coverage check can catch this.
      for (const { c, xml } of evil) {
        expectOk(
          await verifyWithXmlsec1(xml, signer(c.alg).certFile),
          `xmlsec1 ${c.name} (no coverage check)`,
        );
      }
    });

    it('refuses a new empty Body without an Id, and one reusing the signed Id', async () => {
      const c = cases[0];
      const cert = signer(c.alg).certFile;
      const [noId, dupId] = await verifyManyWithSantuario([
        { envelopeXml: wrap(c.xml, '<soap:Body/>'), signerCertPemFile: cert },
        { envelopeXml: wrap(c.xml, '<soap:Body wsu:Id="Body-1"/>'), signerCertPemFile: cert },
      ]);
      expect(noId.output).to.equal('FAIL: Body has no wsu:Id');
      expect(dupId.output).to.equal('FAIL: Id Body-1 is used on more than one element');
      // libxml2 refuses the duplicate ID when xmlsec1 registers it.
      expectRefused(
        await verifyWithXmlsec1(wrap(c.xml, '<soap:Body wsu:Id="Body-1"/>'), cert),
        'xmlsec1 dup Id',
      );
    });
  });

  describe('how xmlsec1 1.2.37 --id-attr matches the namespaced wsu:Id', () => {
    it('--id-attr:Id matches wsu:Id by local name; --id-attr:wsu:Id and no --id-attr do not', async () => {
      const c = cases[0];
      const cert = signer(c.alg).certFile;
      expectOk(await verifyWithXmlsec1(c.xml, cert, XMLSEC1_ID_ATTRS), 'xmlsec1 --id-attr:Id');
      const prefixed = XMLSEC1_ID_ATTRS.map((a) => (a === '--id-attr:Id' ? '--id-attr:wsu:Id' : a));
      const v = await verifyWithXmlsec1(c.xml, cert, prefixed);
      expectRefused(v, 'xmlsec1 --id-attr:wsu:Id');
      expect(v.output).to.contain("xpointer(id('"); // the #id did not resolve
      expectRefused(await verifyWithXmlsec1(c.xml, cert, []), 'xmlsec1 without --id-attr');
    });

    it('the element namespace must match: a SOAP 1.2 Body is not registered by the SOAP 1.1 rule', async () => {
      const c = cases.find((x) => x.soap === 'soap12');
      if (!c) throw new Error('no SOAP 1.2 fixture');
      const only11 = ['--id-attr:Id', `${NS.soap11}:Body`, '--id-attr:Id', `${NS.wsu}:Timestamp`];
      expectOk(
        await verifyWithXmlsec1(cases[0].xml, signer(cases[0].alg).certFile, only11),
        'xmlsec1 SOAP 1.1',
      );
      expectRefused(
        await verifyWithXmlsec1(c.xml, signer(c.alg).certFile, only11),
        'xmlsec1 SOAP 1.1 rule only',
      );
    });

    it("the attribute's namespace is ignored: an unqualified Id on Body also verifies (Santuario refuses it)", async () => {
      const xml = await sign(template('soap11', 'rsa', signer('rsa').certB64, 'Id'), 'rsa');
      expectOk(await verifyWithXmlsec1(xml, signer('rsa').certFile), 'xmlsec1 unqualified Id');
      const v = await verifyWithSantuario(xml, signer('rsa').certFile);
      expect(v.output).to.equal('FAIL: Body has no wsu:Id');
    });
  });
});
