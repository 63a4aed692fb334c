import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { op, runRequest, startHarness, type Harness } from '../../test/helpers/in-process';
import { eventually } from '../../test/grid/helpers';
import { signedEnvelope } from '../../test/helpers/wss-client';
import { createCrl } from '../commands/dev-pki';
import { loadSecurity, type Security } from '../components/security';
import { Resources } from '../components/resources';
import { parseConfig } from '../config';
import { GatewayError } from '../errors/catalogue';
import { log, setLogLevel } from '../log';
import { MemoryStore } from '../store/memory-store';
import { TrustStore } from './truststore';

/** Writes next to the target and renames over it, as deploy tools do (never a half-written file). */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.new`, text);
  renameSync(`${file}.new`, file);
}

function verdict(trust: TrustStore, pem: string): string {
  const der = new X509Certificate(pem).raw;
  try {
    trust.check(der, der.toString('base64'), Date.now());
    return 'trusted';
  } catch (e) {
    return e instanceof GatewayError ? e.code : String(e);
  }
}

describe('security: CRLs reload without a restart', function () {
  this.timeout(20_000);
  let pki: TestPki;
  let dir: string;
  let crlFile: string;
  let previousLevel = 'info';
  before(async () => {
    pki = await makeTestPki();
    previousLevel = log.level;
    setLogLevel('error');
  });
  after(() => setLogLevel(previousLevel));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssp-crl-'));
    crlFile = join(dir, 'ca.crl.pem');
    copyFileSync(pki.crlFile, crlFile);
  });

  async function load(): Promise<TrustStore> {
    return TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
  }

  it('applies a new CRL to certificates already judged (no stale cached verdict)', async () => {
    const trust = await load();
    expect(verdict(trust, pki.client.certPem)).to.equal('trusted');
    expect(verdict(trust, pki.revoked.certPem)).to.equal('SSP_WSS_UNTRUSTED');
    replace(crlFile, await createCrl(pki.ca, { revoked: [pki.client.certPem] }));
    expect(await trust.reloadCrls()).to.deep.equal({ crls: 1 });
    expect(verdict(trust, pki.client.certPem)).to.equal('SSP_WSS_UNTRUSTED');
    // The new CRL no longer lists the old one's certificate: it is the whole new truth.
    expect(verdict(trust, pki.revoked.certPem)).to.equal('trusted');
  });

  it('keeps the CRLs in effect when the new file is unreadable, naming the file', async () => {
    const trust = await load();
    replace(crlFile, '-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n');
    let error = '';
    await trust.reloadCrls().catch((e: unknown) => (error = e instanceof Error ? e.message : String(e)));
    expect(error).to.contain(crlFile);
    expect(verdict(trust, pki.revoked.certPem), 'the old revocations stay').to.equal('SSP_WSS_UNTRUSTED');
    expect(verdict(trust, pki.client.certPem)).to.equal('trusted');
  });

  it('keeps the CRLs in effect when the new CRL is signed by a CA outside the trust store', async () => {
    const trust = await load();
    const rogue = { certPem: pki.rogueCaClient.certPem, keyPem: pki.rogueCaClient.keyPem };
    replace(crlFile, await createCrl(rogue, { revoked: [] }));
    let error = '';
    await trust.reloadCrls().catch((e: unknown) => (error = e instanceof Error ? e.message : String(e)));
    expect(error).to.match(/is not signed by any configured CA/);
    expect(verdict(trust, pki.revoked.certPem)).to.equal('SSP_WSS_UNTRUSTED');
  });

  describe('in the running pipeline', () => {
    let h: Harness | undefined;
    let res: Resources;
    let security: Security;
    afterEach(async () => {
      await h?.close();
      await res.closeAll();
    });

    async function start(watchCrls: boolean): Promise<void> {
      res = new Resources();
      const config = parseConfig({
        security: {
          trust: { caFiles: [pki.ca.certFile], crlFiles: [crlFile], watchCrls },
          responseSigning: { enabled: false },
        },
        grid: { embedded: true },
      });
      security = await loadSecurity(config, new MemoryStore(), res);
      h = await startHarness({ verifier: security.verifier! });
    }

    /** A signed call from the client: SSP_UNKNOWN_SESSION once it is trusted, else the refusal. */
    const signedCall = async (): Promise<string | undefined> => {
      const body = signedEnvelope(op('getSessionStatus', '<sym:sessionId>s</sym:sessionId>'), pki.client);
      return (await runRequest(h!.pipeline, { body })).code;
    };

    it('refuses a newly revoked client once the CRL file is replaced (watched)', async () => {
      await start(true);
      expect(await signedCall(), 'before: the client is trusted').to.equal('SSP_UNKNOWN_SESSION');
      replace(crlFile, await createCrl(pki.ca, { revoked: [pki.client.certPem] }));
      expect(await eventually(async () => (await signedCall()) === 'SSP_WSS_UNTRUSTED', 5000)).to.equal(true);
    });

    it('reloads on request (SIGHUP) when not watching, and reports a bad file', async () => {
      await start(false);
      replace(crlFile, await createCrl(pki.ca, { revoked: [pki.client.certPem] }));
      expect(await signedCall(), 'not watched: the old CRL is still in effect').to.equal(
        'SSP_UNKNOWN_SESSION',
      );
      expect(await security.reloadCrls!()).to.deep.equal({ ok: true, crls: 1 });
      expect(await signedCall()).to.equal('SSP_WSS_UNTRUSTED');
      replace(crlFile, 'garbage');
      const bad = await security.reloadCrls!();
      expect(bad.ok).to.equal(false);
      expect(await signedCall(), 'a bad file keeps the CRL in effect').to.equal('SSP_WSS_UNTRUSTED');
    });
  });
});
