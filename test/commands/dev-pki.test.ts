import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, type CertPair, type TestPki } from '../helpers/pki';
import { certsCommand } from '../../src/commands/certs';
import {
  DEV_P12_PASSWORD,
  DEV_PKI_FILES,
  generateDevPki,
  type DevPkiResult,
} from '../../src/commands/dev-pki';

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** `openssl verify` of `certFile` against a CA, optionally with a CRL, intermediates and a purpose. */
function opensslVerify(
  certFile: string,
  o: { ca: string; crl?: string; untrusted?: string; purpose?: string },
): { status: number | null; out: string } {
  const args = ['verify', '-CAfile', o.ca];
  if (o.crl) args.push('-crl_check', '-CRLfile', o.crl);
  if (o.untrusted) args.push('-untrusted', o.untrusted);
  if (o.purpose) args.push('-purpose', o.purpose);
  return run('openssl', [...args, certFile]);
}

function cert(file: string): X509Certificate {
  return new X509Certificate(readFileSync(file));
}

function peculiar(file: string): x509.X509Certificate {
  return new x509.X509Certificate(readFileSync(file, 'utf8'));
}

const YEAR_MS = 365 * 24 * 3600_000;
type PairName = { [K in keyof TestPki]: TestPki[K] extends CertPair ? K : never }[keyof TestPki];

