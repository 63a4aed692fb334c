/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec), generated from the WSDL the proxy
 * serves, calls every operation of the WS-Resource ports (WS-ResourceProperties 1.2 and
 * WS-ResourceLifetime 1.2) of a session and a connection, at the Addresses of the endpoint
 * references that connect and createSession return, over SOAP 1.1 and 1.2. It signs every request
 * and verifies every response signature as test/zeep/signed_flow.py does (whose helpers it reuses).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { hasPythonModule, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';

const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'zeep', 'resources_flow.py');
// Debian's python: the python3 on PATH cannot see python3-zeep / python3-xmlsec.
const PYTHON = '/usr/bin/python3';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const SYM = 'http://soapproxy.symphony/v1';
const WSRF_R = 'http://docs.oasis-open.org/wsrf/r-2';
const WSRF_RP = 'http://docs.oasis-open.org/wsrf/rp-2';
const WSRF_RL = 'http://docs.oasis-open.org/wsrf/rl-2';

interface Step {
  step: string;
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

interface FaultSeen {
  want: string;
  detail: string | null;
  raisedZeepFault: boolean;
  code: string | null;
  errorCode: string | null;
}

/** The JSON line resources_flow.py prints last (see the script for the meaning of each field). */
interface FlowResult {
  ok: boolean;
  soap: string;
  error?: string;
  xsd?: string[];
  schemasNotFromProxy?: string[];
  steps?: Step[];
  faults?: Record<string, FaultSeen>;
  requests?: number;
  verifiedResponses?: number;
  signedFaults?: number;
  unsignedFaults?: number;
  responseSignatureMethods?: string[];
  addressing?: { checked: number; wrong: { operation: string; fault: boolean; problems: string[] }[] };
}

interface ZeepRun {
  exitCode: number | null;
  stderr: string;
  result: FlowResult;
  ms: number;
}

/** Runs resources_flow.py, killed after 90 s, and resolves even on failure so assertions show why. */
function runZeep(args: string[]): Promise<ZeepRun> {
  const started = Date.now();
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
        resolve({ exitCode, stderr, result, ms: Date.now() - started });
      },
    );
  });
}

/** The script's own message (stderr also carries any Python traceback), else the JSON's. */
function why(run: ZeepRun): string {
  return run.stderr.trim() || run.result.error || `exit ${String(run.exitCode)}`;
}

// The steps, in the order the script runs them; the faults among them name the detail they expect.
const STEPS = [
  'connect',
  'createSession',
  'GetResourcePropertyDocument',
  'GetResourceProperty sym:State',
  'GetMultipleResourceProperties',
  'QueryResourceProperties boolean',
  'QueryResourceProperties node-set',
  'unknown property',
  'unknown dialect',
  'SetTerminationTime duration',
  'SetTerminationTime nil',
  'termination time in the past',
  'Destroy session',
  'session after Destroy',
  'GetResourceProperty sym:ConnectionId',
  'Destroy connection',
  'connection after Destroy',
];
const FAULTS: Record<string, string> = {
  'unknown property': `{${WSRF_RP}}InvalidResourcePropertyQNameFault`,
  'unknown dialect': `{${WSRF_RP}}UnknownQueryExpressionDialectFault`,
  'termination time in the past': `{${WSRF_RL}}UnableToSetTerminationTimeFault`,
  'session after Destroy': `{${WSRF_R}}ResourceUnknownFault`,
  'connection after Destroy': `{${WSRF_R}}ResourceUnknownFault`,
};
// connect, createSession, and one request per step on the resources (SetTerminationTime with a
// duration also reads wsrf-rl:TerminationTime back): every answer must be signed and verified.
const REQUESTS = 18;

