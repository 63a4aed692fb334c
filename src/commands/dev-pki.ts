/**
 * Development PKI for WS-Security and TLS, plus the certificate-issuing primitives the test PKI
 * (test/helpers/pki.ts) is built from, so that there is one implementation.
 *
 * RSA keys, RSA-signed RSA certificates and PKCS#12 use node-forge. forge cannot encode EC keys, so
 * any certificate with an EC key (or an EC issuer) and every CRL goes through @peculiar/x509 on
 * Node's WebCrypto, with the issuer's PKCS#8 key imported so that the same CA signs everything.
 */
import 'reflect-metadata'; // @peculiar/x509 uses tsyringe decorators, which need it loaded first
import * as x509 from '@peculiar/x509';
import * as forge from 'node-forge';
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  randomBytes,
  sign,
  webcrypto,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const generateNodeKeyPair = promisify(generateKeyPair);

export type KeySpec = { type: 'rsa'; bits: number } | { type: 'ec' }; // ec: P-256
export type KeyUsage = 'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';
export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

/** Subject fields, encoded in DER as O, OU, CN (RFC 4514 string: "CN=…,OU=…,O=…"). */
export interface SubjectFields {
  CN: string;
  OU?: string;
  O?: string;
}

export interface CertAndKey {
  certPem: string;
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"), unencrypted. */
  keyPem: string;
}

export interface CertPair extends CertAndKey {
  certFile: string;
  keyFile: string;
}

/** The extension set that decides what a certificate is for. */
export interface CertProfile {
  ca?: boolean;
  /** For a CA: how many intermediate CAs may follow it (basicConstraints pathLenConstraint). */
  pathLen?: number;
  keyUsage: KeyUsage[];
  extKeyUsage?: ExtKeyUsage[];
  san?: { dns?: string[]; ip?: string[] };
}

export interface CertSpec extends CertProfile {
  subject: SubjectFields;
  /** Default RSA 2048. */
  key?: KeySpec;
  /**
   * Signing CA; self-signed when absent. May be a promise so that the subject key is generated
   * while the issuer is still being made (RSA key generation dominates the cost).
   */
  issuer?: CertAndKey | Promise<CertAndKey>;
  /** Default now − 1 h, so that a verifier whose clock is slightly behind accepts it. */
  notBefore?: Date;
  /** Default now + 2 years. */
  notAfter?: Date;
}

export const PROFILES = {
  rootCa: { ca: true, keyUsage: ['keyCertSign', 'cRLSign'] },
  tlsServer: {
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extKeyUsage: ['serverAuth'],
    san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] },
  },
  /** The proxy's SOAP response signer. */
  responseSigner: { keyUsage: ['digitalSignature', 'nonRepudiation'] },
  /** A WS-Security client: signs requests, may also present the certificate in mTLS. */
  client: { keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] },
} satisfies Record<string, CertProfile>;

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

export function fromNow(ms: number): Date {
  return new Date(Date.now() + ms);
}
export function daysFromNow(days: number): Date {
  return fromNow(days * DAY_MS);
}

/** Random positive 16-byte serial: top bit clear (positive), first byte non-zero (minimal DER). */
export function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 0x40;
  return b.toString('hex');
}

/** A new private key as PKCS#8 PEM. Async so that several keys are generated on the thread pool at once. */
export async function generateKeyPem(spec: KeySpec): Promise<string> {
  if (spec.type === 'ec') {
    const { privateKey } = await generateNodeKeyPair('ec', { namedCurve: 'P-256' });
    return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
  // forge delegates to Node's native RSA keygen (tens of ms for 2048 bits) unless usePureJavaScript is set.
  const pair = await new Promise<forge.pki.rsa.KeyPair>((res, rej) =>
    forge.pki.rsa.generateKeyPair({ bits: spec.bits, e: 0x10001 }, (err, kp) => (err ? rej(err) : res(kp))),
  );
  return lf(
    forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(pair.privateKey))),
  );
}

