/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec) signs every request with WS-Security
 * (X.509 BinarySecurityToken, RSA-SHA256, SHA-256 digests, Body + Timestamp) and verifies the
 * proxy's signed responses with the proxy's certificate: an independent signer and verifier.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { hasPythonModule, requirePeer } from '../helpers/peers';
import { makeTestPki, type CertPair, type TestPki } from '../helpers/pki';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';

const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'zeep', 'signed_flow.py');
// Debian's python: the python3 on PATH cannot see python3-zeep / python3-xmlsec.
const PYTHON = '/usr/bin/python3';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const ECDSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256';

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

interface ZeepRun {
  exitCode: number | null;
  stderr: string;
  result: FlowResult;
}

/** Runs signed_flow.py, killed after 90 s, and resolves even on failure so assertions show why. */
function runZeep(args: string[]): Promise<ZeepRun> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [SCRIPT, ...args],
      { encoding: 'utf8', timeout: 90000, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        const last = stdout.trim().split('\n').pop() ?? '';
        let result: FlowResult;
        try {
          result = JSON.parse(last) as FlowResult;
        } catch {
          result = { ok: false, soap: '?', error: `no JSON on stdout (${error?.message ?? 'exit 0'})` };
        }
        resolve({ exitCode, stderr, result });
      },
    );
  });
}

/** The script's own message (stderr also carries any Python traceback), else the JSON's. */
function why(run: ZeepRun): string {
  return run.stderr.trim() || run.result.error || `exit ${String(run.exitCode)}`;
}

describe('relay: zeep signs requests with WS-Security and verifies signed responses', function () {
  this.timeout(180000);
  let pki: TestPki;
  let grid: GridProcess;

  before(async function () {
    requirePeer(this, 'python3-zeep', hasPythonModule('zeep'), 'apt-get install python3-zeep');
    requirePeer(this, 'python3-xmlsec', hasPythonModule('xmlsec'), 'apt-get install python3-xmlsec');
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
  });

  after(async () => {
    await grid?.stop();
  });

  /** A wss proxy in front of the shared grid that signs its responses with `signer`. */
  function withSecureProxy(signer: () => CertPair): () => ProxyProcess {
    let proxy: ProxyProcess | undefined;
    before(async () => {
      const { certFile, keyFile } = signer();
      proxy = await startProxyProcess(
        proxyConfig([grid.address], '', {
          security: {
            mode: 'wss',
            trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
            responseSigning: { enabled: true, certFile, keyFile },
          },
        }),
      );
    });
    after(async () => {
      await proxy?.stop();
    });
    return () => proxy!;
  }

  function clientArgs(proxy: ProxyProcess, proxyCert: CertPair): string[] {
    return [
      '--wsdl',
      proxy.wsdlUrl,
      '--client-cert',
      pki.client.certFile,
      '--client-key',
      pki.client.keyFile,
      '--proxy-cert',
      proxyCert.certFile,
    ];
  }

  function expectFlow(run: ZeepRun, soap: string, signatureMethod: string): void {
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
    { name: 'RSA', signer: () => pki.proxyRsa, method: RSA_SHA256 },
    { name: 'ECDSA', signer: () => pki.proxyEc, method: ECDSA_SHA256 },
  ];
  for (const c of cases) {
    describe(`responses signed with the proxy's ${c.name} key`, () => {
      const proxy = withSecureProxy(c.signer);

      it('runs the SOAP 1.1 flow signed, verifies every response and refuses a tampered Body', async () => {
        expectFlow(await runZeep(clientArgs(proxy(), c.signer())), '1.1', c.method);
      });

      it('runs the SOAP 1.2 flow signed, verifies every response and refuses a tampered Body', async () => {
        expectFlow(await runZeep([...clientArgs(proxy(), c.signer()), '--soap12']), '1.2', c.method);
      });
    });
  }

  describe('zeep defaults', () => {
    const proxy = withSecureProxy(() => pki.proxyRsa);

    it("refuses zeep's default RSA-SHA1 signature with SSP_WSS_ALGORITHM", async () => {
      const run = await runZeep([...clientArgs(proxy(), pki.proxyRsa), '--legacy-sha1']);
      expect(run.result.ok, why(run)).to.equal(true);
      expect(run.exitCode, why(run)).to.equal(0);
      expect(run.result.mode).to.equal('legacy-sha1');
      expect(run.result.fault).to.equal('AuthenticationFault');
      expect(run.result.code).to.equal('SSP_WSS_ALGORITHM');
      expect(run.result.faultSigned).to.equal(true);
    });
  });
});
