/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec) signs every request with WS-Security
 * (X.509 BinarySecurityToken, RSA-SHA256, SHA-256 digests, Body + Timestamp) and verifies the
 * proxy's signed responses with the proxy's certificate: an independent signer and verifier.
 */
import { expect } from 'chai';
import type { CertPair, TestPki } from '../helpers/pki';
import type { ProxyProcess } from '../helpers/processes';
import {
  ECDSA_SHA256,
  RSA_SHA256,
  runZeep,
  signedArgs,
  why,
  withSigningProxy,
  withZeepGrid,
  type ZeepRun,
} from '../helpers/zeep';

/** The JSON line signed_flow.py prints last (see the script for the meaning of each field). */
interface FlowResult {
  ok: boolean;
  soap: string;
  mode?: string;
  error?: string;
  step?: string;
  submitted?: number;
  received?: number;
  mismatches?: string[];
  state?: string;
  verifiedResponses?: number;
  responseSignatureMethods?: string[];
  tampered?: { fault: string; code: string | null; faultSigned: boolean };
  fault?: string;
  code?: string | null;
  faultSigned?: boolean;
}

describe('relay: zeep signs requests with WS-Security and verifies signed responses', function () {
  this.timeout(180000);
  const relay = withZeepGrid();

  function runSigned(
    proxy: ProxyProcess,
    proxyCert: CertPair,
    ...more: string[]
  ): Promise<ZeepRun<FlowResult>> {
    return runZeep('signed_flow.py', [...signedArgs(proxy, relay().pki.client, proxyCert), ...more]);
  }

  function expectFlow(run: ZeepRun<FlowResult>, soap: string, signatureMethod: string): void {
    const r = run.result;
    expect(r.ok, why(run)).to.equal(true);
    expect(run.exitCode, why(run)).to.equal(0);
    expect(r.soap).to.equal(soap);
    expect(r.submitted).to.equal(4);
    expect(r.received).to.equal(4);
    expect(r.mismatches).to.deep.equal([]);
    expect(r.state).to.equal('Open');
    // connect, createSession, sendTaskInput, batch, >= 1 fetch, status, closeSession, closeConnection.
    expect(r.verifiedResponses).to.be.at.least(8);
    expect(r.responseSignatureMethods).to.deep.equal([signatureMethod]);
    // zeep verifies faults too before raising them, so the refusal itself must be signed.
    expect(r.tampered).to.deep.equal({
      fault: 'AuthenticationFault',
      code: 'SSP_WSS_SIGNATURE',
      faultSigned: true,
    });
  }

  const cases = [
    { name: 'RSA', signer: (pki: TestPki) => pki.proxyRsa, method: RSA_SHA256 },
    { name: 'ECDSA', signer: (pki: TestPki) => pki.proxyEc, method: ECDSA_SHA256 },
  ];
  for (const c of cases) {
    describe(`responses signed with the proxy's ${c.name} key`, () => {
      const proxy = withSigningProxy(relay, c.signer);

      it('runs the SOAP 1.1 flow signed, verifies every response and refuses a tampered Body', async () => {
        expectFlow(await runSigned(proxy(), c.signer(relay().pki)), '1.1', c.method);
      });

      it('runs the SOAP 1.2 flow signed, verifies every response and refuses a tampered Body', async () => {
        expectFlow(await runSigned(proxy(), c.signer(relay().pki), '--soap12'), '1.2', c.method);
      });
    });
  }

  describe('zeep defaults', () => {
    const proxy = withSigningProxy(relay, (pki) => pki.proxyRsa);

    it("refuses zeep's default RSA-SHA1 signature with SSP_WSS_ALGORITHM", async () => {
      const run = await runSigned(proxy(), relay().pki.proxyRsa, '--legacy-sha1');
      expect(run.result.ok, why(run)).to.equal(true);
      expect(run.exitCode, why(run)).to.equal(0);
      expect(run.result.mode).to.equal('legacy-sha1');
      expect(run.result.fault).to.equal('AuthenticationFault');
      expect(run.result.code).to.equal('SSP_WSS_ALGORITHM');
      expect(run.result.faultSigned).to.equal(true);
    });
  });
});
