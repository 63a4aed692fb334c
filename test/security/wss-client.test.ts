/**
 * Self-test of the test-side signer (test/helpers/wss-client.ts): its envelopes have the shape
 * the proxy expects and verify in two independent XML-DSig implementations (xmlsec1 and, for
 * the position-checked BinarySecurityToken form, Apache Santuario), and its key references carry
 * the same values openssl computes. Without this the attack suite could pass or fail for the
 * wrong reason.
 */
import { expect } from 'chai';
import { verify, X509Certificate } from 'node:crypto';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { hasCommand, requirePeer } from '../helpers/peers';
import {
  hasSantuario,
  hasXmlsec1,
  runBounded,
  SANTUARIO_INSTALL,
  verifyManyWithSantuario,
  verifyWithXmlsec1,
  XMLSEC1_INSTALL,
} from '../helpers/signature-peers';
import {
  canonicalSignedInfo,
  childElementsNS,
  addBodyXPathTransform,
  DIGEST_METHODS,
  faultCodeOf,
  issuerName,
  NS,
  resignSignedInfo,
  serialDecimal,
  serializeXmlDoc,
  SIGNATURE_METHODS,
  signedEnvelope,
  signedParts,
  subjectKeyIdentifier,
  thumbprintSha1,
  URIS,
  type SignOptions,
} from '../helpers/wss-client';
import { GatewayError } from '../../src/errors/catalogue';
import { renderFault } from '../../src/soap/envelope';

const BODY = `<sym:getSessionStatus xmlns:sym="${NS.sym}"><sym:sessionId>s-1</sym:sessionId></sym:getSessionStatus>`;

function refs(xml: string): { uri: string; transforms: string[]; digest: string }[] {
  const p = signedParts(xml);
  return childElementsNS(p.signedInfo, NS.ds, 'Reference').map((r) => ({
    uri: r.getAttribute('URI') ?? '',
    transforms: childElementsNS(childElementsNS(r, NS.ds, 'Transforms')[0]!, NS.ds, 'Transform').map(
      (t) => t.getAttribute('Algorithm') ?? '',
    ),
    digest: childElementsNS(r, NS.ds, 'DigestMethod')[0]!.getAttribute('Algorithm') ?? '',
  }));
}

