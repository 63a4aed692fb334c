/**
 * Optional online revocation checking of the signing certificate (RFC 6960), after the trust
 * store has built and judged its chain. Asks the responder named in `security.trust.ocsp` or in
 * the certificate's Authority Information Access extension, over HTTP POST.
 *
 * An answer is used only when it checks out: responseStatus successful, a basic response signed
 * by the issuing CA itself or by a responder certificate that CA issued for OCSP signing
 * (id-kp-OCSPSigning), a SingleResponse for exactly our CertID, thisUpdate/nextUpdate around now
 * (within the clock skew), and our nonce echoed when we sent one. Then 'good' accepts and
 * 'revoked' refuses. Anything else ('unknown', no answer, a malformed or badly signed one) is
 * decided by failMode: 'closed' refuses, 'open' accepts and logs a warning.
 *
 * Good and revoked answers are cached per (issuing CA, serial) until their nextUpdate, at most
 * cacheSeconds; concurrent requests for one certificate share one responder call; a failure is
 * remembered for a few seconds so that a dead responder costs one timeout per certificate per
 * few seconds, not one per request.
 *
 * Only the signer certificate is asked about; CA certificates in the chain are covered by the
 * configured CRLs. A delegated responder's own certificate is not checked for revocation
 * (RFC 6960 4.2.2.2.1: CAs give it a short life or id-pkix-ocsp-nocheck).
 */
import 'reflect-metadata';
import { createHash, randomBytes, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import * as ocsp from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
import * as px509 from '@peculiar/x509';
import { GatewayError } from '../errors/catalogue';
import { log } from '../log';
import { rfc4514FromNode } from './dn';
import type { TrustedSigner } from './truststore';

export interface OcspConfig {
  enabled: boolean;
  responderUrl?: string | undefined;
  failMode: 'open' | 'closed';
  timeoutMs: number;
  cacheSeconds: number;
  nonce: boolean;
}

export interface OcspPolicy {
  /** Tolerated clock difference with the responder (security.timestamp.skewSeconds). */
  skewSeconds: number;
  /** Accept responses signed with SHA-1 (security.algorithms.allowSha1). */
  allowSha1: boolean;
}

/** The revocation check the verifier runs once the signature is known to be good. */
export interface RevocationCheck {
  check(signer: TrustedSigner, now?: number): Promise<void>;
}

export type OcspStatus =
  | { status: 'good'; thisUpdate: Date; nextUpdate?: Date | undefined }
  | {
      status: 'revoked';
      thisUpdate: Date;
      nextUpdate?: Date | undefined;
      revocationTime: Date;
      reason: string | undefined;
    }
  | { status: 'unknown'; thisUpdate: Date; nextUpdate?: Date | undefined };

const OID_SHA1 = '1.3.14.3.2.26';
const HASHES: Record<string, string> = {
  [OID_SHA1]: 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithm OID → Node hash name (null: the key decides, Ed25519). */
const SIGNATURES: Record<string, string | null> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
};
const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'unused(7)',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];
const MAX_RESPONSE_BYTES = 1 << 20;
const MAX_CACHED = 10_000;
/** How long a failed or 'unknown' answer stands before the responder is asked again. */
export const RETRY_AFTER_FAILURE_MS = 5000;

const hash = (alg: string, data: Buffer | ArrayBuffer): Buffer =>
  createHash(alg)
    .update(Buffer.from(data as ArrayBuffer))
    .digest();
const der = (value: unknown): Buffer => Buffer.from(AsnConvert.serialize(value));

interface CertIdInput {
  /** DER of the issuer's subject (= the certificate's issuer field). */
  issuerName: Buffer;
  /** The issuer's subjectPublicKey BIT STRING contents. */
  issuerKey: Buffer;
  /** The certificate's serialNumber INTEGER contents. */
  serial: Buffer;
}

function certIdInput(cert: X509Certificate, issuer: X509Certificate): CertIdInput {
  const c = AsnConvert.parse(cert.raw, asn1.Certificate);
  const i = AsnConvert.parse(issuer.raw, asn1.Certificate);
  return {
    issuerName: der(i.tbsCertificate.subject),
    issuerKey: Buffer.from(i.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey),
    serial: Buffer.from(c.tbsCertificate.serialNumber),
  };
}

function makeCertId(input: CertIdInput, hashOid = OID_SHA1): ocsp.CertID {
  const alg = HASHES[hashOid]!;
  return new ocsp.CertID({
    // SHA-1 is what every responder matches (RFC 5019 2.1.1); it identifies, it does not protect.
    hashAlgorithm: new asn1.AlgorithmIdentifier({
      algorithm: hashOid,
      parameters: new Uint8Array([5, 0]).buffer,
    }),
    issuerNameHash: new OctetString(hash(alg, input.issuerName)),
    issuerKeyHash: new OctetString(hash(alg, input.issuerKey)),
    serialNumber: new Uint8Array(input.serial).buffer,
  });
}

