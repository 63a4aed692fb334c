import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCert, PROFILES, type CertAndKey } from '../commands/dev-pki';
import { GatewayError } from '../errors/catalogue';
import { TrustStore } from './truststore';

const O = 'Symphony Test';
const dir = mkdtempSync(join(tmpdir(), 'ssp-chain-'));
let n = 0;
function file(pem: string): string {
  const f = join(dir, `c${++n}.pem`);
  writeFileSync(f, pem);
  return f;
}

async function judge(
  leaf: CertAndKey,
  anchor: CertAndKey,
  intermediates: CertAndKey[] = [],
): Promise<string> {
  const trust = await TrustStore.load(
    {
      caFiles: [file(anchor.certPem)],
      intermediateFiles: intermediates.map((c) => file(c.certPem)),
      crlFiles: [],
      signerCertFiles: [],
    },
    { minRsaBits: 2048 },
  );
  const der = new X509Certificate(leaf.certPem).raw;
  try {
    trust.check(der, der.toString('base64'), Date.now());
    return 'trusted';
  } catch (e) {
    return e instanceof GatewayError ? `${e.code}: ${e.message}` : String(e);
  }
}

describe('security/truststore: what a certificate is for, and how deep a CA may delegate', function () {
  this.timeout(30_000);
  let root: CertAndKey;
  before(async () => {
    root = await issueCert({ ...PROFILES.rootCa, subject: { CN: 'Constraints Root', O } });
  });

  it('refuses a signer whose extended key usage is present but not clientAuth', async () => {
    const tlsOnly = await issueCert({ ...PROFILES.tlsServer, subject: { CN: 'a-server', O }, issuer: root });
    expect(await judge(tlsOnly, root)).to.match(
      /^SSP_WSS_UNTRUSTED: the extended key usage of CN=a-server.* does not allow client authentication/,
    );
  });

  it('accepts clientAuth, and a certificate without the extension (any purpose)', async () => {
    const client = await issueCert({ ...PROFILES.client, subject: { CN: 'client-a', O }, issuer: root });
    const noEku = await issueCert({ ...PROFILES.responseSigner, subject: { CN: 'no-eku', O }, issuer: root });
    expect(await judge(client, root)).to.equal('trusted');
    expect(await judge(noEku, root)).to.equal('trusted');
  });

  it('honours pathLenConstraint: a CA with pathLen 0 may not have an intermediate CA below it', async () => {
    const strictRoot = await issueCert({ ...PROFILES.rootCa, pathLen: 0, subject: { CN: 'Strict Root', O } });
    const intermediate = await issueCert({
      ...PROFILES.rootCa,
      subject: { CN: 'Team CA', O },
      issuer: strictRoot,
    });
    const leaf = await issueCert({
      ...PROFILES.client,
      subject: { CN: 'client-deep', O },
      issuer: intermediate,
    });
    expect(await judge(leaf, strictRoot, [intermediate])).to.match(
      /^SSP_WSS_UNTRUSTED: CN=Strict Root.* allows 0 intermediate CA\(s\) below it/,
    );
    const direct = await issueCert({
      ...PROFILES.client,
      subject: { CN: 'client-direct', O },
      issuer: strictRoot,
    });
    expect(await judge(direct, strictRoot), 'a leaf directly below is fine').to.equal('trusted');
  });

  it('accepts the same chain when the root allows one intermediate', async () => {
    const root1 = await issueCert({ ...PROFILES.rootCa, pathLen: 1, subject: { CN: 'Root One', O } });
    const intermediate = await issueCert({
      ...PROFILES.rootCa,
      subject: { CN: 'Team CA 1', O },
      issuer: root1,
    });
    const leaf = await issueCert({
      ...PROFILES.client,
      subject: { CN: 'client-one', O },
      issuer: intermediate,
    });
    expect(await judge(leaf, root1, [intermediate])).to.equal('trusted');
  });
});