describe('relay: zeep calls the WS-Resource ports of sessions and connections, signed both ways', function () {
  this.timeout(180000);
  let pki: TestPki;
  let grid: GridProcess;
  let proxy: ProxyProcess;
  const runs = new Map<string, Promise<ZeepRun>>();

  before(async function () {
    requirePeer(this, 'python3-zeep', hasPythonModule('zeep'), 'apt-get install python3-zeep');
    requirePeer(this, 'python3-xmlsec', hasPythonModule('xmlsec'), 'apt-get install python3-xmlsec');
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
    proxy = await startProxyProcess(
      proxyConfig([grid.address], '', {
        security: {
          mode: 'wss',
          trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
          responseSigning: { enabled: true, certFile: pki.proxyRsa.certFile, keyFile: pki.proxyRsa.keyFile },
        },
        // No idle lease: a nil RequestedTerminationTime then means no scheduled end at all, and the
        // answer's NewTerminationTime is nil (with a lease, the proxy answers the lease's end).
        lifetime: { sessionIdleMs: 0, connectionIdleMs: 0 },
      }),
    );
  });

  after(async () => {
    // SIGINT closes at once; SIGTERM would first drain for server.drainDelayMs (5 s).
    await proxy?.stop('SIGINT');
    await grid?.stop();
  });

  /** One run per SOAP version, shared by the its that assert on it. */
  function flow(soap: '1.1' | '1.2'): Promise<ZeepRun> {
    let run = runs.get(soap);
    if (!run) {
      run = runZeep([
        '--wsdl',
        proxy.wsdlUrl,
        '--client-cert',
        pki.client.certFile,
        '--client-key',
        pki.client.keyFile,
        '--proxy-cert',
        pki.proxyRsa.certFile,
        ...(soap === '1.2' ? ['--soap12'] : []),
      ]);
      runs.set(soap, run);
    }
    return run;
  }

  function stepOf(r: FlowResult, name: string): Step {
    const s = r.steps?.find((x) => x.step === name);
    expect(s, `step '${name}' missing from the JSON`).to.not.equal(undefined);
    return s!;
  }

  function expectFlow(run: ZeepRun, soap: string): void {
    const r = run.result;
    const failed = (r.steps ?? []).filter((s) => !s.ok).map((s) => `${s.step}: ${s.error ?? '?'}`);
    expect(failed, 'failed steps').to.deep.equal([]);
    expect(r.ok, why(run)).to.equal(true);
    expect(run.exitCode, why(run)).to.equal(0);
    expect(r.soap).to.equal(soap);
    expect((r.steps ?? []).map((s) => s.step)).to.deep.equal(STEPS);

    // The client was generated from ?wsdl, every schema pulled through ?xsd=.
    expect(r.schemasNotFromProxy).to.deep.equal([]);
    expect(r.xsd).to.include.members([
      'symphony.xsd',
      'ws-addr.xsd',
      'bf-2.xsd',
      'r-2.xsd',
      'rp-2.xsd',
      'rl-2.xsd',
    ]);

    // Every answer, faults included, signed by the proxy and verified with its certificate.
    expect(r.requests).to.equal(REQUESTS);
    expect(r.verifiedResponses, 'verified response signatures').to.equal(REQUESTS);
    expect(r.signedFaults).to.equal(Object.keys(FAULTS).length);
    expect(r.unsignedFaults).to.equal(0);
    expect(r.responseSignatureMethods).to.deep.equal([RSA_SHA256]);

    for (const [name, detail] of Object.entries(FAULTS)) {
      const f = r.faults?.[name];
      expect(f, `fault '${name}'`).to.not.equal(undefined);
      expect(f!.raisedZeepFault, `zeep raised Fault for '${name}'`).to.equal(true);
      expect(f!.detail, `detail of '${name}'`).to.equal(detail);
      // design doc §7.7: all of these are the sender's.
      expect(f!.code, `code of '${name}'`).to.match(soap === '1.1' ? /:Client$/ : /:Sender$/);
    }

    // How zeep wrote the QNames: an lxml QName declares its prefix on the element itself; the
    // query's prefixes are declared on the Envelope (client.set_ns_prefix).
    const get = stepOf(r, 'GetResourceProperty sym:State');
    expect(get['values']).to.deep.equal(['Open']);
    expect(get['sent']).to.deep.include({ prefixDeclaredOn: 'GetResourceProperty' });
    expect(stepOf(r, 'GetMultipleResourceProperties')['names']).to.deep.equal([
      `{${WSRF_RL}}CurrentTime`,
      `{${SYM}}State`,
    ]);
    const query = stepOf(r, 'QueryResourceProperties boolean');
    expect(query['text']).to.equal('true');
    expect(query['sent']).to.deep.equal({ text: "sym:State = 'Open'", prefixDeclaredOn: 'Envelope' });
    expect(stepOf(r, 'QueryResourceProperties node-set')['values']).to.deep.equal(['Open']);
    expect(stepOf(r, 'SetTerminationTime nil')['newTerminationTime']).to.equal(null);
  }

  it('SOAP 1.1: every WS-RP and WS-RL operation and fault, every response signature verified', async () => {
    expectFlow(await flow('1.1'), '1.1');
  });

  it('SOAP 1.2: every WS-RP and WS-RL operation and fault, every response signature verified', async () => {
    expectFlow(await flow('1.2'), '1.2');
  });

  it('answers each WS-Addressing request with wsa:Action and wsa:RelatesTo (design doc §7.4)', async () => {
    for (const soap of ['1.1', '1.2'] as const) {
      const run = await flow(soap);
      const a = run.result.addressing;
      expect(a, why(run)).to.not.equal(undefined);
      // zeep sent wsa:Action, wsa:MessageID and wsa:To on every call to the resource ports.
      expect(a!.checked, `SOAP ${soap}: resource calls checked`).to.equal(REQUESTS - 2);
      const wrong = a!.wrong.map(
        (w) => `${w.operation}${w.fault ? ' (fault)' : ''}: ${w.problems.join('; ')}`,
      );
      expect(
        wrong,
        `SOAP ${soap}: ${wrong.length} of ${a!.checked} responses lack the reply's WS-Addressing headers ` +
          '(design doc §7.4: responses echo wsa:RelatesTo = the request MessageID and set the response ' +
          'Action, http://docs.oasis-open.org/wsrf/fault for WSRF faults)',
      ).to.deep.equal([]);
    }
  });
});
