/**
 * Inbound WS-Security: proves that the SOAP Body we are about to dispatch, and a fresh
 * Timestamp, were signed by a certificate the bank trusts.
 *
 * The defence against XML Signature Wrapping is structural, not cryptographic: the Body and
 * the Timestamp are taken from their fixed positions (Envelope/Body, Header/Security/Timestamp)
 * and every Reference must resolve, through an id that occurs exactly once, to one of those
 * very elements. A signature that is valid but covers some other element is refused.
 *
 * Checks run cheapest-first and trust before cryptography, so a forged request costs string
 * comparisons and a cached trust lookup, never a chain build or canonicalization of a large
 * Body: structure → Timestamp → algorithm names → references → token → trust → key/method
 * match → SignedInfo signature → digests → revocation (OCSP, when on) → replay.
 */
import { createHash, timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { GatewayError } from '../errors/catalogue';
import { childElements, textOf, type XmlElement } from '../soap/xml';
import { excC14n } from './c14n';
import {
  BASE64_BINARY,
  DIGEST_METHODS,
  DS_NS,
  EXC_C14N,
  SIGNATURE_METHODS,
  SKI_VALUE_TYPE,
  THUMBPRINT_VALUE_TYPE,
  WSA_NS,
  WSSE_NS,
  WSU_NS,
  X509V3,
  type SignatureAlgorithm,
} from './names';
import type { RevocationCheck } from './ocsp';
import type { TrustedSigner, TrustStore } from './truststore';
import type { ClaimResult } from '../store/store';

export interface VerifierPolicy {
  ttlSeconds: number;
  skewSeconds: number;
  allowSha1: boolean;
  allowMd5: boolean;
}

/** Remembers a key for a while and reports whether it was new (the replay cache). */
export interface ReplayGuard {
  claimOnce(key: string, ttlMs: number, tag?: string): Promise<ClaimResult>;
}

export interface VerifiedRequest {
  signer: TrustedSigner;
  /** When the replay-cache entry and the request's validity lapse. */
  validUntil: number;
  /**
   * The very same signed message, with the same resend tag, was accepted before: a retry by a
   * load balancer or the client. Only operations that answer a repeat from memory may serve it.
   */
  resend: boolean;
}

const structure = (m: string): GatewayError => new GatewayError('SSP_WSS_STRUCTURE', m);
const missing = (m: string): GatewayError => new GatewayError('SSP_WSS_MISSING', m);
const timestamp = (m: string): GatewayError => new GatewayError('SSP_WSS_TIMESTAMP', m);
const algorithm = (m: string): GatewayError => new GatewayError('SSP_WSS_ALGORITHM', m);
const badSignature = (m: string): GatewayError => new GatewayError('SSP_WSS_SIGNATURE', m);

const is = (el: XmlElement, uri: string, local: string): boolean => el.uri === uri && el.local === local;

function attr(el: XmlElement, local: string, uri = ''): string | undefined {
  for (const a of el.attrs) if (a.local === local && a.uri === uri) return a.value;
  return undefined;
}

/** Attributes a Reference may point at; wsu:Id is WS-Security's own. */
function isIdAttr(uri: string, local: string): boolean {
  return (
    (uri === WSU_NS && local === 'Id') ||
    (uri === '' && (local === 'Id' || local === 'ID' || local === 'id')) ||
    (uri === 'http://www.w3.org/XML/1998/namespace' && local === 'id')
  );
}

interface IdIndex {
  /** id value → the elements carrying it (more than one means the id is ambiguous). */
  ids: Map<string, XmlElement[]>;
  securities: XmlElement[];
  signatures: XmlElement[];
  timestamps: XmlElement[];
}

/** One pass over the envelope: every id, and the security elements anywhere in the Header. */
function indexEnvelope(root: XmlElement, header: XmlElement | null): IdIndex {
  const idx: IdIndex = { ids: new Map(), securities: [], signatures: [], timestamps: [] };
  const wsuIds = new Set<string>();
  const stack: XmlElement[] = [root];
  while (stack.length) {
    const el = stack.pop()!;
    for (const a of el.attrs) {
      if (!isIdAttr(a.uri, a.local)) continue;
      if (a.uri === WSU_NS) {
        if (wsuIds.has(a.value)) throw structure(`the wsu:Id '${a.value}' occurs more than once`);
        wsuIds.add(a.value);
      }
      const list = idx.ids.get(a.value);
      if (list) {
        if (!list.includes(el)) list.push(el);
      } else idx.ids.set(a.value, [el]);
    }
    for (const c of el.children) if (typeof c !== 'string') stack.push(c);
  }
  if (header) {
    const hs: XmlElement[] = [header];
    while (hs.length) {
      const el = hs.pop()!;
      if (is(el, WSSE_NS, 'Security')) idx.securities.push(el);
      else if (is(el, DS_NS, 'Signature')) idx.signatures.push(el);
      else if (is(el, WSU_NS, 'Timestamp')) idx.timestamps.push(el);
      for (const c of el.children) if (typeof c !== 'string') hs.push(c);
    }
  }
  return idx;
}

/** The single element an id names; an ambiguous or unknown id is a structural error. */
function resolveId(idx: IdIndex, uri: string | undefined, what: string): XmlElement {
  if (!uri || !uri.startsWith('#') || uri.length < 2) {
    throw structure(`${what} must reference a same-document id ('#id'), not '${uri ?? ''}'`);
  }
  const found = idx.ids.get(uri.slice(1));
  if (!found) throw structure(`${what} references '${uri}', which no element carries`);
  if (found.length > 1) throw structure(`${what} references '${uri}', which ${found.length} elements carry`);
  return found[0]!;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function readTime(el: XmlElement | undefined, what: string): number | undefined {
  if (!el) return undefined;
  const s = textOf(el).trim();
  const t = DATE_TIME.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(t)) throw timestamp(`${what} '${s}' is not an xs:dateTime with a time zone`);
  return t;
}

interface Reference {
  target: XmlElement;
  prefixes: string[];
  hash: SignatureAlgorithm['hash'];
  digest: Buffer;
}

export class WssVerifier {
  constructor(
    private readonly trust: TrustStore,
    private readonly policy: VerifierPolicy,
    private readonly replay: ReplayGuard,
    /** Online revocation check (OCSP), run once the signature is proven; null when off. */
    private readonly revocation: RevocationCheck | null = null,
  ) {}

  async verify(
    root: XmlElement,
    header: XmlElement | null,
    body: XmlElement,
    now = Date.now(),
    resendTag = '',
  ): Promise<VerifiedRequest> {
    if (!header) throw missing('the request has no SOAP Header, so no wsse:Security');
    const idx = indexEnvelope(root, header);

    // Structure: exactly one Security header holding one Signature and one Timestamp.
    if (idx.securities.length === 0) throw missing('the request has no wsse:Security header');
    if (idx.securities.length > 1) throw structure(`found ${idx.securities.length} wsse:Security elements`);
    const security = idx.securities[0]!;
    if (security.parent !== header)
      throw structure('wsse:Security must be a direct child of the SOAP Header');
    if (idx.signatures.length === 0) throw missing('wsse:Security holds no ds:Signature');
    if (idx.signatures.length > 1) throw structure(`found ${idx.signatures.length} ds:Signature elements`);
    if (idx.timestamps.length === 0) throw missing('wsse:Security holds no wsu:Timestamp');
    if (idx.timestamps.length > 1) throw structure(`found ${idx.timestamps.length} wsu:Timestamp elements`);
    const signature = idx.signatures[0]!;
    const ts = idx.timestamps[0]!;
    if (signature.parent !== security)
      throw structure('ds:Signature must be a direct child of wsse:Security');
    if (ts.parent !== security) throw structure('wsu:Timestamp must be a direct child of wsse:Security');

    const validUntil = this.checkTimestamp(ts, now);

    const [signedInfo, signatureValueEl, keyInfo, ...rest] = childElements(signature);
    if (!signedInfo || !is(signedInfo, DS_NS, 'SignedInfo'))
      throw structure('ds:Signature must start with SignedInfo');
    if (!signatureValueEl || !is(signatureValueEl, DS_NS, 'SignatureValue')) {
      throw structure('ds:SignedInfo must be followed by SignatureValue');
    }
    if (!keyInfo || !is(keyInfo, DS_NS, 'KeyInfo'))
      throw missing('ds:Signature has no KeyInfo naming the signer');
    if (rest.length) throw structure(`unexpected ${rest[0]!.local} inside ds:Signature`);

    // Signed parts: every reference must land on the positional Body or Timestamp (or the
    // signer's own token / WS-Addressing headers, which some stacks also sign).
    const { method, prefixes, references } = this.readSignedInfo(signedInfo, idx);
    const covered = new Set<XmlElement>();
    for (const r of references) {
      if (covered.has(r.target)) throw structure('two References cover the same element');
      covered.add(r.target);
    }
    if (!covered.has(body)) {
      throw structure('the signature does not cover the SOAP Body that would be dispatched');
    }
    if (!covered.has(ts))
      throw structure('the signature does not cover the wsu:Timestamp of the Security header');

    const { der, cacheKey, token } = this.resolveKey(keyInfo, idx, security);
    for (const t of covered) {
      const allowed =
        t === body ||
        t === ts ||
        (token !== null && t === token) ||
        (t.parent === header && t.uri === WSA_NS);
      if (!allowed) throw structure(`the signature references an unexpected element ${t.local}`);
    }

    const signer = this.trust.check(der, cacheKey, now);
    if (signer.keyType !== method.key) {
      throw algorithm(
        `a ${method.key.toUpperCase()} signature method cannot be used with a ${signer.keyType} key`,
      );
    }

    const signatureValue = textOf(signatureValueEl).replace(/\s+/g, '');
    const signed = excC14n(signedInfo, prefixes);
    const ok = cryptoVerify(
      method.hash,
      Buffer.from(signed, 'utf8'),
      method.key === 'ec' ? { key: signer.key, dsaEncoding: 'ieee-p1363' } : signer.key,
      Buffer.from(signatureValue, 'base64'),
    );
    if (!ok) throw badSignature('the SignatureValue does not verify with the signing certificate');
    for (const r of references) {
      const actual = createHash(r.hash).update(excC14n(r.target, r.prefixes), 'utf8').digest();
      if (actual.length !== r.digest.length || !timingSafeEqual(actual, r.digest)) {
        throw badSignature(`the digest of ${r.target.local} does not match: it changed after signing`);
      }
    }

    // Last before the replay claim: it may ask a responder over the network, and only a proven
    // signature by a trusted chain may cost that (a refusal here leaves no replay-cache entry).
    if (this.revocation) await this.revocation.check(signer, now);

    const claim = await this.replay.claimOnce(
      `wss:${signatureValue}`,
      Math.max(1000, validUntil - now),
      resendTag,
    );
    if (claim === 'taken')
      throw new GatewayError('SSP_WSS_REPLAY', 'this signed message was already accepted once');
    return { signer, validUntil, resend: claim === 'resend' };
  }

  private checkTimestamp(ts: XmlElement, now: number): number {
    let createdEl: XmlElement | undefined;
    let expiresEl: XmlElement | undefined;
    for (const c of childElements(ts)) {
      if (is(c, WSU_NS, 'Created') && !createdEl) createdEl = c;
      else if (is(c, WSU_NS, 'Expires') && !expiresEl) expiresEl = c;
      else throw timestamp(`unexpected ${c.local} in wsu:Timestamp`);
    }
    const created = readTime(createdEl, 'wsu:Created');
    const expires = readTime(expiresEl, 'wsu:Expires');
    if (created === undefined) throw timestamp('wsu:Timestamp has no Created');
    const { ttlSeconds, skewSeconds } = this.policy;
    const skew = skewSeconds * 1000;
    const ttl = ttlSeconds * 1000;
    if (created > now + skew) throw timestamp('wsu:Created lies in the future beyond the allowed clock skew');
    if (now - created > ttl + skew) throw timestamp(`the request is older than the ${ttlSeconds} s allowed`);
    if (expires !== undefined) {
      if (expires <= created) throw timestamp('wsu:Expires is not after wsu:Created');
      if (expires - created > ttl) {
        throw timestamp(`the Timestamp lifetime exceeds the ${ttlSeconds} s the proxy allows`);
      }
      if (now > expires + skew) throw timestamp('the Timestamp has expired');
    }
    return Math.min(created + ttl, expires ?? Infinity) + skew;
  }

  private readSignedInfo(
    signedInfo: XmlElement,
    idx: IdIndex,
  ): { method: SignatureAlgorithm; prefixes: string[]; references: Reference[] } {
    const [c14nEl, methodEl, ...refs] = childElements(signedInfo);
    if (!c14nEl || !is(c14nEl, DS_NS, 'CanonicalizationMethod')) {
      throw structure('SignedInfo must start with CanonicalizationMethod');
    }
    const prefixes = this.c14nPrefixes(c14nEl, 'SignedInfo canonicalization');
    if (!methodEl || !is(methodEl, DS_NS, 'SignatureMethod'))
      throw structure('SignedInfo has no SignatureMethod');
    const methodUri = attr(methodEl, 'Algorithm') ?? '';
    const method = SIGNATURE_METHODS[methodUri];
    if (!method)
      throw algorithm(`signature method '${methodUri}' is not accepted (HMAC and unknown methods never are)`);
    this.checkHash(method.hash, `signature method ${methodUri}`);
    if (refs.length === 0) throw missing('SignedInfo has no Reference');
    if (refs.length > 8) throw structure(`SignedInfo has ${refs.length} References; at most 8 are accepted`);
    const references = refs.map((ref) => this.readReference(ref, idx));
    return { method, prefixes, references };
  }

  private readReference(ref: XmlElement, idx: IdIndex): Reference {
    if (!is(ref, DS_NS, 'Reference')) throw structure(`unexpected ${ref.local} in SignedInfo`);
    const target = resolveId(idx, attr(ref, 'URI'), 'a signature Reference');
    const parts = childElements(ref);
    if (!parts[0] || !is(parts[0], DS_NS, 'Transforms')) {
      throw structure('a Reference must have an exclusive c14n transform');
    }
    const transforms = childElements(parts[0]);
    if (transforms.length !== 1)
      throw structure('a Reference must have exactly one exclusive c14n transform');
    const prefixes = this.c14nPrefixes(transforms[0]!, 'Reference transform');
    let i = 1;
    const digestMethod = parts[i++];
    const digestValue = parts[i++];
    if (!digestMethod || !is(digestMethod, DS_NS, 'DigestMethod'))
      throw structure('a Reference has no DigestMethod');
    if (!digestValue || !is(digestValue, DS_NS, 'DigestValue'))
      throw structure('a Reference has no DigestValue');
    if (i !== parts.length) throw structure('unexpected content in a Reference');
    const digestUri = attr(digestMethod, 'Algorithm') ?? '';
    const hash = DIGEST_METHODS[digestUri];
    if (!hash) throw algorithm(`digest method '${digestUri}' is not accepted`);
    this.checkHash(hash, `digest method ${digestUri}`);
    return { target, prefixes, hash, digest: Buffer.from(textOf(digestValue).trim(), 'base64') };
  }

  /** Accepts only exclusive c14n; returns its InclusiveNamespaces PrefixList. */
  private c14nPrefixes(el: XmlElement, what: string): string[] {
    const uri = attr(el, 'Algorithm');
    if (uri !== EXC_C14N) throw structure(`${what} must be exclusive c14n (${EXC_C14N}), not '${uri ?? ''}'`);
    const inner = childElements(el);
    if (inner.length === 0) return [];
    if (inner.length > 1 || !is(inner[0]!, EXC_C14N, 'InclusiveNamespaces')) {
      throw structure(`unexpected content in the ${what}`);
    }
    return (attr(inner[0]!, 'PrefixList') ?? '').split(/\s+/).filter(Boolean);
  }

  private checkHash(hash: SignatureAlgorithm['hash'], what: string): void {
    if (hash === 'sha1' && !this.policy.allowSha1) {
      throw algorithm(`${what} uses SHA-1, which is refused (security.algorithms.allowSha1)`);
    }
    if (hash === 'md5' && !this.policy.allowMd5) {
      throw algorithm(`${what} uses MD5, which is refused (security.algorithms.allowMd5)`);
    }
  }

  /** The signer's certificate, from the three ways clients point at it. */
  private resolveKey(
    keyInfo: XmlElement,
    idx: IdIndex,
    security: XmlElement,
  ): { der: Buffer; cacheKey: string; token: XmlElement | null } {
    const [inner, ...more] = childElements(keyInfo);
    if (!inner || more.length) throw structure('KeyInfo must hold exactly one key reference');
    if (is(inner, DS_NS, 'X509Data')) return this.fromX509Data(inner);
    if (!is(inner, WSSE_NS, 'SecurityTokenReference')) {
      throw structure(`KeyInfo holds an unsupported ${inner.local}`);
    }
    const [ref, ...extra] = childElements(inner);
    if (!ref || extra.length) throw structure('SecurityTokenReference must hold exactly one reference');
    if (is(ref, WSSE_NS, 'Reference')) {
      const token = resolveId(idx, attr(ref, 'URI'), 'the SecurityTokenReference');
      if (!is(token, WSSE_NS, 'BinarySecurityToken') || token.parent !== security) {
        throw structure(
          'the SecurityTokenReference must point at a BinarySecurityToken in the same Security header',
        );
      }
      const valueType = attr(token, 'ValueType');
      if (valueType !== undefined && valueType !== X509V3) {
        throw structure(`BinarySecurityToken ValueType '${valueType}' is not X509v3`);
      }
      const encoding = attr(token, 'EncodingType');
      if (encoding !== undefined && encoding !== BASE64_BINARY) {
        throw structure(`BinarySecurityToken EncodingType '${encoding}' is not Base64Binary`);
      }
      const text = textOf(token).replace(/\s+/g, '');
      if (!text) throw structure('the BinarySecurityToken is empty');
      return { der: Buffer.from(text, 'base64'), cacheKey: text, token };
    }
    if (is(ref, WSSE_NS, 'KeyIdentifier')) {
      const valueType = attr(ref, 'ValueType');
      const value = textOf(ref);
      const cert =
        valueType === SKI_VALUE_TYPE
          ? this.trust.findBySki(value)
          : valueType === THUMBPRINT_VALUE_TYPE
            ? this.trust.findByThumbprint(value)
            : undefined;
      if (!cert) {
        throw new GatewayError(
          'SSP_WSS_UNTRUSTED',
          `no registered signer certificate matches the KeyIdentifier (${valueType ?? 'no ValueType'}); send the certificate as a BinarySecurityToken or register it in security.trust.signerCertFiles`,
        );
      }
      return { der: cert.raw, cacheKey: `fp:${cert.fingerprint256}`, token: null };
    }
    if (is(ref, DS_NS, 'X509Data')) return this.fromX509Data(ref);
    throw structure(`SecurityTokenReference holds an unsupported ${ref.local}`);
  }

  private fromX509Data(x509Data: XmlElement): { der: Buffer; cacheKey: string; token: null } {
    const items = childElements(x509Data);
    if (items.length === 0 || items.length > 2) {
      throw structure('X509Data must hold an X509Certificate and/or one X509IssuerSerial');
    }
    // zeep's plain Signature sends both; the certificate itself is what gets trust-checked.
    const certEl = items.find((i) => is(i, DS_NS, 'X509Certificate'));
    if (certEl) {
      const text = textOf(certEl).replace(/\s+/g, '');
      return { der: Buffer.from(text, 'base64'), cacheKey: text, token: null };
    }
    if (items.length !== 1) throw structure('X509Data must hold one X509IssuerSerial');
    const inner = items[0]!;
    if (!is(inner, DS_NS, 'X509IssuerSerial'))
      throw structure(`X509Data holds an unsupported ${inner.local}`);
    const fields = childElements(inner);
    const name = fields.find((f) => is(f, DS_NS, 'X509IssuerName'));
    const serial = fields.find((f) => is(f, DS_NS, 'X509SerialNumber'));
    if (!name || !serial) throw structure('X509IssuerSerial needs X509IssuerName and X509SerialNumber');
    const cert = this.trust.findByIssuerSerial(textOf(name), textOf(serial));
    if (!cert) {
      throw new GatewayError(
        'SSP_WSS_UNTRUSTED',
        'no registered signer certificate matches the X509IssuerSerial; register it in security.trust.signerCertFiles',
      );
    }
    return { der: cert.raw, cacheKey: `fp:${cert.fingerprint256}`, token: null };
  }
}
