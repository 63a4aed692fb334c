/**
 * A throwaway PKI for tests, with good certificates and deliberately bad ones. Generated once per
 * process into a mkdtemp directory (removed at exit); files stay put while child processes use them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PROFILES,
  createCrl,
  daysFromNow,
  issueCert,
  writeCertPair,
  writeFileAtomic,
  type CertAndKey,
  type CertPair,
  type CertSpec,
  type SubjectFields,
} from '../../src/commands/dev-pki';

export type { CertPair };

export interface TestPki {
  dir: string;
  /** Trust anchor. */
  ca: CertPair;
  /** CRL signed by `ca` that lists `revoked`. */
  crlFile: string;
  /** RSA-2048 CN=client-a, O=Symphony Test, good. */
  client: CertPair;
  /** RSA-2048 CN=client-b, O=Symphony Test, good (a second consumer). */
  otherClient: CertPair;
  /** ECDSA P-256 CN=client-ec, good. */
  ecClient: CertPair;
  /** Issued by ca, notAfter in the past. */
  expired: CertPair;
  /** Issued by ca, notBefore tomorrow. */
  notYetValid: CertPair;
  /** Issued by ca, listed in crlFile. */
  revoked: CertPair;
  /** Attacker: self-signed RSA-2048 with the same subject as `client`. */
  selfSigned: CertPair;
  /** Issued by a CA outside the trust store (which copies the real CA's name), same subject as `client`. */
  rogueCaClient: CertPair;
  /** RSA-1024 issued by ca. */
  weakRsa: CertPair;
  /** Issued by ca, keyUsage keyEncipherment only. */
  noDigitalSignature: CertPair;
  /** Issued by `client` (an end-entity, CA:false): must be refused. */
  notCaIssued: CertPair;
  /** Response signing, RSA-2048. */
  proxyRsa: CertPair;
  /** Response signing, ECDSA P-256. */
  proxyEc: CertPair;
  /** TLS for localhost / 127.0.0.1 / ::1. */
  server: CertPair;
}

const O = 'Symphony Test';
const CA_SUBJECT: SubjectFields = { CN: 'Symphony Test Root CA', O };
const CLIENT_A: SubjectFields = { CN: 'client-a', O };

async function generate(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'symphony-test-pki-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

  // Issuers are passed as promises so that all keys are generated concurrently.
  const ca = issueCert({ ...PROFILES.rootCa, subject: CA_SUBJECT });
  // Same name as the trusted CA: a verifier that matches issuers by name alone would accept it.
  const rogueCa = issueCert({ ...PROFILES.rootCa, subject: CA_SUBJECT });
  rogueCa.catch(() => undefined); // not awaited directly: a failure surfaces through rogueCaClient
  const client = issueCert({ ...PROFILES.client, subject: CLIENT_A, issuer: ca });
  const byCa = (CN: string, extra: Partial<CertSpec> = {}): Promise<CertAndKey> =>
    issueCert({ ...PROFILES.client, subject: { CN, O }, issuer: ca, ...extra });

  const certs = {
    ca,
    client,
    otherClient: byCa('client-b'),
    ecClient: byCa('client-ec', { key: { type: 'ec' } }),
    expired: byCa('expired', { notBefore: daysFromNow(-30), notAfter: daysFromNow(-1) }),
    notYetValid: byCa('not-yet-valid', { notBefore: daysFromNow(1), notAfter: daysFromNow(365) }),
    revoked: byCa('revoked'),
    selfSigned: issueCert({ ...PROFILES.client, subject: CLIENT_A }),
    rogueCaClient: issueCert({ ...PROFILES.client, subject: CLIENT_A, issuer: rogueCa }),
    weakRsa: byCa('weak-rsa', { key: { type: 'rsa', bits: 1024 } }),
    noDigitalSignature: byCa('no-digital-signature', { keyUsage: ['keyEncipherment'] }),
    notCaIssued: byCa('not-ca-issued', { issuer: client }),
    proxyRsa: issueCert({ ...PROFILES.responseSigner, subject: { CN: 'proxy-signer-rsa', O }, issuer: ca }),
    proxyEc: issueCert({
      ...PROFILES.responseSigner,
      subject: { CN: 'proxy-signer-ec', O },
      key: { type: 'ec' },
      issuer: ca,
    }),
    server: issueCert({ ...PROFILES.tlsServer, subject: { CN: 'localhost', O }, issuer: ca }),
  };
  const names = Object.keys(certs) as (keyof typeof certs)[];
  const issued = await Promise.all(names.map((n) => certs[n]));
  const pairs = Object.fromEntries(names.map((n, i) => [n, writeCertPair(dir, n, issued[i]!)])) as Record<
    keyof typeof certs,
    CertPair
  >;

  const crlFile = join(dir, 'crl.pem');
  writeFileAtomic(crlFile, await createCrl(pairs.ca, { revoked: [pairs.revoked.certPem] }), 0o644);
  return { dir, crlFile, ...pairs };
}

let cached: Promise<TestPki> | undefined;

/** The process-wide test PKI (generated on first call, well under a second). */
export function makeTestPki(): Promise<TestPki> {
  cached ??= generate();
  return cached;
}