describe('security/dev-pki: development PKI', function () {
  this.timeout(60000);
  let tmp: string;
  let pki: DevPkiResult;
  const f = (name: keyof typeof DEV_PKI_FILES): string => pki.files[name];
  const endEntities = ['server', 'proxySigningRsa', 'proxySigningEc', 'client', 'clientEc'] as const;
  const keys = [
    'caKey',
    'serverKey',
    'proxySigningRsaKey',
    'proxySigningEcKey',
    'clientKey',
    'clientEcKey',
  ] as const;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'dev-pki-test-'));
    pki = await generateDevPki(join(tmp, 'nested', 'dev'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('creates the directory and every file under its fixed name', () => {
    expect(pki.created).to.equal(true);
    expect(pki.dir).to.equal(join(tmp, 'nested', 'dev'));
    for (const [name, file] of Object.entries(DEV_PKI_FILES)) {
      expect(pki.files[name], name).to.equal(join(pki.dir, file));
      expect(statSync(pki.files[name]).size, file).to.be.greaterThan(0);
    }
  });

  it('makes a self-signed RSA-3072 root CA valid for 5 years', () => {
    const ca = cert(f('ca'));
    expect(ca.ca).to.equal(true);
    expect(ca.subject).to.equal('O=symphony-soap-proxy dev\nCN=symphony-soap-proxy dev CA');
    expect(ca.verify(ca.publicKey)).to.equal(true);
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).to.equal(3072);
    const years = (Date.parse(ca.validTo) - Date.now()) / YEAR_MS;
    expect(years).to.be.within(4.9, 5.1);
    const p = peculiar(f('ca'));
    const bc = p.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical]).to.deep.equal([true, true]);
    const ku = p.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).to.equal(true);
    expect(ku.usages).to.equal(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(p.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).to.match(/^[0-9a-f]{40}$/);
  });

  it('issues every end-entity certificate from the CA, with SKI, AKI, CA:false and random 16-byte serials', () => {
    const ca = cert(f('ca'));
    const caSki = peculiar(f('ca')).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    const serials = new Set<string>();
    for (const name of endEntities) {
      const c = cert(f(name));
      expect(c.checkIssued(ca), name).to.equal(true);
      expect(c.verify(ca.publicKey), name).to.equal(true);
      expect(c.ca, name).to.equal(false);
      expect(c.serialNumber, name).to.match(/^[0-7][0-9A-F]{31}$/); // 16 bytes, positive
      serials.add(c.serialNumber);
      expect(Date.parse(c.validFrom), name).to.be.below(Date.now() - 30 * 60_000);
      expect((Date.parse(c.validTo) - Date.now()) / YEAR_MS, name).to.be.within(1.9, 2.1);
      const p = peculiar(f(name));
      expect(p.getExtension(x509.BasicConstraintsExtension)?.ca, name).to.equal(false);
      expect(p.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, name).to.match(/^[0-9a-f]{40}$/);
      expect(p.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, name).to.equal(caSki);
    }
    expect(serials.size).to.equal(endEntities.length);
  });

  it('passes openssl verify with CRL checking, for the purpose each certificate is for', () => {
    const purposes: Partial<Record<(typeof endEntities)[number], string>> = {
      server: 'sslserver',
      client: 'sslclient',
      clientEc: 'sslclient',
    };
    for (const name of endEntities) {
      const r = opensslVerify(f(name), { ca: f('ca'), crl: f('crl'), purpose: purposes[name] });
      expect(r.status, `${name}: ${r.out}`).to.equal(0);
      expect(r.out).to.contain(': OK');
    }
  });

  it('gives each certificate its subject, key type and usage', () => {
    const server = cert(f('server'));
    expect(server.subjectAltName).to.equal('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(server.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.1']); // Node's keyUsage is the EKU list
    expect(peculiar(f('server')).getExtension(x509.KeyUsagesExtension)?.usages).to.equal(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );

    const client = cert(f('client'));
    expect(client.subject).to.equal('O=symphony-soap-proxy dev\nOU=cloud\nCN=dev-client');
    expect(client.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.2']);
    expect(client.publicKey.asymmetricKeyDetails?.modulusLength).to.equal(2048);
    expect(cert(f('clientEc')).subject).to.contain('CN=dev-client-ec');
    expect(cert(f('clientEc')).keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.2']);

    const signing = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation;
    expect(cert(f('proxySigningRsa')).subject).to.contain('CN=symphony-soap-proxy response signer (RSA)');
    expect(cert(f('proxySigningEc')).subject).to.contain('CN=symphony-soap-proxy response signer (ECDSA)');
    for (const name of ['proxySigningRsa', 'proxySigningEc'] as const) {
      expect(peculiar(f(name)).getExtension(x509.KeyUsagesExtension)?.usages, name).to.equal(signing);
    }
    for (const name of ['proxySigningEc', 'clientEc'] as const) {
      expect(cert(f(name)).publicKey.asymmetricKeyDetails?.namedCurve, name).to.equal('prime256v1');
    }
  });

  it('writes unencrypted PKCS#8 keys with mode 0600 that match their certificates', () => {
    for (const name of keys) {
      expect(statSync(f(name)).mode & 0o777, name).to.equal(0o600);
      const pem = readFileSync(f(name), 'utf8');
      expect(pem.startsWith(`-----BEGIN ${'PRIVATE'} KEY-----\n`), name).to.equal(true);
      expect(
        cert(f(name.replace(/Key$/, '') as keyof typeof DEV_PKI_FILES)).checkPrivateKey(
          createPrivateKey(pem),
        ),
      ).to.equal(true);
    }
    expect(statSync(f('clientP12')).mode & 0o777).to.equal(0o600);
  });

  it('signs an empty CRL valid for 30 days', () => {
    const r = run('openssl', ['crl', '-in', f('crl'), '-CAfile', f('ca'), '-noout', '-text']);
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.contain('verify OK');
    expect(r.out).to.contain('No Revoked Certificates');
    const crl = new x509.X509Crl(readFileSync(f('crl'), 'utf8'));
    const days = (crl.nextUpdate!.getTime() - Date.now()) / (24 * 3600_000);
    expect(days).to.be.within(29.9, 30.1);
  });

  it('bundles the client key, certificate and CA in a PKCS#12 that openssl opens with "changeit"', () => {
    const p12 = f('clientP12');
    const info = run('openssl', [
      'pkcs12',
      '-info',
      '-in',
      p12,
      '-passin',
      `pass:${DEV_P12_PASSWORD}`,
      '-noout',
    ]);
    expect(info.status, info.out).to.equal(0);
    expect(info.out).to.contain('pbeWithSHA1And3-KeyTripleDES-CBC');
    const certs = run('openssl', ['pkcs12', '-in', p12, '-passin', `pass:${DEV_P12_PASSWORD}`, '-nokeys']);
    expect(certs.out).to.contain('friendlyName: dev-client');
    expect(certs.out.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
    expect(certs.out).to.contain('CN = symphony-soap-proxy dev CA');
    const wrong = run('openssl', ['pkcs12', '-info', '-in', p12, '-passin', 'pass:wrong', '-noout']);
    expect(wrong.status).to.not.equal(0);
  });

  it('makes a PKCS#12 that Java keytool lists as one private key entry', function () {
    if (run('keytool', ['-help']).status !== 0) this.skip(); // JDK 17 in CI; optional locally
    const r = run('keytool', [
      '-list',
      '-storetype',
      'PKCS12',
      '-keystore',
      f('clientP12'),
      '-storepass',
      DEV_P12_PASSWORD,
      '-v',
    ]);
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.contain('Alias name: dev-client');
    expect(r.out).to.contain('Entry type: PrivateKeyEntry');
    expect(r.out).to.contain('Certificate chain length: 2');
  });

  it('writes a README that says development only and how to regenerate', () => {
    const text = readFileSync(f('readme'), 'utf8');
    const lines = text.trim().split('\n');
    expect(lines.length).to.be.within(5, 10);
    expect(text).to.contain('never use in production');
    expect(text).to.contain('symphony-soap-proxy certs dev --force');
  });

  it('reuses an existing PKI unless forced', async () => {
    const before = readFileSync(f('ca'), 'utf8');
    const again = await generateDevPki(pki.dir);
    expect(again.created).to.equal(false);
    expect(again.files).to.deep.equal(pki.files);
    expect(readFileSync(f('ca'), 'utf8')).to.equal(before);
    const forced = await generateDevPki(pki.dir, { force: true });
    expect(forced.created).to.equal(true);
    expect(readFileSync(f('ca'), 'utf8')).to.not.equal(before);
    expect(opensslVerify(f('client'), { ca: f('ca'), crl: f('crl') }).status).to.equal(0);
  });

  it('certs dev prints the files, the p12 password and next steps, never key material', async () => {
    const out: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => void out.push(args.join(' '));
    try {
      await certsCommand(['dev', '--out', join(tmp, 'cmd')]);
      await certsCommand(['dev', '--out', join(tmp, 'cmd')]);
    } finally {
      console.log = log;
    }
    const [first, second] = out;
    expect(first).to.contain(`written to ${join(tmp, 'cmd')}`);
    for (const file of Object.values(DEV_PKI_FILES)) expect(first).to.contain(`  ${file}\n`);
    expect(first).to.contain(`password: ${DEV_P12_PASSWORD}`);
    expect(first).to.contain('security.trust.caFiles');
    expect(first).to.contain(join(tmp, 'cmd', 'client.p12'));
    expect(second).to.contain('reused');
    expect(out.join('\n')).to.not.match(/PRIVATE KEY|BEGIN/);
  });

  it('certs rejects an unknown subcommand or option with exit code 2', async () => {
    const err = console.error;
    const saved = process.exitCode;
    const messages: string[] = [];
    console.error = (...args: unknown[]) => void messages.push(args.join(' '));
    try {
      for (const argv of [[], ['prod'], ['dev', '--bogus']]) {
        process.exitCode = undefined;
        await certsCommand(argv);
        expect(process.exitCode, argv.join(' ')).to.equal(2);
      }
    } finally {
      console.error = err;
      process.exitCode = saved;
    }
    expect(messages.every((m) => m.includes('usage: symphony-soap-proxy certs dev'))).to.equal(true);
  });
});

