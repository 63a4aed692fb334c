/**
 * Certificates minted in-process with @peculiar/x509 on WebCrypto, for unit tests of chain and
 * revocation checks: P-256 keys (fast to make), any extension a case needs.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as px509 from '@peculiar/x509';

export interface Minted {
  cert: px509.X509Certificate;
  /** The same certificate as Node sees it. */
  x509: X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
let serial = 0x1000;

export interface MintSpec {
  subject: string;
  /** Self-signed when absent. */
  issuer?: Minted;
  ca?: boolean;
  /** Extended key usage OIDs. */
  eku?: string[];
  /** The OCSP responder URL in the Authority Information Access extension. */
  aiaOcsp?: string;
  san?: px509.JsonGeneralNames;
  /** Further extensions, as built by the case. */
  extra?: px509.Extension[];
  notAfter?: Date;
}

export async function mint(o: MintSpec): Promise<Minted> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const ski = await px509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto);
  const issuerSki = o.issuer?.cert.getExtension(px509.SubjectKeyIdentifierExtension)?.keyId ?? ski.keyId;
  const extensions: px509.Extension[] = [
    new px509.BasicConstraintsExtension(o.ca === true, undefined, true),
    new px509.KeyUsagesExtension(
      o.ca
        ? px509.KeyUsageFlags.keyCertSign | px509.KeyUsageFlags.cRLSign
        : px509.KeyUsageFlags.digitalSignature,
      true,
    ),
    ski,
    new px509.AuthorityKeyIdentifierExtension(issuerSki),
  ];
  if (o.eku) extensions.push(new px509.ExtendedKeyUsageExtension(o.eku));
  if (o.aiaOcsp) extensions.push(new px509.AuthorityInfoAccessExtension({ ocsp: [o.aiaOcsp] }));
  if (o.san) extensions.push(new px509.SubjectAlternativeNameExtension(o.san));
  extensions.push(...(o.extra ?? []));
  const cert = await px509.X509CertificateGenerator.create(
    {
      serialNumber: (++serial).toString(16),
      subject: o.subject,
      issuer: o.issuer ? o.issuer.cert.subject : o.subject,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: o.notAfter ?? new Date(Date.now() + 86_400_000),
      publicKey: keys.publicKey,
      signingKey: (o.issuer?.keys ?? keys).privateKey,
      signingAlgorithm: EC_P256,
      extensions,
    },
    webcrypto,
  );
  return { cert, keys, x509: new X509Certificate(Buffer.from(cert.rawData)) };
}
