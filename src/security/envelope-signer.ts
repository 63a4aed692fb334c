/**
 * Signs envelopes the WS-Security way: a Timestamp, the signer's certificate as a
 * BinarySecurityToken and a Signature over Body and Timestamp. The proxy signs its responses
 * with it, so a client can prove the answer came from the proxy and was not altered on the
 * way; the benchmark uses it as a fast signing client.
 *
 * We write the SignedInfo and Timestamp ourselves, already in canonical form, so only the
 * Body needs canonicalizing; it is re-read with our parser because a grid's XML payload may
 * carry any namespaces and attribute order.
 */
import {
  createHash,
  createPrivateKey,
  randomBytes,
  sign as cryptoSign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SOAP11_NS, SOAP12_NS, type SoapVersion } from '../soap/envelope';
import { parseXml, type XmlLimits } from '../soap/xml';
import { excC14n } from './c14n';
import {
  BASE64_BINARY,
  DS_NS,
  EXC_C14N,
  SHA256_DIGEST,
  SIGNATURE_METHOD_URI,
  WSSE_NS,
  WSU_NS,
  X509V3,
} from './names';

/** Our own output is trusted, but a grid's payload is still bounded. */
const OWN_OUTPUT_LIMITS: XmlLimits = {
  maxDepth: 1000,
  maxAttributes: 10000,
  maxNameLength: 10000,
  maxElements: 50_000_000,
};

/** A header block the signature covers too (WS-Addressing headers and our sequence on a Notify). */
export interface SignedHeader {
  /** `prefix:local`; the prefix is declared on the block itself. */
  qname: string;
  ns: string;
  /** Further attributes, written as ` name="value"` (already escaped). */
  attrs?: string;
  /** Content, already escaped. */
  content: string;
}

export interface EnvelopeSignerOptions {
  certFile: string;
  keyFile: string;
  /** Lifetime written into the response Timestamp. */
  ttlSeconds?: number;
}

export class EnvelopeSigner {
  readonly algorithm: 'rsa-sha256' | 'ecdsa-sha256';
  private readonly key: KeyObject;
  private readonly tokenB64: string;
  private readonly ttlMs: number;
  private readonly idPrefix = randomBytes(4).toString('hex');
  private counter = 0;

  constructor(opts: EnvelopeSignerOptions) {
    const cert = new X509Certificate(readFileSync(opts.certFile));
    this.key = createPrivateKey(readFileSync(opts.keyFile));
    if (!cert.checkPrivateKey(this.key)) {
      throw new Error(`the response signing key ${opts.keyFile} does not belong to ${opts.certFile}`);
    }
    const type = this.key.asymmetricKeyType;
    if (type === 'rsa') this.algorithm = 'rsa-sha256';
    else if (type === 'ec') this.algorithm = 'ecdsa-sha256';
    else throw new Error(`response signing supports RSA and EC keys, not ${type}`);
    this.tokenB64 = cert.raw.toString('base64');
    this.ttlMs = (opts.ttlSeconds ?? 300) * 1000;
  }

  /**
   * A complete signed envelope around `body` (the element(s) inside soap:Body); `header` blocks
   * (WS-Addressing's reply headers) follow the Security header.
   */
  envelope(
    version: SoapVersion,
    body: string,
    header = '',
    now = Date.now(),
    signedHeaders: readonly SignedHeader[] = [],
  ): string {
    const ns = version === '1.1' ? SOAP11_NS : SOAP12_NS;
    const n = (++this.counter).toString(36);
    const bodyId = `Body-${this.idPrefix}-${n}`;
    const tsId = `TS-${this.idPrefix}-${n}`;
    const tokenId = `X509-${this.idPrefix}-${n}`;

    const bodyC14n = excC14n(
      parseXml(
        `<soap:Body xmlns:soap="${ns}" xmlns:wsu="${WSU_NS}" wsu:Id="${bodyId}">${body}</soap:Body>`,
        OWN_OUTPUT_LIMITS,
      ),
    );
    const created = new Date(now).toISOString();
    const expires = new Date(now + this.ttlMs).toISOString();
    const tsInner = `<wsu:Created>${created}</wsu:Created><wsu:Expires>${expires}</wsu:Expires>`;
    const tsC14n = `<wsu:Timestamp xmlns:wsu="${WSU_NS}" wsu:Id="${tsId}">${tsInner}</wsu:Timestamp>`;

    // Each block declares what it uses, so its canonical form alone is its form in the envelope.
    let headerRefs = '';
    let signedBlocks = '';
    signedHeaders.forEach((h, i) => {
      const id = `H${i}-${this.idPrefix}-${n}`;
      const prefix = h.qname.slice(0, h.qname.indexOf(':'));
      const open = `<${h.qname} xmlns:${prefix}="${h.ns}" wsu:Id="${id}"${h.attrs ?? ''}>`;
      const block = `${open}${h.content}</${h.qname}>`;
      const c14n = excC14n(
        parseXml(
          block.replace(open, open.replace(' wsu:Id=', ` xmlns:wsu="${WSU_NS}" wsu:Id=`)),
          OWN_OUTPUT_LIMITS,
        ),
      );
      headerRefs += reference(id, digest(c14n));
      signedBlocks += block;
    });
    const signedInfo =
      `<ds:SignedInfo xmlns:ds="${DS_NS}">` +
      `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"></ds:CanonicalizationMethod>` +
      `<ds:SignatureMethod Algorithm="${SIGNATURE_METHOD_URI[this.algorithm]}"></ds:SignatureMethod>` +
      reference(bodyId, digest(bodyC14n)) +
      reference(tsId, digest(tsC14n)) +
      headerRefs +
      `</ds:SignedInfo>`;
    const signatureValue = cryptoSign(
      'sha256',
      Buffer.from(signedInfo, 'utf8'),
      this.algorithm === 'ecdsa-sha256' ? { key: this.key, dsaEncoding: 'ieee-p1363' } : this.key,
    ).toString('base64');

    return (
      `<?xml version="1.0" encoding="utf-8"?>` +
      `<soap:Envelope xmlns:soap="${ns}" xmlns:wsse="${WSSE_NS}" xmlns:wsu="${WSU_NS}" xmlns:ds="${DS_NS}">` +
      `<soap:Header><wsse:Security>` +
      `<wsu:Timestamp wsu:Id="${tsId}">${tsInner}</wsu:Timestamp>` +
      `<wsse:BinarySecurityToken EncodingType="${BASE64_BINARY}" ValueType="${X509V3}" wsu:Id="${tokenId}">${this.tokenB64}</wsse:BinarySecurityToken>` +
      `<ds:Signature>${signedInfo}<ds:SignatureValue>${signatureValue}</ds:SignatureValue>` +
      `<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#${tokenId}" ValueType="${X509V3}"/></wsse:SecurityTokenReference></ds:KeyInfo>` +
      `</ds:Signature></wsse:Security>${signedBlocks}${header}</soap:Header>` +
      `<soap:Body wsu:Id="${bodyId}">${body}</soap:Body></soap:Envelope>`
    );
  }
}

function digest(canonical: string): string {
  return createHash('sha256').update(canonical, 'utf8').digest('base64');
}

function reference(id: string, digestValue: string): string {
  return (
    `<ds:Reference URI="#${id}"><ds:Transforms><ds:Transform Algorithm="${EXC_C14N}"></ds:Transform></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="${SHA256_DIGEST}"></ds:DigestMethod><ds:DigestValue>${digestValue}</ds:DigestValue></ds:Reference>`
  );
}