describe('test/helpers/pki: test PKI with deliberately bad certificates', function () {
  this.timeout(60000);
  let pki: TestPki;
  let ms: number;

  before(async () => {
    const start = Date.now();
    pki = await makeTestPki();
    ms = Date.now() - start;
  });

  const verify = (name: PairName): { status: number | null; out: string } =>
    opensslVerify(pki[name].certFile, { ca: pki.ca.certFile, crl: pki.crlFile });

  it('is generated quickly, once per process', async () => {
    expect(ms).to.be.below(5000);
    expect(await makeTestPki()).to.equal(pki);
  });

  for (const name of ['client', 'otherClient', 'ecClient', 'proxyRsa', 'proxyEc', 'server'] as const) {
    it(`${name} verifies against the CA and the CRL`, () => {
      const r = verify(name);
      expect(r.status, r.out).to.equal(0);
    });
  }

  it('names the good clients as specified', () => {
    expect(cert(pki.client.certFile).subject).to.equal('O=Symphony Test\nCN=client-a');
    expect(cert(pki.otherClient.certFile).subject).to.equal('O=Symphony Test\nCN=client-b');
    expect(cert(pki.ecClient.certFile).publicKey.asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
    expect(cert(pki.proxyEc.certFile).publicKey.asymmetricKeyDetails?.namedCurve).to.equal('prime256v1');
  });

  it('revoked is listed in the CRL and fails CRL checking', () => {
    const crl = new x509.X509Crl(readFileSync(pki.crlFile, 'utf8'));
    const serial = cert(pki.revoked.certFile).serialNumber.toLowerCase();
    expect(crl.entries.map((e) => e.serialNumber.toLowerCase())).to.deep.equal([serial]);
    const r = verify('revoked');
    expect(r.status).to.not.equal(0);
    expect(r.out).to.contain('certificate revoked');
    // without the CRL, it is an otherwise good certificate
    expect(opensslVerify(pki.revoked.certFile, { ca: pki.ca.certFile }).status).to.equal(0);
  });

  it('expired is expired and notYetValid is not yet valid', () => {
    expect(Date.parse(cert(pki.expired.certFile).validTo)).to.be.below(Date.now());
    expect(verify('expired').out).to.contain('certificate has expired');
    expect(Date.parse(cert(pki.notYetValid.certFile).validFrom)).to.be.above(Date.now() + 12 * 3600_000);
    expect(verify('notYetValid').out).to.contain('certificate is not yet valid');
  });

  it('weakRsa is a 1024-bit key issued by the CA', () => {
    const c = cert(pki.weakRsa.certFile);
    expect(c.publicKey.asymmetricKeyDetails?.modulusLength).to.equal(1024);
    expect(c.verify(cert(pki.ca.certFile).publicKey)).to.equal(true);
  });

  it('selfSigned and rogueCaClient copy the client subject but fail verification', () => {
    const ca = cert(pki.ca.certFile);
    for (const name of ['selfSigned', 'rogueCaClient'] as const) {
      const c = cert(pki[name].certFile);
      expect(c.subject, name).to.equal(cert(pki.client.certFile).subject);
      expect(c.verify(ca.publicKey), name).to.equal(false);
      expect(verify(name).status, name).to.not.equal(0);
    }
    const self = cert(pki.selfSigned.certFile);
    expect(self.verify(self.publicKey)).to.equal(true);
    // The rogue CA reuses the real CA's name, so only the signature and key identifiers tell them apart.
    expect(cert(pki.rogueCaClient.certFile).issuer).to.equal(ca.subject);
  });

  it('noDigitalSignature chains to the CA but only allows keyEncipherment', () => {
    expect(verify('noDigitalSignature').status).to.equal(0);
    const ku = peculiar(pki.noDigitalSignature.certFile).getExtension(x509.KeyUsagesExtension);
    expect(ku?.usages).to.equal(x509.KeyUsageFlags.keyEncipherment);
  });

  it('notCaIssued is signed by the client, an end entity, and fails even when the client is supplied', () => {
    const c = cert(pki.notCaIssued.certFile);
    expect(c.issuer).to.equal(cert(pki.client.certFile).subject);
    expect(c.verify(cert(pki.client.certFile).publicKey)).to.equal(true);
    const r = opensslVerify(pki.notCaIssued.certFile, {
      ca: pki.ca.certFile,
      untrusted: pki.client.certFile,
    });
    expect(r.status).to.not.equal(0);
    expect(r.out).to.contain('invalid CA certificate');
  });
});
