/**
 * A test-side WS-Security signer built on xml-crypto 6 and xmldom. It shares no code with
 * src/security on purpose: the proxy's verifier is tested against a second implementation, so
 * a misreading of the specs cannot cancel itself out. Also holds the small DOM helpers the
 * attack suite uses to mangle legitimately signed envelopes.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  randomUUID,
  sign as cryptoSign,
  timingSafeEqual,
  verify as cryptoVerify,
  X509Certificate,
  type BinaryLike,
  type KeyLike,
} from 'node:crypto';
import { DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import {
  ExclusiveCanonicalization,
  SignedXml,
  type ErrorFirstCallback,
  type SignatureAlgorithm,
} from 'xml-crypto';

export const NS = {
  soap11: 'http://schemas.xmlsoap.org/soap/envelope/',
  soap12: 'http://www.w3.org/2003/05/soap-envelope',
  wsse: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd',
  wsu: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd',
  ds: 'http://www.w3.org/2000/09/xmldsig#',
  sym: 'http://soapproxy.symphony/v1',
} as const;

export const URIS = {
  x509v3: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3',
  base64Binary:
    'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary',
  ski: 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier',
  thumbprintSha1: 'http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1',
  excC14n: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  envelopedSignature: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  xpath: 'http://www.w3.org/TR/1999/REC-xpath-19991116',
} as const;

export const SIGNATURE_METHODS = {
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'rsa-sha1': 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
  'rsa-sha512': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
  'ecdsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
  'hmac-sha1': 'http://www.w3.org/2000/09/xmldsig#hmac-sha1',
  'rsa-md5': 'http://www.w3.org/2001/04/xmldsig-more#rsa-md5',
} as const;

export const DIGEST_METHODS = {
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  sha1: 'http://www.w3.org/2000/09/xmldsig#sha1',
} as const;

export type SignatureMethod = keyof typeof SIGNATURE_METHODS;
export type DigestMethod = keyof typeof DIGEST_METHODS;
export type KeyReference = 'bst' | 'issuer-serial' | 'ski' | 'thumbprint';

export interface SignOptions {
  soapVersion?: '1.1' | '1.2';
  certPem: string;
  /** The signing key; for 'hmac-sha1' the HMAC secret (the key-confusion attack passes the certificate PEM). */
  keyPem: string;
  signatureAlgorithm?: SignatureMethod;
  digestAlgorithm?: DigestMethod;
  keyReference?: KeyReference;
  /** Timestamp Created; defaults to now. */
  created?: Date;
  /** Timestamp lifetime (Expires − Created); defaults to 300 s, the usual WSS4J lifetime. */
  expiresInSeconds?: number;
  /** false leaves the Timestamp out entirely (signature over the Body only). */
  includeTimestamp?: boolean;
  /** soap:mustUnderstand on wsse:Security; defaults to true. */
  mustUnderstand?: boolean;
  /** Extra header blocks, placed before wsse:Security. */
  headerXml?: string;
  /** wsu:Ids of further elements (e.g. from headerXml) to reference besides Body and Timestamp. */
  extraReferenceIds?: string[];
  /** Transforms on the Body reference; defaults to exc-c14n alone. */
  bodyTransforms?: string[];
}

// ---------------------------------------------------------------------------------------------
// Signature algorithms. xml-crypto 6 has no ECDSA, and its HMAC is disabled by default; one small
// class per method, registered on each SignedXml, covers both and keeps re-signing consistent.

const NODE_HASH: Record<Exclude<SignatureMethod, 'hmac-sha1'>, string> = {
  'rsa-sha256': 'sha256',
  'rsa-sha1': 'sha1',
  'rsa-sha512': 'sha512',
  'ecdsa-sha256': 'sha256',
  'rsa-md5': 'md5',
};