/** forge writes CRLF PEM; everything else (Node, OpenSSL) writes LF, so files look alike. */
function lf(pem: string): string {
  return pem.replace(/\r\n/g, '\n');
}

function pemEncode(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function dnAttributes(s: SubjectFields): forge.pki.CertificateField[] {
  // OIDs are given because distinguishedNameToAsn1, unlike setSubject, does not fill them in.
  const fields: [string, string, string | undefined][] = [
    ['O', '2.5.4.10', s.O],
    ['OU', '2.5.4.11', s.OU],
    ['CN', '2.5.4.3', s.CN],
  ];
  // UTF8String, not forge's PrintableString default, so any name encodes correctly. forge's typings
  // call the tag an asn1.Class, but it is an asn1.Type.
  const utf8: number = forge.asn1.Type.UTF8;
  return fields
    .filter((f): f is [string, string, string] => f[2] !== undefined)
    .map(([shortName, type, value]) => ({ shortName, type, value, valueTagClass: utf8 }));
}

function keyType(keyPem: string): 'rsa' | 'ec' {
  const k = createPrivateKey(keyPem);
  if (k.asymmetricKeyType === 'rsa') return 'rsa';
  if (k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ec';
  throw new Error(`unsupported key type ${k.asymmetricKeyType ?? '?'}: only RSA and ECDSA P-256`);
}

/** Imports a PKCS#8 signing key into WebCrypto, with the SHA-256 signature algorithm for its type. */
async function webcryptoSigner(
  keyPem: string,
): Promise<{ key: webcrypto.CryptoKey; algorithm: webcrypto.Algorithm | webcrypto.EcdsaParams }> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  if (keyType(keyPem) === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']), algorithm };
  }
  const key = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'sign',
  ]);
  return { key, algorithm: { name: 'ECDSA', hash: 'SHA-256' } };
}

/** The issuer's subject key identifier, which becomes the child's authority key identifier. */
async function keyIdentifierHex(cert: x509.X509Certificate): Promise<string> {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return ski.keyId;
  return (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey, false, webcrypto)).keyId;
}

function forgeExtensions(spec: CertProfile): object[] {
  const exts: object[] = [
    {
      name: 'basicConstraints',
      critical: true,
      cA: spec.ca === true,
      ...(spec.pathLen !== undefined ? { pathLenConstraint: spec.pathLen } : {}),
    },
    { name: 'keyUsage', critical: true, ...Object.fromEntries(spec.keyUsage.map((u) => [u, true])) },
  ];
  if (spec.extKeyUsage?.length) {
    exts.push({ name: 'extKeyUsage', ...Object.fromEntries(spec.extKeyUsage.map((u) => [u, true])) });
  }
  if (spec.san) {
    const altNames = [
      ...(spec.san.dns ?? []).map((value) => ({ type: 2, value })),
      ...(spec.san.ip ?? []).map((ip) => ({ type: 7, ip })),
    ];
    exts.push({ name: 'subjectAltName', altNames });
  }
  return exts;
}

/** One certificate to issue, with its key and the values decided up front. */
interface Issuance {
  spec: CertSpec;
  keyPem: string;
  issuer: CertAndKey | undefined;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

// In node-forge (cert.sign uses it) but missing from @types/node-forge.
const forgeTbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 })
  .getTBSCertificate;

