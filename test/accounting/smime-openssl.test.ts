/**
 * The openssl binary as the oracle for our S/MIME: what SSM 2's receiver runs (`smime -verify`
 * with -CAfile, and with -CApath -noverify), what it extracts, `-pk7out | pkcs7 -print_certs`,
 * `smime -decrypt`, and `x509 -subject -nameopt compat` for the signer DN.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mint } from '../helpers/mint';
import { hasCommand, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import {
  encryptFor,
  forgeSigner,
  opensslSigner,
  signerSubject,
  type SmimeSigner,
} from '../../src/accounting/smime';

const BODY =
  'APEL-individual-job-message: v0.3\n' +
  'Site: TEST-SITE\nSubmitHost: grid-a\nLocalJobId: c1:s1:t1\nWallDuration: 12\nCpuDuration: 10\n' +
  'StartTime: 1767225600\nEndTime: 1767225612\n%%\n' +
  'Site: TEST-SITE\nSubmitHost: grid-a\nLocalJobId: c1:s1:t2\nWallDuration: 3\nCpuDuration: 2\n' +
  'StartTime: 1767225600\nEndTime: 1767225603\n%%\n';
const ENTITY = Buffer.from(`Content-Type: text/plain\r\n\r\n${BODY.replace(/\n/g, '\r\n')}`, 'latin1');

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function openssl(args: string[], input?: string | Buffer): Run {
  const r = spawnSync('openssl', args, { input, timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('latin1') };
}

/** Boundaries and base64 differ per run; everything else must be openssl's bytes. */
function layoutOf(msg: string): string {
  return msg
    .replace(/----[0-9A-F]{32}/g, '----BOUNDARY')
    .replace(/(?:^[A-Za-z0-9+/=]{1,64}\n)+/gm, '<base64>\n');
}

