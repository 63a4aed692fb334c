/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec), generated from the WSDL the proxy
 * serves, calls every operation of the WS-Resource ports (WS-ResourceProperties 1.2 and
 * WS-ResourceLifetime 1.2) of a session and a connection, at the Addresses of the endpoint
 * references that connect and createSession return, over SOAP 1.1 and 1.2. It signs every request
 * and verifies every response signature as test/zeep/signed_flow.py does (whose helpers it reuses,
 * through test/zeep/step_flow.py).
 */
import { expect } from 'chai';
import {
  addressingProblems,
  expectStepRun,
  sharedRuns,
  signedArgs,
  stepOf,
  why,
  withSigningProxy,
  withZeepGrid,
  type StepResult,
  type ZeepRun,
} from '../helpers/zeep';

const SYM = 'http://soapproxy.symphony/v1';
const WSRF_R = 'http://docs.oasis-open.org/wsrf/r-2';
const WSRF_RP = 'http://docs.oasis-open.org/wsrf/rp-2';
const WSRF_RL = 'http://docs.oasis-open.org/wsrf/rl-2';

interface FaultSeen {
  want: string;
  detail: string | null;
  raisedZeepFault: boolean;
  code: string | null;
  errorCode: string | null;
}

/** The JSON line resources_flow.py prints last (see the script for the meaning of each field). */
type FlowResult = StepResult<FaultSeen>;
type FlowRun = ZeepRun<FlowResult>;

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
  const relay = withZeepGrid();
  const proxy = withSigningProxy(relay, (pki) => pki.proxyRsa, {
    // No idle lease: a nil RequestedTerminationTime then means no scheduled end at all, and the
    // answer's NewTerminationTime is nil (with a lease, the proxy answers the lease's end).
    lifetime: { sessionIdleMs: 0, connectionIdleMs: 0 },
  });
  const runs = sharedRuns<FlowResult>('resources_flow.py');

  /** One run per SOAP version, shared by the its that assert on it. */
  function flow(soap: '1.1' | '1.2'): Promise<FlowRun> {
    const { pki } = relay();
    return runs(soap, () => [
      ...signedArgs(proxy(), pki.client, pki.proxyRsa),
      ...(soap === '1.2' ? ['--soap12'] : []),
    ]);
  }

  function expectFlow(run: FlowRun, soap: string): void {
    const r = run.result;
    expectStepRun(run, {
      soap,
      steps: STEPS,
      xsd: ['symphony.xsd', 'ws-addr.xsd', 'bf-2.xsd', 'r-2.xsd', 'rp-2.xsd', 'rl-2.xsd'],
      requests: REQUESTS,
      faults: Object.keys(FAULTS).length,
    });

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
      const wrong = addressingProblems(a!);
      expect(
        wrong,
        `SOAP ${soap}: ${wrong.length} of ${a!.checked} responses lack the reply's WS-Addressing headers ` +
          '(design doc §7.4: responses echo wsa:RelatesTo = the request MessageID and set the response ' +
          'Action, http://docs.oasis-open.org/wsrf/fault for WSRF faults)',
      ).to.deep.equal([]);
    }
  });
});
