import 'reflect-metadata';
import { expect } from 'chai';
import { createHash, KeyObject, sign } from 'node:crypto';
import * as ocsp from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
import { parseConfig } from '../config';
import { GatewayError } from '../errors/catalogue';
import { log, setLogLevel } from '../log';
import {
  buildOcspRequest,
  checkOcspResponse,
  OcspChecker,
  OcspResponseError,
  type OcspStatus,
  type ResponseExpectation,
} from './ocsp';
import type { TrustedSigner } from './truststore';
import { mint, type Minted } from '../../test/helpers/mint';

const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const MIN = 60_000;

interface ResponseSpec {
  /** The certificate answered for (its CertID is taken from our own request). */
  about: Minted;
  issuer: Minted;
  signer: Minted;
  status?: 'good' | 'revoked' | 'unknown';
  thisUpdate?: Date;
  nextUpdate?: Date | null;
  nonce?: Buffer;
  certs?: Minted[];
  responderByKey?: boolean;
  sha1?: boolean;
}

/** A DER OCSPResponse as a responder would send it, signed by spec.signer. */
function respond(spec: ResponseSpec): Buffer {
  const req = AsnConvert.parse(buildOcspRequest(spec.about.x509, spec.issuer.x509), ocsp.OCSPRequest);
  const certID = req.tbsRequest.requestList[0]!.reqCert;
  const status = spec.status ?? 'good';
  const certStatus =
    status === 'good'
      ? new ocsp.CertStatus({ good: null })
      : status === 'unknown'
        ? new ocsp.CertStatus({ unknown: null })
        : new ocsp.CertStatus({
            revoked: new ocsp.RevokedInfo({
              revocationTime: new Date(Date.now() - 10 * MIN),
              revocationReason: new asn1.CRLReason(asn1.CRLReasons.keyCompromise),
            }),
          });
  const signerAsn = AsnConvert.parse(spec.signer.cert.rawData, asn1.Certificate);
  const responderID = spec.responderByKey
    ? new ocsp.ResponderID({
        byKey: new ocsp.KeyHash(
          createHash('sha1')
            .update(Buffer.from(signerAsn.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey))
            .digest(),
        ),
      })
    : new ocsp.ResponderID({ byName: signerAsn.tbsCertificate.subject });
  const nextUpdate = spec.nextUpdate === undefined ? new Date(Date.now() + 10 * MIN) : spec.nextUpdate;
  const data = new ocsp.ResponseData({
    responderID,
    producedAt: new Date(),
    responses: [
      new ocsp.SingleResponse({
        certID,
        certStatus,
        thisUpdate: spec.thisUpdate ?? new Date(Date.now() - MIN),
        ...(nextUpdate ? { nextUpdate } : {}),
      }),
    ],
  });
  if (spec.nonce) {
    data.responseExtensions = [
      new asn1.Extension({
        extnID: ocsp.id_pkix_ocsp_nonce,
        extnValue: new OctetString(AsnConvert.serialize(new OctetString(spec.nonce))),
      }),
    ];
  }
  const tbs = Buffer.from(AsnConvert.serialize(data));
  const key = KeyObject.from(spec.signer.keys.privateKey);
  const basic = new ocsp.BasicOCSPResponse({
    tbsResponseData: data,
    signatureAlgorithm: new asn1.AlgorithmIdentifier({
      algorithm: spec.sha1 ? '1.2.840.10045.4.1' : '1.2.840.10045.4.3.2',
    }),
    signature: new Uint8Array(sign(spec.sha1 ? 'sha1' : 'sha256', tbs, key)).buffer,
    ...(spec.certs
      ? { certs: spec.certs.map((c) => AsnConvert.parse(c.cert.rawData, asn1.Certificate)) }
      : {}),
  });
  return Buffer.from(
    AsnConvert.serialize(
      new ocsp.OCSPResponse({
        responseStatus: ocsp.OCSPResponseStatus.successful,
        responseBytes: new ocsp.ResponseBytes({
          responseType: ocsp.id_pkix_ocsp_basic,
          response: new OctetString(AsnConvert.serialize(basic)),
        }),
      }),
    ),
  );
}