describe('security: test-side WS-Security signer (xml-crypto)', function () {
  this.timeout(60000);
  let pki: TestPki;

  before(async () => {
    pki = await makeTestPki();
  });

  it('builds Timestamp, BinarySecurityToken and Signature over exactly Body and Timestamp', () => {
    const xml = signedEnvelope(BODY, {
      certPem: pki.client.certPem,
      keyPem: pki.client.keyPem,
      created: new Date('2030-01-01T00:00:00.000Z'),
    });
    const p = signedParts(xml);
    const order: string[] = [];
    for (let n = p.security.firstChild; n; n = n.nextSibling) order.push(n.nodeName);
    expect(order).to.deep.equal(['wsu:Timestamp', 'wsse:BinarySecurityToken', 'ds:Signature']);
    expect(p.security.getAttributeNS(NS.soap11, 'mustUnderstand')).to.equal('1');
    expect(childElementsNS(p.timestamp!, NS.wsu, 'Created')[0]!.textContent).to.equal(
      '2030-01-01T00:00:00.000Z',
    );
    expect(childElementsNS(p.timestamp!, NS.wsu, 'Expires')[0]!.textContent).to.equal(
      '2030-01-01T00:05:00.000Z',
    );
    expect(p.bst!.getAttribute('ValueType')).to.equal(URIS.x509v3);
    expect(p.bst!.getAttribute('EncodingType')).to.equal(URIS.base64Binary);
    expect(
      Buffer.from(p.bst!.textContent!, 'base64').equals(new X509Certificate(pki.client.certPem).raw),
    ).to.equal(true);
    const bodyId = p.body.getAttributeNS(NS.wsu, 'Id');
    const tsId = p.timestamp!.getAttributeNS(NS.wsu, 'Id');
    expect(refs(xml)).to.deep.equal([
      { uri: `#${bodyId}`, transforms: [URIS.excC14n], digest: DIGEST_METHODS.sha256 },
      { uri: `#${tsId}`, transforms: [URIS.excC14n], digest: DIGEST_METHODS.sha256 },
    ]);
    const method = childElementsNS(p.signedInfo, NS.ds, 'SignatureMethod')[0]!.getAttribute('Algorithm');
    expect(method).to.equal(SIGNATURE_METHODS['rsa-sha256']);
    const str = childElementsNS(
      childElementsNS(p.signature, NS.ds, 'KeyInfo')[0]!,
      NS.wsse,
      'SecurityTokenReference',
    );
    const ref = childElementsNS(str[0]!, NS.wsse, 'Reference')[0]!;
    expect(ref.getAttribute('URI')).to.equal(`#${p.bst!.getAttributeNS(NS.wsu, 'Id')}`);
  });

  it('gives every envelope fresh ids, so equal requests never share a SignatureValue', () => {
    const opts = { certPem: pki.client.certPem, keyPem: pki.client.keyPem, created: new Date(0) };
    const a = signedParts(signedEnvelope(BODY, opts)).signatureValue.textContent;
    const b = signedParts(signedEnvelope(BODY, opts)).signatureValue.textContent;
    expect(a).to.not.equal(b);
  });

  it('ECDSA SignatureValue is raw r||s (64 bytes for P-256) and verifies as such', () => {
    const xml = signedEnvelope(BODY, {
      certPem: pki.ecClient.certPem,
      keyPem: pki.ecClient.keyPem,
      signatureAlgorithm: 'ecdsa-sha256',
    });
    const p = signedParts(xml);
    const value = Buffer.from(p.signatureValue.textContent!, 'base64');
    expect(value.length).to.equal(64);
    const key = new X509Certificate(pki.ecClient.certPem).publicKey;
    const ok = verify(
      'sha256',
      Buffer.from(canonicalSignedInfo(p)),
      { key, dsaEncoding: 'ieee-p1363' },
      value,
    );
    expect(ok).to.equal(true);
  });

  it('key references carry the values openssl computes', async function () {
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install -y openssl');
    const file = pki.client.certFile;
    const out = async (...args: string[]): Promise<string> => {
      const r = await runBounded('openssl', ['x509', '-in', file, '-noout', ...args], 15000);
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.trim();
    };
    const serialHex = (await out('-serial')).replace(/^serial=/, '');
    expect(serialDecimal(pki.client.certPem)).to.equal(BigInt(`0x${serialHex}`).toString(10));
    const issuer = (await out('-issuer', '-nameopt', 'RFC2253')).replace(/^issuer=/, '');
    expect(issuerName(pki.client.certPem)).to.equal(issuer);
    const ski = (await out('-ext', 'subjectKeyIdentifier')).split('\n')[1]!.trim().replace(/:/g, '');
    expect(subjectKeyIdentifier(pki.client.certPem).toString('hex').toUpperCase()).to.equal(
      ski.toUpperCase(),
    );
    const fp = (await out('-fingerprint', '-sha1')).replace(/^.*=/, '').replace(/:/g, '');
    expect(thumbprintSha1(pki.client.certPem).toString('hex').toUpperCase()).to.equal(fp);
  });

  describe('verified by xmlsec1', function () {
    before(function () {
      requirePeer(this, 'xmlsec1', hasXmlsec1(), XMLSEC1_INSTALL);
    });

    const variants: [string, (pki: TestPki) => SignOptions & { certFile: string }][] = [
      ['RSA-SHA256, BinarySecurityToken, SOAP 1.1', (k) => ({ ...k.client })],
      ['RSA-SHA256, BinarySecurityToken, SOAP 1.2', (k) => ({ ...k.client, soapVersion: '1.2' })],
      ['RSA-SHA256, issuer/serial', (k) => ({ ...k.client, keyReference: 'issuer-serial' })],
      ['RSA-SHA256, SubjectKeyIdentifier', (k) => ({ ...k.client, keyReference: 'ski' })],
      ['RSA-SHA256, ThumbprintSHA1', (k) => ({ ...k.client, keyReference: 'thumbprint' })],
      ['RSA-SHA512', (k) => ({ ...k.client, signatureAlgorithm: 'rsa-sha512' })],
      ['ECDSA-SHA256 (P-256)', (k) => ({ ...k.ecClient, signatureAlgorithm: 'ecdsa-sha256' })],
      [
        'ECDSA-SHA256, SOAP 1.2',
        (k) => ({ ...k.ecClient, signatureAlgorithm: 'ecdsa-sha256', soapVersion: '1.2' }),
      ],
      [
        'RSA-SHA1 with SHA-1 digests (for the algorithm-policy cases)',
        (k) => ({ ...k.client, signatureAlgorithm: 'rsa-sha1', digestAlgorithm: 'sha1' }),
      ],
      [
        'enveloped-signature transform on the Body reference',
        (k) => ({ ...k.client, bodyTransforms: [URIS.envelopedSignature, URIS.excC14n] }),
      ],
    ];
    for (const [name, make] of variants) {
      it(name, async () => {
        const opts = make(pki);
        const verdict = await verifyWithXmlsec1(signedEnvelope(BODY, opts), opts.certFile);
        expect(verdict.ok, verdict.output).to.equal(true);
      });
    }

    it('refuses a Body changed after signing (the check is not vacuous)', async () => {
      const xml = signedEnvelope(BODY, { ...pki.client }).replace('s-1', 's-2');
      const verdict = await verifyWithXmlsec1(xml, pki.client.certFile);
      expect(verdict.ok, verdict.output).to.equal(false);
    });

    it('refuses the signature under another certificate', async () => {
      const verdict = await verifyWithXmlsec1(
        signedEnvelope(BODY, { ...pki.client }),
        pki.otherClient.certFile,
      );
      expect(verdict.ok, verdict.output).to.equal(false);
    });

    it('resignSignedInfo yields a valid signature after SignedInfo was edited (XPath transform added)', async () => {
      const p = signedParts(signedEnvelope(BODY, { ...pki.client }));
      addBodyXPathTransform(p);
      const stale = await verifyWithXmlsec1(serializeXmlDoc(p.doc), pki.client.certFile);
      expect(stale.ok, 'SignedInfo edited without re-signing').to.equal(false);
      resignSignedInfo(p, pki.client.keyPem);
      const verdict = await verifyWithXmlsec1(serializeXmlDoc(p.doc), pki.client.certFile);
      expect(verdict.ok, verdict.output).to.equal(true);
    });
  });

  it('BinarySecurityToken envelopes pass a position-checking verifier (Apache Santuario)', async function () {
    requirePeer(this, 'Apache Santuario', hasSantuario(), SANTUARIO_INSTALL);
    this.timeout(120000);
    const items = [
      { opts: { ...pki.client }, file: pki.client.certFile },
      { opts: { ...pki.client, soapVersion: '1.2' as const }, file: pki.client.certFile },
      { opts: { ...pki.ecClient, signatureAlgorithm: 'ecdsa-sha256' as const }, file: pki.ecClient.certFile },
    ];
    const verdicts = await verifyManyWithSantuario(
      items.map((i) => ({ envelopeXml: signedEnvelope(BODY, i.opts), signerCertPemFile: i.file })),
    );
    verdicts.forEach((v, i) => expect(v.ok, `item ${i}: ${v.output}`).to.equal(true));
  });

  it('faultCodeOf reads SOAP 1.1 and 1.2 faults and ignores other replies', () => {
    const err = new GatewayError('SSP_NOT_OWNER', 'session s belongs to another consumer');
    expect(faultCodeOf(renderFault(err, '1.1', 'c-1').body)).to.deep.equal({
      detail: 'NotOwnerFault',
      code: 'SSP_NOT_OWNER',
    });
    const parserFault = new GatewayError('SSP_MALFORMED_XML', 'bad');
    expect(faultCodeOf(renderFault(parserFault, '1.2', 'c-2').body)).to.deep.equal({
      detail: 'ProxyFault',
      code: 'SSP_MALFORMED_XML',
    });
    expect(faultCodeOf(signedEnvelope(BODY, { ...pki.client }))).to.equal(undefined);
    expect(faultCodeOf('not xml')).to.equal(undefined);
  });
});