describe('accounting/smime against the openssl binary', function () {
  this.timeout(60000);
  let pki: TestPki;
  let dir: string;
  let caPath: string;
  let forgeRsa: SmimeSigner;
  let opensslRsa: SmimeSigner;

  before(async function () {
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install openssl');
    pki = await makeTestPki();
    dir = mkdtempSync(join(tmpdir(), 'smime-openssl-'));
    // SSM's -CApath: the CA under its subject hash, as c_rehash lays it out.
    caPath = join(dir, 'capath');
    mkdirSync(caPath);
    const hash = openssl(['x509', '-hash', '-noout', '-in', pki.ca.certFile]).stdout.toString().trim();
    copyFileSync(pki.ca.certFile, join(caPath, `${hash}.0`));
    // The proxy's signer profile has no extendedKeyUsage, so it passes S/MIME purpose checks.
    forgeRsa = forgeSigner({ certPem: pki.proxyRsa.certPem, keyPem: pki.proxyRsa.keyPem });
    opensslRsa = opensslSigner({ certPath: pki.proxyRsa.certFile, keyPath: pki.proxyRsa.keyFile });
  });

  after(async () => {
    await forgeRsa?.close();
    await opensslRsa?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function verifyCaFile(msg: string): Run {
    return openssl(['smime', '-verify', '-CAfile', pki.ca.certFile], msg);
  }

  it('forge output verifies with -CAfile and yields the CRLF entity, as openssl extracts from its own', async () => {
    const ours = verifyCaFile(await forgeRsa.sign(BODY));
    expect(ours.stderr).to.include('Verification successful');
    expect(ours.status).to.equal(0);
    expect(ours.stdout.equals(ENTITY), 'extracted entity').to.equal(true);
    const theirs = verifyCaFile(await opensslRsa.sign(BODY));
    expect(theirs.status, theirs.stderr).to.equal(0);
    expect(ours.stdout.equals(theirs.stdout), 'same bytes as from openssl').to.equal(true);
  });

  it("verifies the way SSM's receiver calls it (-CApath, -noverify)", async () => {
    const r = openssl(['smime', '-verify', '-CApath', caPath, '-noverify'], await forgeRsa.sign(BODY));
    expect(r.stderr).to.include('Verification successful');
    expect(r.stdout.equals(ENTITY)).to.equal(true);
  });

  it('has the byte layout of openssl smime -sign -text', async () => {
    expect(layoutOf(await forgeRsa.sign(BODY))).to.equal(layoutOf(await opensslRsa.sign(BODY)));
  });

  it('fails verification when one byte of the body changes', async () => {
    const signed = await forgeRsa.sign(BODY);
    const tampered = signed.replace('WallDuration: 12', 'WallDuration: 13');
    expect(tampered).to.not.equal(signed);
    const r = verifyCaFile(tampered);
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(/digest failure/);
  });

  it('embeds the signer (and the chain when given) for -pk7out | pkcs7 -print_certs', async () => {
    const withChain = forgeSigner({ ...pki.proxyRsa, chainPem: pki.ca.certPem });
    try {
      for (const [signer, expected] of [
        [forgeRsa, ['proxy-signer-rsa']],
        [withChain, ['proxy-signer-rsa', 'Symphony Test Root CA']],
      ] as const) {
        const p7 = openssl(['smime', '-pk7out'], await signer.sign(BODY));
        expect(p7.status, p7.stderr).to.equal(0);
        const certs = openssl(['pkcs7', '-print_certs', '-noout'], p7.stdout).stdout.toString();
        const subjects = [...certs.matchAll(/^subject=.*CN = (.*)$/gm)].map((m) => m[1]);
        expect(subjects).to.deep.equal(expected);
      }
    } finally {
      await withChain.close();
    }
  });

  it('the openssl signer signs with an EC key too, and its output verifies', async () => {
    const ec = opensslSigner({ certPath: pki.proxyEc.certFile, keyPath: pki.proxyEc.keyFile });
    try {
      const r = verifyCaFile(await ec.sign(BODY));
      expect(r.stderr).to.include('Verification successful');
      expect(r.stdout.equals(ENTITY)).to.equal(true);
    } finally {
      await ec.close();
    }
  });

  it('the openssl signer reports a missing binary with what to do', async () => {
    const s = opensslSigner({
      certPath: pki.proxyRsa.certFile,
      keyPath: pki.proxyRsa.keyFile,
      opensslPath: join(dir, 'no-such-openssl'),
    });
    let error: Error | undefined;
    await s.sign(BODY).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/openssl was not found .* set opensslPath/);
  });

  it('encrypted messages decrypt with openssl smime -decrypt and then verify', async () => {
    const enc = await encryptFor(await forgeRsa.sign(BODY), pki.proxyRsa.certPem);
    expect(enc).to.include('application/x-pkcs7-mime; smime-type=enveloped-data');
    const dec = openssl(
      ['smime', '-decrypt', '-inkey', pki.proxyRsa.keyFile, '-recip', pki.proxyRsa.certFile],
      enc,
    );
    expect(dec.status, dec.stderr).to.equal(0);
    const r = openssl(['smime', '-verify', '-CApath', caPath, '-noverify'], dec.stdout);
    expect(r.stderr).to.include('Verification successful');
    expect(r.stdout.equals(ENTITY)).to.equal(true);
  });

  it('signerSubject matches openssl x509 -subject -nameopt compat', async () => {
    const odd = await mint({
      subject: 'CN=Zoë a\\,b+0.9.2342.19200300.100.1.1=x/7,OU=A/B,O=Bank,C=UK,E=a@b.c',
    });
    const oddFile = join(dir, 'odd.pem');
    writeFileSync(oddFile, odd.cert.toString('pem'));
    for (const [pem, file] of [
      [pki.proxyRsa.certPem, pki.proxyRsa.certFile],
      [pki.client.certPem, pki.client.certFile],
      [odd.cert.toString('pem'), oddFile],
    ]) {
      const r = openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'compat']);
      expect(signerSubject(pem)).to.equal(
        r.stdout
          .toString()
          .trim()
          .replace(/^subject=/, ''),
      );
    }
  });
});