describe('security/ocsp: request encoding and response checking (no responder)', function () {
  this.timeout(20_000);
  let ca: Minted;
  let otherCa: Minted;
  let leaf: Minted;
  let other: Minted;
  let delegated: Minted;
  let delegatedNoEku: Minted;
  let foreignResponder: Minted;
  let expiredResponder: Minted;

  before(async () => {
    ca = await mint({ subject: 'O=Bank, CN=OCSP Test CA', ca: true });
    otherCa = await mint({ subject: 'O=Bank, CN=OCSP Test CA', ca: true }); // same name, other key
    leaf = await mint({ subject: 'O=Bank, CN=client', issuer: ca, aiaOcsp: 'http://ocsp.bank.example/' });
    other = await mint({ subject: 'O=Bank, CN=other', issuer: ca });
    delegated = await mint({ subject: 'O=Bank, CN=responder', issuer: ca, eku: [OCSP_SIGNING] });
    delegatedNoEku = await mint({ subject: 'O=Bank, CN=responder-no-eku', issuer: ca });
    foreignResponder = await mint({ subject: 'O=Bank, CN=responder', issuer: otherCa, eku: [OCSP_SIGNING] });
    expiredResponder = await mint({
      subject: 'O=Bank, CN=responder-expired',
      issuer: ca,
      eku: [OCSP_SIGNING],
      notAfter: new Date(Date.now() - 10 * MIN),
    });
  });

  const expectation = (o: Partial<ResponseExpectation> = {}): ResponseExpectation => ({
    cert: leaf.x509,
    issuer: ca.x509,
    now: Date.now(),
    skewMs: MIN,
    maxAgeMs: 5 * MIN,
    allowSha1: false,
    ...o,
  });
  const judge = (der: Buffer, o: Partial<ResponseExpectation> = {}): OcspStatus | string => {
    try {
      return checkOcspResponse(der, expectation(o));
    } catch (e) {
      if (e instanceof OcspResponseError) return e.message;
      throw e;
    }
  };

  it('encodes the CertID as RFC 6960 wants it: SHA-1 of the issuer name DER and key bits, the serial', () => {
    const nonce = Buffer.alloc(32, 7);
    const req = AsnConvert.parse(buildOcspRequest(leaf.x509, ca.x509, nonce), ocsp.OCSPRequest);
    expect(req.tbsRequest.requestList).to.have.length(1);
    const id = req.tbsRequest.requestList[0]!.reqCert;
    const caAsn = AsnConvert.parse(ca.cert.rawData, asn1.Certificate);
    const sha1 = (b: ArrayBuffer): string => createHash('sha1').update(Buffer.from(b)).digest('hex');
    expect(id.hashAlgorithm.algorithm).to.equal('1.3.14.3.2.26');
    expect(Buffer.from(id.issuerNameHash.buffer).toString('hex')).to.equal(
      sha1(ca.cert.subjectName.toArrayBuffer()),
    );
    expect(Buffer.from(id.issuerKeyHash.buffer).toString('hex')).to.equal(
      sha1(caAsn.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey),
    );
    expect(Buffer.from(id.serialNumber).toString('hex')).to.equal(leaf.cert.serialNumber);
    const ext = req.tbsRequest.requestExtensions?.[0];
    expect(ext?.extnID).to.equal('1.3.6.1.5.5.7.48.1.2');
    expect(AsnConvert.parse(ext!.extnValue.buffer, OctetString).buffer).to.deep.equal(
      new Uint8Array(nonce).buffer,
    );
    const plain = AsnConvert.parse(buildOcspRequest(leaf.x509, ca.x509), ocsp.OCSPRequest);
    expect(plain.tbsRequest.requestExtensions, 'no nonce unless asked').to.equal(undefined);
  });

  it('accepts good, revoked (with reason) and unknown answers signed by the issuing CA', () => {
    expect(judge(respond({ about: leaf, issuer: ca, signer: ca }))).to.include({ status: 'good' });
    const revoked = judge(respond({ about: leaf, issuer: ca, signer: ca, status: 'revoked' }));
    expect(revoked).to.include({ status: 'revoked', reason: 'keyCompromise' });
    expect(judge(respond({ about: leaf, issuer: ca, signer: ca, status: 'unknown' }))).to.include({
      status: 'unknown',
    });
    expect(judge(respond({ about: leaf, issuer: ca, signer: ca, responderByKey: true }))).to.include({
      status: 'good',
    });
  });

  it('accepts a delegated responder the CA issued with id-kp-OCSPSigning; refuses other delegates', () => {
    expect(judge(respond({ about: leaf, issuer: ca, signer: delegated, certs: [delegated] }))).to.include({
      status: 'good',
    });
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: delegatedNoEku, certs: [delegatedNoEku] })),
    ).to.equal(
      'the responder certificate CN=responder-no-eku,O=Bank lacks the OCSPSigning extended key usage',
    );
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: foreignResponder, certs: [foreignResponder] })),
      'same-name responder from another CA',
    ).to.equal(
      'the response is signed by CN=responder,O=Bank, which was not issued by CN=OCSP Test CA,O=Bank',
    );
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: expiredResponder, certs: [expiredResponder] })),
    ).to.match(/responder-expired.* is outside its validity period/);
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: delegated })),
      'responder certificate not included',
    ).to.match(/signed neither by CN=OCSP Test CA,O=Bank nor by a responder certificate it included/);
  });

  it('refuses a response signed by a key that is not the CA’s (same name)', () => {
    expect(judge(respond({ about: leaf, issuer: ca, signer: otherCa }))).to.equal(
      'the response signature does not verify with CN=OCSP Test CA,O=Bank',
    );
  });

  it('refuses an answer about another certificate, stale or future answers, SHA-1 unless allowed', () => {
    expect(judge(respond({ about: other, issuer: ca, signer: ca }))).to.equal(
      'the response holds no answer for this certificate',
    );
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: ca, nextUpdate: new Date(Date.now() - 2 * MIN) })),
    ).to.match(/^the response is stale \(nextUpdate/);
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: ca, nextUpdate: new Date(Date.now() - MIN / 2) })),
      'within the skew',
    ).to.include({ status: 'good' });
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: ca, thisUpdate: new Date(Date.now() + 2 * MIN) })),
    ).to.equal('the response thisUpdate lies in the future');
    const noNext = respond({
      about: leaf,
      issuer: ca,
      signer: ca,
      nextUpdate: null,
      thisUpdate: new Date(Date.now() - 10 * MIN),
    });
    expect(judge(noNext)).to.match(/stale \(thisUpdate .*, no nextUpdate\)/);
    expect(judge(noNext, { maxAgeMs: 60 * MIN })).to.include({ status: 'good' });
    const sha1 = respond({ about: leaf, issuer: ca, signer: ca, sha1: true });
    expect(judge(sha1)).to.match(/signed with SHA-1, which is refused/);
    expect(judge(sha1, { allowSha1: true })).to.include({ status: 'good' });
  });

  it('requires the nonce we sent to come back unchanged', () => {
    const nonce = Buffer.alloc(32, 1);
    expect(judge(respond({ about: leaf, issuer: ca, signer: ca, nonce }), { nonce })).to.include({
      status: 'good',
    });
    expect(judge(respond({ about: leaf, issuer: ca, signer: ca }), { nonce })).to.match(
      /does not echo our nonce/,
    );
    expect(
      judge(respond({ about: leaf, issuer: ca, signer: ca, nonce: Buffer.alloc(32, 2) }), { nonce }),
    ).to.match(/different nonce/);
  });

  it('refuses non-successful and malformed responses', () => {
    const tryLater = Buffer.from(
      AsnConvert.serialize(new ocsp.OCSPResponse({ responseStatus: ocsp.OCSPResponseStatus.tryLater })),
    );
    expect(judge(tryLater)).to.equal('the responder answered tryLater');
    expect(judge(Buffer.from('<html>proxy error</html>'))).to.match(
      /^the response is not a DER OCSPResponse/,
    );
    const good = respond({ about: leaf, issuer: ca, signer: ca });
    const flipped = Buffer.from(good);
    flipped[flipped.length - 5]! ^= 1; // inside the signature
    expect(judge(flipped)).to.match(/signature does not verify|cannot be checked/);
  });

  it('config: security.trust.ocsp is off by default, fails closed, and refuses unknown keys', () => {
    const base = { trust: { caFiles: ['ca.pem'] }, responseSigning: { enabled: false } };
    expect(parseConfig({ security: base, grid: { embedded: true } }).security.trust.ocsp).to.deep.equal({
      enabled: false,
      failMode: 'closed',
      timeoutMs: 3000,
      cacheSeconds: 300,
      nonce: false,
    });
    const withOcsp = (ocsp: unknown): unknown => ({
      security: { ...base, trust: { caFiles: ['ca.pem'], ocsp } },
      grid: { embedded: true },
    });
    expect(() => parseConfig(withOcsp({ failmode: 'open' }))).to.throw(/failmode/);
    expect(() => parseConfig(withOcsp({ responderUrl: 'ldap://ocsp.bank.example' }))).to.throw(
      /responderUrl/,
    );
    expect(
      parseConfig(withOcsp({ enabled: true, responderUrl: 'http://ocsp.bank.example/' })).security.trust.ocsp,
    ).to.include({ enabled: true, responderUrl: 'http://ocsp.bank.example/' });
  });

  it('OcspChecker: no responder URL and failMode closed → SSP_WSS_REVOCATION_UNAVAILABLE; open → accepted', async () => {
    const signer = { cert: other.x509, subject: 'CN=other,O=Bank', issuer: ca.x509 } as TrustedSigner;
    const cfg = {
      enabled: true,
      failMode: 'closed' as const,
      timeoutMs: 500,
      cacheSeconds: 60,
      nonce: false,
    };
    const closed = new OcspChecker(cfg, { skewSeconds: 60, allowSha1: false });
    const open = new OcspChecker({ ...cfg, failMode: 'open' }, { skewSeconds: 60, allowSha1: false });
    const level = log.level;
    setLogLevel('error'); // the two warnings are expected
    let err: unknown;
    try {
      err = await closed.check(signer).then(
        () => null,
        (e: unknown) => e,
      );
      await open.check(signer);
    } finally {
      setLogLevel(level);
    }
    expect(err).to.be.instanceOf(GatewayError);
    expect((err as GatewayError).code).to.equal('SSP_WSS_REVOCATION_UNAVAILABLE');
    expect((err as GatewayError).message).to.match(
      /names no OCSP responder and security.trust.ocsp.responderUrl is not set/,
    );
    expect((err as GatewayError).retryable).to.equal(true);
    const anchorSigner = { cert: other.x509, subject: 'CN=other,O=Bank' } as TrustedSigner;
    await closed.check(anchorSigner); // a pinned anchor has no issuer to ask: nothing to check
  });
});