/** The DER OCSPRequest for `cert`, issued by `issuer`, with a nonce extension when given one. */
export function buildOcspRequest(cert: X509Certificate, issuer: X509Certificate, nonce?: Buffer): Buffer {
  const tbs = new ocsp.TBSRequest({
    requestList: [new ocsp.Request({ reqCert: makeCertId(certIdInput(cert, issuer)) })],
  });
  if (nonce) {
    tbs.requestExtensions = [
      new asn1.Extension({
        extnID: ocsp.id_pkix_ocsp_nonce,
        critical: false,
        extnValue: new OctetString(der(new OctetString(nonce))),
      }),
    ];
  }
  return der(new ocsp.OCSPRequest({ tbsRequest: tbs }));
}

export interface ResponseExpectation {
  cert: X509Certificate;
  issuer: X509Certificate;
  /** The nonce we sent, which must come back. */
  nonce?: Buffer | undefined;
  now: number;
  skewMs: number;
  /** How long a response without nextUpdate counts as current after its thisUpdate. */
  maxAgeMs: number;
  allowSha1: boolean;
}

/** Why a response cannot be used (malformed, not from the right signer, stale, not ours). */
export class OcspResponseError extends Error {}

const bad = (m: string): OcspResponseError => new OcspResponseError(m);

function sameBytes(a: ArrayBuffer | Buffer, b: ArrayBuffer | Buffer): boolean {
  return Buffer.from(a as ArrayBuffer).equals(Buffer.from(b as ArrayBuffer));
}

function hasOcspSigning(cert: X509Certificate): boolean {
  const eku = new px509.X509Certificate(cert.raw).getExtension(px509.ExtendedKeyUsageExtension);
  return eku?.usages.some((u) => u === ocsp.id_kp_OCSPSigning) ?? false;
}

function responderIs(rid: ocsp.ResponderID, cert: X509Certificate): boolean {
  const c = AsnConvert.parse(cert.raw, asn1.Certificate);
  if (rid.byKey) {
    return sameBytes(rid.byKey.buffer, hash('sha1', c.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey));
  }
  if (rid.byName) return der(rid.byName).equals(der(c.tbsCertificate.subject));
  return false;
}

/** The certificate whose key signed the response: the CA, or a responder the CA delegated to. */
function responseSigner(basic: ocsp.BasicOCSPResponse, e: ResponseExpectation): X509Certificate {
  const rid = basic.tbsResponseData.responderID;
  if (responderIs(rid, e.issuer)) return e.issuer;
  const issuerName = rfc4514FromNode(e.issuer.subject);
  for (const c of basic.certs ?? []) {
    const cert = new X509Certificate(der(c));
    if (!responderIs(rid, cert)) continue;
    const name = rfc4514FromNode(cert.subject);
    if (!cert.checkIssued(e.issuer) || !cert.verify(e.issuer.publicKey)) {
      throw bad(`the response is signed by ${name}, which was not issued by ${issuerName}`);
    }
    if (!hasOcspSigning(cert)) {
      throw bad(`the responder certificate ${name} lacks the OCSPSigning extended key usage`);
    }
    if (
      e.now + e.skewMs < new Date(cert.validFrom).getTime() ||
      e.now - e.skewMs > new Date(cert.validTo).getTime()
    ) {
      throw bad(`the responder certificate ${name} is outside its validity period`);
    }
    return cert;
  }
  throw bad(`the response is signed neither by ${issuerName} nor by a responder certificate it included`);
}

function extensionValue(exts: asn1.Extension[] | undefined, oid: string): Buffer | undefined {
  const ext = exts?.find((x) => x.extnID === oid);
  return ext ? Buffer.from(ext.extnValue.buffer) : undefined;
}

/**
 * Parses and checks a DER OCSPResponse for `e.cert`. Returns its status, or throws an
 * OcspResponseError saying why it cannot be used.
 */
