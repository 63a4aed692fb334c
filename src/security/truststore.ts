/**
 * Decides whether a signing certificate belongs to the bank: it must chain to a configured
 * trust anchor through CA certificates, be within its dates, allow digital signatures, carry a
 * strong enough key, not be listed in a configured CRL, and have names that the name constraints
 * of every CA above it allow (name-constraints.ts). OCSP, when on, runs after this (ocsp.ts).
 *
 * Building a chain costs several public-key operations, so the verdict for a certificate is
 * cached (by its DER) and only the validity dates are re-checked per request. A failed verdict
 * is cached too, so an attacker replaying a bad token cannot make us rebuild chains.
 */
import 'reflect-metadata';
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as px509 from '@peculiar/x509';
import { GatewayError } from '../errors/catalogue';
import { dnKey, rfc4514FromNode } from './dn';
import { checkNameConstraints, readNameConstraints } from './name-constraints';

export interface TrustConfig {
  caFiles: string[];
  intermediateFiles: string[];
  crlFiles: string[];
  signerCertFiles: string[];
}

export interface KeyPolicy {
  minRsaBits: number;
}

export interface TrustedSigner {
  cert: X509Certificate;
  key: KeyObject;
  keyType: 'rsa' | 'ec';
  /** RFC 4514 subject DN. */
  subject: string;
  /** Upper-case hex with colons, as Node prints it. */
  fingerprint256: string;
  /** The chain's combined validity window, re-checked on every request. */
  notBefore: number;
  notAfter: number;
  /** The CA that issued the signer certificate (for OCSP); absent when the signer is itself an anchor. */
  issuer?: X509Certificate;
}

type Verdict = { ok: true; signer: TrustedSigner } | { ok: false; error: GatewayError };