/** RSA subject signed by an RSA issuer (or self-signed): node-forge. */
async function issueWithForge(t: Issuance): Promise<string> {
  const { spec, keyPem, issuer } = t;
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = t.serial;
  cert.validity.notBefore = t.notBefore;
  cert.validity.notAfter = t.notAfter;
  cert.setSubject(dnAttributes(spec.subject));
  const issuerCert = issuer ? forge.pki.certificateFromPem(issuer.certPem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : dnAttributes(spec.subject));
  // forge's `keyIdentifier: true` would use the subject's own key, so pass the issuer's SKI explicitly.
  const akid = issuer
    ? forge.util.hexToBytes(await keyIdentifierHex(new x509.X509Certificate(issuer.certPem)))
    : cert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    ...forgeExtensions(spec),
    { name: 'subjectKeyIdentifier' }, // forge computes it from cert.publicKey, set above
    { name: 'authorityKeyIdentifier', keyIdentifier: akid },
  ]);
  // What cert.sign() does, but with Node's native RSA: forge's pure-JS private-key operation takes
  // ~70 ms per certificate, which adds up across the test PKI.
  cert.signatureOid = cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption;
  const tbs = forge.asn1.toDer(forgeTbs(cert)).getBytes();
  cert.signature = sign('sha256', Buffer.from(tbs, 'binary'), issuer ? issuer.keyPem : keyPem).toString(
    'binary',
  );
  return lf(forge.pki.certificateToPem(cert));
}

const PECULIAR_KEY_USAGE: Record<KeyUsage, x509.KeyUsageFlags> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  nonRepudiation: x509.KeyUsageFlags.nonRepudiation,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
};

/** Anything with an EC key on either side: @peculiar/x509 on WebCrypto. */
async function issueWithPeculiar(t: Issuance): Promise<string> {
  const { spec, keyPem, issuer } = t;
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const ski = await x509.SubjectKeyIdentifierExtension.create(spki, false, webcrypto);
  // The same DN encoder as the forge path, so subjects look alike whichever library issued them.
  const subject = new x509.Name(
    Buffer.from(
      forge.asn1
        .toDer(forge.pki.distinguishedNameToAsn1({ attributes: dnAttributes(spec.subject) }))
        .getBytes(),
      'binary',
    ),
  );
  const issuerCert = issuer ? new x509.X509Certificate(issuer.certPem) : undefined;
  const signer = await webcryptoSigner(issuer ? issuer.keyPem : keyPem);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(spec.ca === true, spec.pathLen, true),
    new x509.KeyUsagesExtension(
      spec.keyUsage.reduce((flags, u) => flags | PECULIAR_KEY_USAGE[u], 0),
      true,
    ),
    ski,
    new x509.AuthorityKeyIdentifierExtension(issuerCert ? await keyIdentifierHex(issuerCert) : ski.keyId),
  ];
  if (spec.extKeyUsage?.length) {
    extensions.push(
      new x509.ExtendedKeyUsageExtension(spec.extKeyUsage.map((u) => x509.ExtendedKeyUsage[u])),
    );
  }
  if (spec.san) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...(spec.san.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(spec.san.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: t.serial,
      subject,
      issuer: issuerCert ? issuerCert.subjectName : subject,
      notBefore: t.notBefore,
      notAfter: t.notAfter,
      publicKey: spki,
      signingKey: signer.key,
      signingAlgorithm: signer.algorithm,
      extensions,
    },
    webcrypto,
  );
  return pemEncode('CERTIFICATE', cert.rawData);
}

/** Issues one certificate (and its new key). SKI, AKI and basicConstraints are always present. */
export async function issueCert(spec: CertSpec): Promise<CertAndKey> {
  const keyPem = await generateKeyPem(spec.key ?? { type: 'rsa', bits: 2048 });
  const issuer = await spec.issuer;
  const t: Issuance = {
    spec,
    keyPem,
    issuer,
    serial: randomSerialHex(),
    notBefore: spec.notBefore ?? fromNow(-HOUR_MS),
    notAfter: spec.notAfter ?? daysFromNow(2 * 365),
  };
  const forgeCan = keyType(keyPem) === 'rsa' && (!issuer || keyType(issuer.keyPem) === 'rsa');
  return { certPem: await (forgeCan ? issueWithForge(t) : issueWithPeculiar(t)), keyPem };
}