function toBuffer(data: BinaryLike): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Raw signature bytes as XML DSig wants them: PKCS#1 v1.5 for RSA, r||s for ECDSA. The key decides
 * the scheme, so an ECDSA method with an RSA key yields an RSA signature (a key/method mismatch case).
 */
export function rawSignature(method: SignatureMethod, data: BinaryLike, key: KeyLike): Buffer {
  if (method === 'hmac-sha1') return createHmac('sha1', key).update(toBuffer(data)).digest();
  const keyObject = typeof key === 'object' && 'type' in key ? key : createPrivateKey(key);
  // XML DSig 1.1 §6.4.3: an ECDSA SignatureValue is r||s, not the DER SEQUENCE Node emits by default.
  return cryptoSign(NODE_HASH[method], toBuffer(data), { key: keyObject, dsaEncoding: 'ieee-p1363' });
}

function rawVerify(method: SignatureMethod, data: string, key: KeyLike, signature: Buffer): boolean {
  if (method === 'hmac-sha1') {
    const mac = createHmac('sha1', key).update(data).digest();
    return mac.length === signature.length && timingSafeEqual(mac, signature);
  }
  const publicKey = typeof key === 'object' && 'type' in key ? key : createPublicKey(key);
  return cryptoVerify(
    NODE_HASH[method],
    Buffer.from(data, 'utf8'),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    signature,
  );
}