const MAX_CHAIN = 8;
const MAX_CACHED = 10_000;
const ALLOWED_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** Splits a file holding one or more PEM certificates (or one DER certificate). */
function readCertificates(file: string): X509Certificate[] {
  const data = readFileSync(file);
  const text = data.toString('latin1');
  if (!text.includes('-----BEGIN')) return [new X509Certificate(data)];
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file} holds no PEM certificate`);
  return blocks.map((b) => new X509Certificate(b));
}

function dateOf(s: string): number {
  return new Date(s).getTime();
}

const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_ANY = '2.5.29.37.0';

function untrusted(message: string): GatewayError {
  return new GatewayError('SSP_WSS_UNTRUSTED', message);
}

export class TrustStore {
  private readonly anchors = new Map<string, X509Certificate>();
  private readonly issuers: X509Certificate[] = [];
  /** Verified CRLs by the fingerprint of the CA that signed them; replaced whole on reload. */
  private crls = new Map<string, px509.X509Crl>();
  private crlFiles: string[] = [];
  private readonly byIssuerSerial = new Map<string, X509Certificate>();
  private readonly bySki = new Map<string, X509Certificate>();
  private readonly byThumbprint = new Map<string, X509Certificate>();
  private readonly verdicts = new Map<string, Verdict>();

  private constructor(private readonly policy: KeyPolicy) {}

  static async load(cfg: TrustConfig, policy: KeyPolicy): Promise<TrustStore> {
    const ts = new TrustStore(policy);
    for (const f of cfg.caFiles) {
      for (const c of readCertificates(f)) {
        ts.anchors.set(c.fingerprint256, c);
        ts.issuers.push(c);
      }
    }
    for (const f of cfg.intermediateFiles) ts.issuers.push(...readCertificates(f));
    ts.crls = await ts.readCrls(cfg.crlFiles);
    ts.crlFiles = [...cfg.crlFiles];
    for (const f of cfg.signerCertFiles) for (const c of readCertificates(f)) ts.addSignerCert(c);
    return ts;
  }

  get anchorCount(): number {
    return this.anchors.size;
  }

  /** Reads and verifies every CRL file; throws naming the first one that cannot be used. */
  private async readCrls(files: readonly string[]): Promise<Map<string, px509.X509Crl>> {
    const out = new Map<string, px509.X509Crl>();
    for (const file of files) {
      let crl: px509.X509Crl;
      try {
        crl = new px509.X509Crl(readFileSync(file));
      } catch (e) {
        throw new Error(`CRL ${file} cannot be read: ${e instanceof Error ? e.message : String(e)}`, {
          cause: e,
        });
      }
      const signer = await this.crlSigner(crl);
      if (!signer) throw new Error(`CRL ${file} is not signed by any configured CA (issuer ${crl.issuer})`);
      out.set(signer.fingerprint256, crl);
    }
    return out;
  }

  private async crlSigner(crl: px509.X509Crl): Promise<X509Certificate | undefined> {
    for (const ca of this.issuers) {
      if (dnKey(rfc4514FromNode(ca.subject)) !== dnKey(crl.issuer)) continue;
      if (await crl.verify({ publicKey: new px509.X509Certificate(ca.raw) })) return ca;
    }
    return undefined;
  }

  /**
   * Reads the CRL files again. All of them must read and verify, or nothing changes and the
   * error says which file is wrong: a half-written or forged CRL must not drop revocations.
   * Certificates are judged again against the new set (cached verdicts are forgotten).
   */
  async reloadCrls(): Promise<{ crls: number }> {
    const next = await this.readCrls(this.crlFiles);
    this.crls = next;
    this.verdicts.clear();
    return { crls: next.size };
  }

  /** The CRL files in effect, for watching. */
  get crlPaths(): readonly string[] {
    return this.crlFiles;
  }

  private addSignerCert(c: X509Certificate): void {
    this.byIssuerSerial.set(issuerSerialKey(rfc4514FromNode(c.issuer), BigInt('0x' + c.serialNumber)), c);
    this.byThumbprint.set(createHash('sha1').update(c.raw).digest('base64'), c);
    const ski = new px509.X509Certificate(c.raw).getExtension(px509.SubjectKeyIdentifierExtension);
    if (ski) this.bySki.set(Buffer.from(ski.keyId, 'hex').toString('base64'), c);
  }

  findByIssuerSerial(issuerDn: string, serial: string): X509Certificate | undefined {
    let n: bigint;
    try {
      n = BigInt(serial.trim());
    } catch {
      return undefined;
    }
    return this.byIssuerSerial.get(issuerSerialKey(issuerDn, n));
  }

  findBySki(base64: string): X509Certificate | undefined {
    return this.bySki.get(normalizeB64(base64));
  }

  findByThumbprint(base64: string): X509Certificate | undefined {
    return this.byThumbprint.get(normalizeB64(base64));
  }

  /**
   * The trusted signer for a DER certificate, or a GatewayError saying why not. `cacheKey` is
   * any string identifying the DER exactly (the token's base64 text avoids hashing it again).
   */
  check(der: Buffer, cacheKey: string, now: number): TrustedSigner {
    let v = this.verdicts.get(cacheKey);
    if (!v) {
      v = this.evaluate(der);
      if (this.verdicts.size >= MAX_CACHED) this.verdicts.clear();
      this.verdicts.set(cacheKey, v);
    }
    if (!v.ok) throw v.error;
    const s = v.signer;
    if (now < s.notBefore) throw untrusted(`the signing certificate ${s.subject} is not valid yet`);
    if (now > s.notAfter) throw untrusted(`the signing certificate ${s.subject} or its chain has expired`);
    return s;
  }

  private evaluate(der: Buffer): Verdict {
    try {
      return { ok: true, signer: this.buildSigner(der) };
    } catch (e) {
      if (e instanceof GatewayError) return { ok: false, error: e };
      return {
        ok: false,
        error: untrusted(`the signing certificate cannot be read: ${(e as Error).message}`),
      };
    }
  }

  private buildSigner(der: Buffer): TrustedSigner {
    const leaf = new X509Certificate(der);
    const subject = rfc4514FromNode(leaf.subject);
    const key = leaf.publicKey;
    const keyType = checkKey(key, this.policy, subject);
    const leafExt = new px509.X509Certificate(der);
    if (leaf.ca) throw untrusted(`${subject} is a CA certificate; requests must be signed by an end entity`);
    const ku = leafExt.getExtension(px509.KeyUsagesExtension);
    if (
      ku &&
      !(ku.usages & px509.KeyUsageFlags.digitalSignature) &&
      !(ku.usages & px509.KeyUsageFlags.nonRepudiation)
    ) {
      throw untrusted(`the key usage of ${subject} does not allow digital signatures`);
    }
    // RFC 5280 4.2.1.12: when the extension is present, the certificate is for those purposes only.
    const eku = leafExt.getExtension(px509.ExtendedKeyUsageExtension);
    if (eku && !eku.usages.some((u) => u === EKU_CLIENT_AUTH || u === EKU_ANY)) {
      throw untrusted(
        `the extended key usage of ${subject} does not allow client authentication (clientAuth)`,
      );
    }

    let notBefore = dateOf(leaf.validFrom);
    let notAfter = dateOf(leaf.validTo);
    let cur = leaf;
    let curExt = leafExt;
    let leafIssuer: X509Certificate | undefined;
    // The certificates below the issuer being looked at, which its name constraints govern.
    const below: { cert: px509.X509Certificate; name: string; selfIssued: boolean }[] = [
      { cert: leafExt, name: subject, selfIssued: false },
    ];
    for (let depth = 0; !this.anchors.has(cur.fingerprint256); depth++) {
      if (depth >= MAX_CHAIN) throw untrusted(`the chain of ${subject} is longer than ${MAX_CHAIN}`);
      const issuer = this.issuers.find((c) => c !== cur && cur.checkIssued(c) && cur.verify(c.publicKey));
      if (!issuer) {
        throw untrusted(
          cur.checkIssued(cur)
            ? `${subject} is self-signed and not in the trust store`
            : `${subject} does not chain to a trusted CA (issuer ${rfc4514FromNode(cur.issuer)})`,
        );
      }
      const issuerName = rfc4514FromNode(issuer.subject);
      if (!issuer.ca) throw untrusted(`${issuerName} issued ${subject} but is not a CA`);
      const issuerExt = new px509.X509Certificate(issuer.raw);
      const issuerKu = issuerExt.getExtension(px509.KeyUsagesExtension);
      if (issuerKu && !(issuerKu.usages & px509.KeyUsageFlags.keyCertSign)) {
        throw untrusted(`${issuerName} may not sign certificates (key usage)`);
      }
      // depth counts the CA certificates between this issuer and the leaf.
      const pathLen = issuerExt.getExtension(px509.BasicConstraintsExtension)?.pathLength;
      if (pathLen !== undefined && depth > pathLen) {
        throw untrusted(
          `${issuerName} allows ${pathLen} intermediate CA(s) below it; the chain of ${subject} has ${depth}`,
        );
      }
      // RFC 5280 4.2.1.10, as OpenSSL does it: trust anchors' constraints count too.
      const nc = readNameConstraints(issuerExt, issuerName);
      if (nc) {
        for (const b of below) if (!b.selfIssued) checkNameConstraints(nc, issuerName, b.cert, b.name);
      }
      const crl = this.crls.get(issuer.fingerprint256);
      if (crl && crl.findRevoked(curExt)) {
        throw untrusted(`${rfc4514FromNode(cur.subject)} has been revoked by ${issuerName}`);
      }
      notBefore = Math.max(notBefore, dateOf(issuer.validFrom));
      notAfter = Math.min(notAfter, dateOf(issuer.validTo));
      leafIssuer ??= issuer;
      below.push({ cert: issuerExt, name: issuerName, selfIssued: issuer.checkIssued(issuer) });
      cur = issuer;
      curExt = issuerExt;
    }
    return {
      cert: leaf,
      key,
      keyType,
      subject,
      fingerprint256: leaf.fingerprint256,
      notBefore,
      notAfter,
      ...(leafIssuer ? { issuer: leafIssuer } : {}),
    };
  }
}

function checkKey(key: KeyObject, policy: KeyPolicy, subject: string): 'rsa' | 'ec' {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < policy.minRsaBits) {
      throw new GatewayError(
        'SSP_WSS_ALGORITHM',
        `the RSA key of ${subject} has ${bits} bits; at least ${policy.minRsaBits} are required`,
      );
    }
    return 'rsa';
  }
  if (key.asymmetricKeyType === 'ec') {
    if (!ALLOWED_CURVES.has(d.namedCurve ?? '')) {
      throw new GatewayError(
        'SSP_WSS_ALGORITHM',
        `the EC curve ${d.namedCurve} of ${subject} is not allowed`,
      );
    }
    return 'ec';
  }
  throw new GatewayError(
    'SSP_WSS_ALGORITHM',
    `the ${key.asymmetricKeyType} key of ${subject} is not supported`,
  );
}

function issuerSerialKey(issuerDn: string, serial: bigint): string {
  return `${dnKey(issuerDn)}|${serial.toString()}`;
}

function normalizeB64(s: string): string {
  return Buffer.from(s.trim(), 'base64').toString('base64');
}