export function checkOcspResponse(body: Buffer, e: ResponseExpectation): OcspStatus {
  let res: ocsp.OCSPResponse;
  try {
    res = AsnConvert.parse(body, ocsp.OCSPResponse);
  } catch (err) {
    throw bad(`the response is not a DER OCSPResponse (${(err as Error).message})`);
  }
  if (res.responseStatus !== ocsp.OCSPResponseStatus.successful) {
    throw bad(`the responder answered ${ocsp.OCSPResponseStatus[res.responseStatus] ?? res.responseStatus}`);
  }
  if (!res.responseBytes || res.responseBytes.responseType !== ocsp.id_pkix_ocsp_basic) {
    throw bad('the response is not a basic OCSP response');
  }
  let basic: ocsp.BasicOCSPResponse;
  try {
    basic = AsnConvert.parse(res.responseBytes.response.buffer, ocsp.BasicOCSPResponse);
  } catch (err) {
    throw bad(`the basic OCSP response cannot be read (${(err as Error).message})`);
  }
  const tbs = basic.tbsResponseDataRaw;
  if (!tbs) throw bad('the basic OCSP response has no signed data');

  const sigOid = basic.signatureAlgorithm.algorithm;
  if (!(sigOid in SIGNATURES)) throw bad(`the response signature algorithm ${sigOid} is not supported`);
  const sigHash = SIGNATURES[sigOid]!;
  if (sigHash === 'sha1' && !e.allowSha1) {
    throw bad('the response is signed with SHA-1, which is refused (security.algorithms.allowSha1)');
  }
  const signer = responseSigner(basic, e);
  let ok: boolean;
  try {
    ok = cryptoVerify(sigHash, Buffer.from(tbs), signer.publicKey, Buffer.from(basic.signature));
  } catch (err) {
    throw bad(`the response signature cannot be checked (${(err as Error).message})`);
  }
  if (!ok) throw bad(`the response signature does not verify with ${rfc4514FromNode(signer.subject)}`);

  const data = basic.tbsResponseData;
  if (e.nonce) {
    const echoed = extensionValue(data.responseExtensions, ocsp.id_pkix_ocsp_nonce);
    const sent = der(new OctetString(e.nonce));
    if (!echoed) throw bad('the response does not echo our nonce (set ocsp.nonce: false for this responder)');
    if (!echoed.equals(sent)) throw bad('the response carries a different nonce: it answers another request');
  }

  const input = certIdInput(e.cert, e.issuer);
  const single = data.responses.find((r) => {
    const alg = r.certID.hashAlgorithm.algorithm;
    if (!HASHES[alg]) return false;
    const want = makeCertId(input, alg);
    return (
      sameBytes(r.certID.issuerNameHash.buffer, want.issuerNameHash.buffer) &&
      sameBytes(r.certID.issuerKeyHash.buffer, want.issuerKeyHash.buffer) &&
      sameBytes(r.certID.serialNumber, want.serialNumber)
    );
  });
  if (!single) throw bad('the response holds no answer for this certificate');

  const thisUpdate = single.thisUpdate;
  const nextUpdate = single.nextUpdate;
  if (thisUpdate.getTime() > e.now + e.skewMs) throw bad('the response thisUpdate lies in the future');
  if (nextUpdate && nextUpdate.getTime() < e.now - e.skewMs) {
    throw bad(`the response is stale (nextUpdate ${nextUpdate.toISOString()})`);
  }
  if (!nextUpdate && thisUpdate.getTime() < e.now - e.skewMs - e.maxAgeMs) {
    throw bad(`the response is stale (thisUpdate ${thisUpdate.toISOString()}, no nextUpdate)`);
  }
  const s = single.certStatus;
  if (s.revoked) {
    const r = s.revoked.revocationReason?.reason;
    return {
      status: 'revoked',
      thisUpdate,
      nextUpdate,
      revocationTime: s.revoked.revocationTime,
      reason: r === undefined ? undefined : (CRL_REASONS[r] ?? String(r)),
    };
  }
  if (s.good !== undefined) return { status: 'good', thisUpdate, nextUpdate };
  return { status: 'unknown', thisUpdate, nextUpdate };
}