/** A CRL signed by `ca` listing the `revoked` certificates (PEM); empty when none are given. */
export async function createCrl(
  ca: CertAndKey,
  opts: { revoked?: string[]; nextUpdate?: Date } = {},
): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const signer = await webcryptoSigner(ca.keyPem);
  const thisUpdate = fromNow(-HOUR_MS);
  // RFC 5280 requires a CRL number; seconds since the epoch keep regenerated CRLs increasing.
  const crlNumber = forge.asn1.create(
    forge.asn1.Class.UNIVERSAL,
    forge.asn1.Type.INTEGER,
    false,
    forge.asn1.integerToDer(Math.floor(Date.now() / 1000)).getBytes(),
  );
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: caCert.subjectName,
      thisUpdate,
      nextUpdate: opts.nextUpdate ?? daysFromNow(30),
      signingKey: signer.key,
      signingAlgorithm: signer.algorithm,
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(await keyIdentifierHex(caCert)),
        new x509.Extension('2.5.29.20', false, Buffer.from(forge.asn1.toDer(crlNumber).getBytes(), 'binary')),
      ],
      entries: (opts.revoked ?? []).map((pem) => ({
        serialNumber: new X509Certificate(pem).serialNumber,
        revocationDate: thisUpdate,
        reason: x509.X509CrlReason.keyCompromise,
      })),
    },
    webcrypto,
  );
  // "X509 CRL" is the label OpenSSL and Node expect; @peculiar/x509 would write "CRL".
  return pemEncode('X509 CRL', crl.rawData);
}

/**
 * PKCS#12 of an RSA key, its certificate and `chain`. 3DES key shroud with a SHA-1 MAC: the
 * combination Java 17 keytool, .NET and OpenSSL 3 (without the legacy provider) all open.
 */
export function toPkcs12(pair: CertAndKey, chain: string[], password: string, friendlyName: string): Buffer {
  if (keyType(pair.keyPem) !== 'rsa') throw new Error('toPkcs12: node-forge only handles RSA keys');
  const key = forge.pki.privateKeyFromPem(pair.keyPem) as forge.pki.rsa.PrivateKey;
  const certs = [pair.certPem, ...chain].map((pem) => forge.pki.certificateFromPem(pem));
  const p12 = forge.pkcs12.toPkcs12Asn1(key, certs, password, {
    algorithm: '3des',
    friendlyName,
    generateLocalKeyId: true,
  });
  return Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary');
}

/** Writes via a temporary file and rename, so that a reader never sees half a key. */
export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode); // the umask may have narrowed it; keys must be exactly 0600
  renameSync(tmp, path);
}

/** Writes `<base>.key` (0600) and then `<base>.pem` (0644) into `dir`. */
export function writeCertPair(dir: string, base: string, pair: CertAndKey): CertPair {
  const keyFile = join(dir, `${base}.key`);
  const certFile = join(dir, `${base}.pem`);
  writeFileAtomic(keyFile, pair.keyPem, 0o600);
  writeFileAtomic(certFile, pair.certPem, 0o644);
  return { ...pair, certFile, keyFile };
}

// ---------------------------------------------------------------------------------------------
// The development PKI

/** File names by logical name; other code depends on them. */
export const DEV_PKI_FILES = {
  ca: 'ca.pem',
  caKey: 'ca.key',
  crl: 'crl.pem',
  server: 'server.pem',
  serverKey: 'server.key',
  proxySigningRsa: 'proxy-signing-rsa.pem',
  proxySigningRsaKey: 'proxy-signing-rsa.key',
  proxySigningEc: 'proxy-signing-ec.pem',
  proxySigningEcKey: 'proxy-signing-ec.key',
  client: 'client.pem',
  clientKey: 'client.key',
  clientP12: 'client.p12',
  clientEc: 'client-ec.pem',
  clientEcKey: 'client-ec.key',
  readme: 'README.txt',
} as const;

export const DEV_P12_PASSWORD = 'changeit';
const DEV_O = 'symphony-soap-proxy dev';