function algorithmClass(method: SignatureMethod): new () => SignatureAlgorithm {
  return class implements SignatureAlgorithm {
    getSignature(signedInfo: BinaryLike, privateKey: KeyLike): string;
    getSignature(signedInfo: BinaryLike, privateKey: KeyLike, callback?: ErrorFirstCallback<string>): void;
    getSignature(
      signedInfo: BinaryLike,
      privateKey: KeyLike,
      callback?: ErrorFirstCallback<string>,
    ): string | void {
      const value = rawSignature(method, signedInfo, privateKey).toString('base64');
      if (!callback) return value;
      callback(null, value);
    }

    verifySignature(material: string, key: KeyLike, signatureValue: string): boolean;
    verifySignature(
      material: string,
      key: KeyLike,
      signatureValue: string,
      callback?: ErrorFirstCallback<boolean>,
    ): void;
    verifySignature(
      material: string,
      key: KeyLike,
      signatureValue: string,
      callback?: ErrorFirstCallback<boolean>,
    ): boolean | void {
      const ok = rawVerify(method, material, key, Buffer.from(signatureValue, 'base64'));
      if (!callback) return ok;
      callback(null, ok);
    }

    getAlgorithmName(): string {
      return SIGNATURE_METHODS[method];
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Certificate facts for the key reference forms.

interface Tlv {
  tag: number;
  /** Offset of the content. */
  start: number;
  /** Offset just past the content. */
  end: number;
}

/** One DER TLV at `off`; enough of DER for the two fields read below. */
function readTlv(der: Buffer, off: number): Tlv {
  const tag = der[off]!;
  let len = der[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + len };
}

const SKI_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0e]);

/**
 * The SubjectKeyIdentifier extension's value, or (RFC 5280 §4.2.1.2 method 1, as WSS4J does
 * when the extension is absent) the SHA-1 of the subjectPublicKey bits.
 */
export function subjectKeyIdentifier(certPem: string): Buffer {
  const cert = new X509Certificate(certPem);
  const der = cert.raw;
  const at = der.indexOf(SKI_OID);
  if (at >= 0) {
    let next = readTlv(der, at);
    next = readTlv(der, next.end);
    if (next.tag === 0x01) next = readTlv(der, next.end); // critical flag
    if (next.tag === 0x04) {
      const inner = readTlv(der, next.start);
      if (inner.tag === 0x04) return der.subarray(inner.start, inner.end);
    }
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const outer = readTlv(spki, 0);
  const algorithm = readTlv(spki, outer.start);
  const bits = readTlv(spki, algorithm.end);
  return createHash('sha1')
    .update(spki.subarray(bits.start + 1, bits.end))
    .digest();
}

/** Issuer DN in RFC 2253 order (least significant RDN first), as X509IssuerName carries it. */
export function issuerName(certPem: string): string {
  return new X509Certificate(certPem).issuer.split('\n').reverse().join(',');
}

/** Serial number in decimal, as X509SerialNumber carries it. */
export function serialDecimal(certPem: string): string {
  return BigInt(`0x${new X509Certificate(certPem).serialNumber}`).toString(10);
}

export function thumbprintSha1(certPem: string): Buffer {
  return createHash('sha1').update(new X509Certificate(certPem).raw).digest();
}

function keyInfoContent(ref: KeyReference, certPem: string, bstId: string): string {
  const str = (inner: string): string =>
    `<wsse:SecurityTokenReference>${inner}</wsse:SecurityTokenReference>`;
  switch (ref) {
    case 'bst':
      return str(`<wsse:Reference URI="#${bstId}" ValueType="${URIS.x509v3}"/>`);
    case 'issuer-serial':
      return str(
        `<ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>${escapeXml(issuerName(certPem))}</ds:X509IssuerName>` +
          `<ds:X509SerialNumber>${serialDecimal(certPem)}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>`,
      );
    case 'ski':
      return str(
        `<wsse:KeyIdentifier EncodingType="${URIS.base64Binary}" ValueType="${URIS.ski}">` +
          `${subjectKeyIdentifier(certPem).toString('base64')}</wsse:KeyIdentifier>`,
      );
    case 'thumbprint':
      return str(
        `<wsse:KeyIdentifier EncodingType="${URIS.base64Binary}" ValueType="${URIS.thumbprintSha1}">` +
          `${thumbprintSha1(certPem).toString('base64')}</wsse:KeyIdentifier>`,
      );
  }
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** An XPath that selects the element carrying this wsu:Id (xml-crypto needs an XPath per reference). */
function byWsuId(id: string): string {
  return `//*[@*[local-name()='Id' and namespace-uri()='${NS.wsu}']='${id}']`;
}

/**
 * A complete SOAP envelope whose wsse:Security holds a Timestamp, (for 'bst') a
 * BinarySecurityToken, and a ds:Signature over the Body and the Timestamp, in the shape WSS4J
 * and zeep produce: exc-c14n everywhere, references by `#wsu:Id`.
 */
export function signedEnvelope(bodyInnerXml: string, opts: SignOptions): string {
  const version = opts.soapVersion ?? '1.1';
  const method = opts.signatureAlgorithm ?? 'rsa-sha256';
  const digest = opts.digestAlgorithm ?? 'sha256';
  const keyRef = opts.keyReference ?? 'bst';
  const unique = randomUUID();
  // Fresh ids every time also make every SignatureValue unique, so only deliberate replays repeat one.
  const ids = { body: `Body-${unique}`, timestamp: `TS-${unique}`, bst: `X509-${unique}` };
  const created = opts.created ?? new Date();
  const expires = new Date(created.getTime() + (opts.expiresInSeconds ?? 300) * 1000);
  const soapNs = version === '1.2' ? NS.soap12 : NS.soap11;
  const mustUnderstand =
    opts.mustUnderstand === false ? '' : ` soap:mustUnderstand="${version === '1.2' ? 'true' : '1'}"`;
  const includeTimestamp = opts.includeTimestamp !== false;
  const timestamp = includeTimestamp
    ? `<wsu:Timestamp wsu:Id="${ids.timestamp}"><wsu:Created>${created.toISOString()}</wsu:Created>` +
      `<wsu:Expires>${expires.toISOString()}</wsu:Expires></wsu:Timestamp>`
    : '';
  const bst =
    keyRef === 'bst'
      ? `<wsse:BinarySecurityToken EncodingType="${URIS.base64Binary}" ValueType="${URIS.x509v3}" wsu:Id="${ids.bst}">` +
        `${new X509Certificate(opts.certPem).raw.toString('base64')}</wsse:BinarySecurityToken>`
      : '';
  const unsigned =
    `<soap:Envelope xmlns:soap="${soapNs}"><soap:Header>${opts.headerXml ?? ''}` +
    `<wsse:Security xmlns:wsse="${NS.wsse}" xmlns:wsu="${NS.wsu}"${mustUnderstand}>${timestamp}${bst}</wsse:Security>` +
    `</soap:Header><soap:Body xmlns:wsu="${NS.wsu}" wsu:Id="${ids.body}">${bodyInnerXml}</soap:Body></soap:Envelope>`;

  const keyInfo = keyInfoContent(keyRef, opts.certPem, ids.bst);
  const sig = new SignedXml({
    privateKey: opts.keyPem,
    signatureAlgorithm: SIGNATURE_METHODS[method],
    canonicalizationAlgorithm: URIS.excC14n,
    idMode: 'wssecurity',
    getKeyInfoContent: () => keyInfo,
  });
  sig.SignatureAlgorithms[SIGNATURE_METHODS[method]] = algorithmClass(method);
  const references = [
    { id: ids.body, transforms: opts.bodyTransforms ?? [URIS.excC14n] },
    ...(includeTimestamp ? [{ id: ids.timestamp, transforms: [URIS.excC14n] }] : []),
    ...(opts.extraReferenceIds ?? []).map((id) => ({ id, transforms: [URIS.excC14n] })),
  ];
  for (const r of references) {
    sig.addReference({
      xpath: byWsuId(r.id),
      transforms: r.transforms,
      digestAlgorithm: DIGEST_METHODS[digest],
    });
  }
  sig.computeSignature(unsigned, {
    prefix: 'ds',
    location: {
      reference: `//*[local-name()='Security' and namespace-uri()='${NS.wsse}']`,
      action: 'append',
    },
    // Lets the KeyInfo snippet use wsse:/wsu: without redeclaring them inside the Signature.
    existingPrefixes: { wsse: NS.wsse, wsu: NS.wsu },
  });
  return sig.getSignedXml();
}

// ---------------------------------------------------------------------------------------------
// DOM helpers for building attacks out of signed envelopes.

export function parseXmlDoc(xml: string): Document {
  return new DOMParser({
    onError: (level, message) => {
      if (level !== 'warning') throw new Error(`test XML does not parse: ${message}`);
    },
  }).parseFromString(xml, 'text/xml');
}

export function serializeXmlDoc(doc: Document): string {
  return new XMLSerializer().serializeToString(doc);
}

/** Element children of `parent` with this namespace and local name (any if local is '*'). */
export function childElementsNS(parent: Element | Document, ns: string, local: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType !== n.ELEMENT_NODE) continue;
    const el = n as Element;
    if ((el.namespaceURI ?? '') === ns && (local === '*' || el.localName === local)) out.push(el);
  }
  return out;
}

function only(parent: Element | Document, ns: string, local: string): Element {
  const found = childElementsNS(parent, ns, local);
  if (found.length !== 1) throw new Error(`expected one ${local}, found ${found.length}`);
  return found[0]!;
}

/** The parts of a signed envelope made by signedEnvelope, found by position. */
export interface SignedParts {
  doc: Document;
  soapNs: string;
  envelope: Element;
  header: Element;
  body: Element;
  security: Element;
  signature: Element;
  signedInfo: Element;
  signatureValue: Element;
  timestamp: Element | null;
  bst: Element | null;
}

export function signedParts(xml: string): SignedParts {
  const doc = parseXmlDoc(xml);
  const envelope = doc.documentElement!;
  const soapNs = envelope.namespaceURI!;
  const header = only(envelope, soapNs, 'Header');
  const body = only(envelope, soapNs, 'Body');
  const security = only(header, NS.wsse, 'Security');
  const signature = only(security, NS.ds, 'Signature');
  return {
    doc,
    soapNs,
    envelope,
    header,
    body,
    security,
    signature,
    signedInfo: only(signature, NS.ds, 'SignedInfo'),
    signatureValue: only(signature, NS.ds, 'SignatureValue'),
    timestamp: childElementsNS(security, NS.wsu, 'Timestamp')[0] ?? null,
    bst: childElementsNS(security, NS.wsse, 'BinarySecurityToken')[0] ?? null,
  };
}

/** Parses a fragment whose root declares its own namespaces and adopts its root into `doc`. */
export function importFragment(doc: Document, xml: string): Element {
  const root = parseXmlDoc(xml).documentElement!;
  return doc.importNode(root, true) as Element;
}

/** exc-c14n of the current SignedInfo: the bytes its SignatureValue is computed over. */
export function canonicalSignedInfo(parts: SignedParts): string {
  const node = parts.signedInfo as unknown as Parameters<ExclusiveCanonicalization['process']>[0];
  const canonical = new ExclusiveCanonicalization().process(node, {});
  if (typeof canonical !== 'string') throw new Error('exc-c14n returned a node');
  return canonical;
}

/**
 * Puts an identity XPath filter before exc-c14n on the Body reference: the digest stays right,
 * so only a verifier's transform policy can object. SignedInfo must be re-signed afterwards.
 */
export function addBodyXPathTransform(parts: SignedParts): void {
  const bodyRef = childElementsNS(parts.signedInfo, NS.ds, 'Reference')[0]!;
  const transforms = childElementsNS(bodyRef, NS.ds, 'Transforms')[0]!;
  const transform = parts.doc.createElementNS(NS.ds, 'ds:Transform');
  transform.setAttribute('Algorithm', URIS.xpath);
  const expr = parts.doc.createElementNS(NS.ds, 'ds:XPath');
  expr.textContent = 'not(ancestor-or-self::ds:Signature)';
  transform.appendChild(expr);
  transforms.insertBefore(transform, transforms.firstChild);
}

/**
 * Recomputes SignatureValue over the current SignedInfo after a test has edited it: the result
 * is cryptographically valid, so only the verifier's policy can refuse it.
 */
export function resignSignedInfo(
  parts: SignedParts,
  keyPem: string,
  method: SignatureMethod = 'rsa-sha256',
): void {
  parts.signatureValue.textContent = rawSignature(method, canonicalSignedInfo(parts), keyPem).toString(
    'base64',
  );
}

// ---------------------------------------------------------------------------------------------
// Reading replies.

/** The fault detail element's local name and its `code`, or undefined when the reply is no fault. */
export function faultCodeOf(responseXml: string): { detail: string; code: string } | undefined {
  let doc: Document;
  try {
    doc = parseXmlDoc(responseXml);
  } catch {
    return undefined;
  }
  const envelope = doc.documentElement;
  if (!envelope) return undefined;
  const soapNs = envelope.namespaceURI ?? '';
  const body = childElementsNS(envelope, soapNs, 'Body')[0];
  const fault = body && childElementsNS(body, soapNs, 'Fault')[0];
  if (!fault) return undefined;
  // SOAP 1.1's <detail> is unqualified; SOAP 1.2's <Detail> is in the envelope namespace.
  const holder =
    soapNs === NS.soap11
      ? childElementsNS(fault, '', 'detail')[0]
      : childElementsNS(fault, soapNs, 'Detail')[0];
  if (!holder) return undefined;
  let detailEl: Element | undefined;
  for (let n = holder.firstChild; n && !detailEl; n = n.nextSibling) {
    if (n.nodeType === n.ELEMENT_NODE) detailEl = n as Element;
  }
  if (!detailEl) return undefined;
  const code = childElementsNS(detailEl, detailEl.namespaceURI ?? '', 'code')[0]?.textContent ?? '';
  return { detail: detailEl.localName ?? '', code };
}