/** The first http(s) OCSP URL in the certificate's Authority Information Access. */
export function aiaOcspUrl(cert: X509Certificate): string | undefined {
  const aia = new px509.X509Certificate(cert.raw).getExtension(px509.AuthorityInfoAccessExtension);
  return aia?.ocsp.find((g) => g.type === 'url' && /^https?:\/\//i.test(g.value))?.value;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? e.cause : undefined;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return cause ? `${e.message}: ${code ?? cause.message}` : e.message;
}

/** POSTs the request; resolves with the response body (bounded size and time). */
async function post(url: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
  const signal = AbortSignal.timeout(timeoutMs);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
    body: new Uint8Array(body),
    redirect: 'error',
    signal,
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const type = res.headers.get('content-type') ?? '';
  if (!/^application\/ocsp-response\b/i.test(type)) {
    await res.body?.cancel();
    throw new Error(`content type '${type}' is not application/ocsp-response`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += (chunk as Uint8Array).length;
    if (size > MAX_RESPONSE_BYTES) throw new Error(`the response exceeds ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

type Outcome =
  | { kind: 'good' }
  | { kind: 'revoked'; message: string }
  /** The responder answered 'unknown'. */
  | { kind: 'unknown'; message: string }
  /** No trustworthy answer. */
  | { kind: 'unavailable'; message: string };

interface Entry {
  outcome: Outcome;
  until: number;
}

export class OcspChecker implements RevocationCheck {
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();

  constructor(
    private readonly cfg: OcspConfig,
    private readonly policy: OcspPolicy,
  ) {}

  /** Number of cached answers (for tests and diagnostics). */
  get cached(): number {
    return this.cache.size;
  }

  /** Resolves when the signer may be trusted; throws the GatewayError to answer otherwise. */
  async check(signer: TrustedSigner, now = Date.now()): Promise<void> {
    const issuer = signer.issuer;
    if (!issuer) return; // the signer is itself a trust anchor: there is no one to ask
    const key = `${issuer.fingerprint256}|${signer.cert.serialNumber}`;
    let entry = this.cache.get(key);
    if (!entry || entry.until <= now) entry = await this.lookup(key, signer, issuer);
    const o = entry.outcome;
    if (o.kind === 'good') return;
    if (o.kind === 'revoked') throw new GatewayError('SSP_WSS_UNTRUSTED', o.message);
    if (this.cfg.failMode === 'open') return; // warned when the answer came in
    if (o.kind === 'unknown') throw new GatewayError('SSP_WSS_UNTRUSTED', o.message);
    throw new GatewayError('SSP_WSS_REVOCATION_UNAVAILABLE', o.message, {
      retryAfterSeconds: Math.ceil(RETRY_AFTER_FAILURE_MS / 1000),
    });
  }

  /** One responder call per certificate at a time; its answer is cached for everyone. */
  private lookup(key: string, signer: TrustedSigner, issuer: X509Certificate): Promise<Entry> {
    let p = this.inflight.get(key);
    if (!p) {
      p = this.ask(signer, issuer)
        .then((entry) => {
          this.cache.delete(key);
          if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
          this.cache.set(key, entry);
          return entry;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async ask(signer: TrustedSigner, issuer: X509Certificate): Promise<Entry> {
    const subject = signer.subject;
    const serial = signer.cert.serialNumber;
    const failed = (message: string, kind: 'unknown' | 'unavailable' = 'unavailable'): Entry => {
      const fields = { subject, serial, failMode: this.cfg.failMode, reason: message };
      if (this.cfg.failMode === 'open') {
        log.warn(
          'OCSP: no revocation status for a signing certificate; accepting it (failMode open)',
          fields,
        );
      } else {
        log.warn(
          'OCSP: no revocation status for a signing certificate; refusing it (failMode closed)',
          fields,
        );
      }
      return { outcome: { kind, message }, until: Date.now() + RETRY_AFTER_FAILURE_MS };
    };
    const url = this.cfg.responderUrl ?? aiaOcspUrl(signer.cert);
    if (!url) {
      return failed(
        `the revocation status of ${subject} cannot be checked: its certificate names no OCSP responder and security.trust.ocsp.responderUrl is not set`,
      );
    }
    const nonce = this.cfg.nonce ? randomBytes(32) : undefined;
    let body: Buffer;
    try {
      body = await post(url, buildOcspRequest(signer.cert, issuer, nonce), this.cfg.timeoutMs);
    } catch (e) {
      return failed(`the OCSP responder ${url} did not answer for ${subject}: ${describe(e)}`);
    }
    const now = Date.now();
    const cacheMs = this.cfg.cacheSeconds * 1000;
    let status: OcspStatus;
    try {
      status = checkOcspResponse(body, {
        cert: signer.cert,
        issuer,
        nonce,
        now,
        skewMs: this.policy.skewSeconds * 1000,
        maxAgeMs: cacheMs,
        allowSha1: this.policy.allowSha1,
      });
    } catch (e) {
      if (!(e instanceof OcspResponseError)) throw e;
      return failed(`the OCSP responder ${url} sent no usable answer for ${subject}: ${e.message}`);
    }
    if (status.status === 'unknown') {
      return failed(
        `the OCSP responder ${url} does not know the certificate ${subject} (status unknown)`,
        'unknown',
      );
    }
    const until = Math.min(
      (status.nextUpdate ?? new Date(status.thisUpdate.getTime() + cacheMs)).getTime(),
      now + cacheMs,
    );
    if (status.status === 'good') return { outcome: { kind: 'good' }, until };
    const issuerName = rfc4514FromNode(issuer.subject);
    const message = `${subject} has been revoked by ${issuerName} (OCSP responder ${url}: ${status.reason ?? 'no reason given'}, since ${status.revocationTime.toISOString()})`;
    log.warn('OCSP: signing certificate revoked', { subject, serial, responder: url, reason: status.reason });
    return { outcome: { kind: 'revoked', message }, until };
  }
}