export const DEV_PKI_README = [
  'symphony-soap-proxy development PKI. DEVELOPMENT ONLY, never use in production.',
  'ca.pem, ca.key, crl.pem: dev root CA (trust it via security.trust.caFiles) and its empty CRL.',
  'server.pem, server.key: TLS server certificate for localhost, 127.0.0.1 and ::1.',
  'proxy-signing-rsa.pem/.key, proxy-signing-ec.pem/.key: SOAP response signing (RSA 2048, ECDSA P-256).',
  'client.pem, client.key: dev client signing certificate (CN=dev-client,OU=cloud,O=symphony-soap-proxy dev).',
  `client.p12: the same client key and certificate plus the CA, password "${DEV_P12_PASSWORD}".`,
  'client-ec.pem, client-ec.key: ECDSA P-256 dev client signing certificate (CN=dev-client-ec).',
  'Private keys are unencrypted PKCS#8 PEM with mode 0600; never commit them.',
  'Regenerate with `symphony-soap-proxy certs dev --force`.',
];

export interface DevPkiResult {
  dir: string;
  /** false when `dir/ca.pem` already existed and the PKI was reused. */
  created: boolean;
  /** Logical name (see DEV_PKI_FILES) → absolute path. */
  files: Record<string, string>;
}

/** Writes the development PKI into `dir`, unless one is already there (`ca.pem` exists) and !force. */
export async function generateDevPki(dir: string, opts: { force?: boolean } = {}): Promise<DevPkiResult> {
  const abs = resolve(dir);
  const files: Record<string, string> = Object.fromEntries(
    Object.entries(DEV_PKI_FILES).map(([name, file]) => [name, join(abs, file)]),
  );
  if (!opts.force && existsSync(join(abs, DEV_PKI_FILES.ca))) return { dir: abs, created: false, files };
  mkdirSync(abs, { recursive: true, mode: 0o700 });

  // Everything starts at once: each subject key is generated while the CA is still being made.
  const caP = issueCert({
    ...PROFILES.rootCa,
    subject: { CN: 'symphony-soap-proxy dev CA', O: DEV_O },
    key: { type: 'rsa', bits: 3072 },
    notAfter: daysFromNow(5 * 365),
  });
  const [ca, server, signingRsa, signingEc, client, clientEc] = await Promise.all([
    caP,
    issueCert({ ...PROFILES.tlsServer, subject: { CN: 'localhost', O: DEV_O }, issuer: caP }),
    issueCert({
      ...PROFILES.responseSigner,
      subject: { CN: 'symphony-soap-proxy response signer (RSA)', O: DEV_O },
      issuer: caP,
    }),
    issueCert({
      ...PROFILES.responseSigner,
      subject: { CN: 'symphony-soap-proxy response signer (ECDSA)', O: DEV_O },
      key: { type: 'ec' },
      issuer: caP,
    }),
    issueCert({ ...PROFILES.client, subject: { CN: 'dev-client', OU: 'cloud', O: DEV_O }, issuer: caP }),
    issueCert({
      ...PROFILES.client,
      subject: { CN: 'dev-client-ec', OU: 'cloud', O: DEV_O },
      key: { type: 'ec' },
      issuer: caP,
    }),
  ]);
  const crl = await createCrl(ca);

  writeCertPair(abs, 'server', server);
  writeCertPair(abs, 'proxy-signing-rsa', signingRsa);
  writeCertPair(abs, 'proxy-signing-ec', signingEc);
  writeCertPair(abs, 'client', client);
  writeCertPair(abs, 'client-ec', clientEc);
  writeFileAtomic(files.clientP12, toPkcs12(client, [ca.certPem], DEV_P12_PASSWORD, 'dev-client'), 0o600);
  writeFileAtomic(files.crl, crl, 0o644);
  writeFileAtomic(files.readme, DEV_PKI_README.join('\n') + '\n', 0o644);
  // ca.pem last: it marks a complete PKI, so an interrupted run is redone rather than reused.
  writeCertPair(abs, 'ca', ca);
  return { dir: abs, created: true, files };
}
