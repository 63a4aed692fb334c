/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec), generated from the WSDL the proxy
 * serves, calls the WS-Enumeration ports (the 2004/09 submission and the W3C 2011 Recommendation):
 * over a session's task outputs at the session's EPR Address, and over the consumer's sessions at
 * …/sessions, over SOAP 1.1 and 1.2. It signs every request and verifies every response signature
 * as test/zeep/signed_flow.py does (whose helpers it reuses, through test/zeep/step_flow.py). Each `it` is
 * one run of test/zeep/enumeration_flow.py (one scenario, one SOAP version); the script's header
 * says how zeep expresses what the WSDL alone does not make obvious.
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
const WSEN_2004 = 'http://schemas.xmlsoap.org/ws/2004/09/enumeration';
const WSEN_2011 = 'http://www.w3.org/2011/03/ws-enu';
const WSMAN = 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd';
const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';
const XPATH_10 = 'http://www.w3.org/TR/1999/REC-xpath-19991116';

type Soap = '1.1' | '1.2';
type Scenario = 'outputs-2004' | 'optimized' | 'outputs-2011' | 'sessions' | 'faults';

interface FaultSeen {
  want: string;
  /** The standard's code: the SOAP 1.1 faultcode, or the first SOAP 1.2 subcode (Clark QName). */
  code: string | null;
  /** The SOAP 1.2 Code Value (for SOAP 1.1, the faultcode again). */
  soapCode: string | null;
  raisedZeepFault: boolean;
  zeepCode: string | null;
  zeepSubcodes: string[] | null;
  httpStatus: number | null;
  errorCode: string | null;
  detail: string[];
  supportedDialects: string[];
}

/** The JSON line enumeration_flow.py prints last (see the script for the meaning of each field). */
interface FlowResult extends StepResult<FaultSeen> {
  scenario?: string;
  contextEcho?: { works: boolean; error?: string };
}
type FlowRun = ZeepRun<FlowResult>;

const TASKS = ['connect', 'createSession', 'sendTaskInputBatch', 'tasks done'];
// The steps of each scenario, in the order the script runs them; every run ends with its cleanup
// (closeSession DestroyOnClose, closeConnection), so the next sessions scenario sees only its own.
const STEPS: Record<Scenario, string[]> = {
  'outputs-2004': [
    ...TASKS,
    'Enumerate',
    'EnumerationContext as parsed',
    'GetStatus',
    'Renew',
    'Pull',
    'Pull sent twice',
    'Pull to the end',
    'Enumerate again',
    'Release',
    'Pull after Release',
    'cleanup',
  ],
  optimized: [...TASKS, 'Enumerate optimized', 'Pull to the end', 'cleanup'],
  'outputs-2011': [
    ...TASKS,
    'Enumerate to the end',
    'GetStatus, Renew, Release',
    'Enumerate after Release',
    'cleanup',
  ],
  sessions: [
    'connect (another consumer)',
    'createSession (another consumer)',
    'connect 1',
    'createSession 1',
    'connect 2',
    'createSession 2',
    'connect 3',
    'createSession 3',
    'closeConnection 3 (detaches session 3)',
    'Enumerate sessions with a Filter',
    'Pull sessions',
    'Enumerate sessions 2011 without a Filter',
    'cleanup',
  ],
  faults: [
    'connect',
    'createSession',
    'Filter on outputs',
    'Expires in the past',
    'unknown filter dialect',
    'cleanup',
  ],
};

interface WantFault {
  code: string;
  /** The SOAP 1.2 Code the proxy's catalogue gives it (WS-Enumeration's, for its own faults). */
  side: 'Sender' | 'Receiver';
  errorCode: string;
}
const FAULTS: Record<Scenario, Record<string, WantFault>> = {
  'outputs-2004': {
    'Pull after Release': {
      code: `{${WSEN_2004}}InvalidEnumerationContext`,
      side: 'Receiver',
      errorCode: 'SSP_ENUMERATION_CONTEXT_INVALID',
    },
  },
  optimized: {},
  'outputs-2011': {
    'Enumerate after Release': {
      code: `{${WSEN_2011}}InvalidEnumerationContext`,
      side: 'Receiver',
      errorCode: 'SSP_ENUMERATION_CONTEXT_INVALID',
    },
  },
  sessions: {},
  faults: {
    'Filter on outputs': {
      code: `{${WSEN_2004}}FilteringNotSupported`,
      side: 'Sender',
      errorCode: 'SSP_ENUMERATION_FILTER_UNSUPPORTED',
    },
    'Expires in the past': {
      code: `{${WSEN_2004}}InvalidExpirationTime`,
      side: 'Sender',
      errorCode: 'SSP_ENUMERATION_EXPIRES_INVALID',
    },
    'unknown filter dialect': {
      code: `{${WSEN_2004}}FilterDialectRequestedUnavailable`,
      side: 'Sender',
      errorCode: 'SSP_ENUMERATION_DIALECT_UNAVAILABLE',
    },
  },
};
const SCENARIOS = Object.keys(STEPS) as Scenario[];

/** The texts the script submits: `{scenario}-{11|12}-{nn}`. */
function texts(scenario: Scenario, soap: Soap, n: number): string[] {
  const tag = `${scenario}-${soap === '1.2' ? '12' : '11'}`;
  return Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(2, '0')}`);
}

describe('relay: zeep enumerates task outputs and sessions (WS-Enumeration 2004/09 and 2011), signed both ways', function () {
  this.timeout(180000);
  const relay = withZeepGrid();
  const proxy = withSigningProxy(relay, (pki) => pki.proxyRsa);
  const runs = sharedRuns<FlowResult>('enumeration_flow.py');

  /**
   * One run per scenario and SOAP version, shared by the its that assert on it. The sessions
   * scenario signs as client-b (its sessions are the only ones it may see; the other scenarios are
   * client-a's) and also creates a session as client-a, which it must never see.
   */
  function flow(soap: Soap, scenario: Scenario): Promise<FlowRun> {
    const { pki } = relay();
    return runs(`${soap} ${scenario}`, () => [
      '--scenario',
      scenario,
      ...signedArgs(proxy(), scenario === 'sessions' ? pki.otherClient : pki.client, pki.proxyRsa),
      ...(scenario === 'sessions'
        ? ['--foreign-client-cert', pki.client.certFile, '--foreign-client-key', pki.client.keyFile]
        : []),
      ...(soap === '1.2' ? ['--soap12'] : []),
    ]);
  }

  /** What every run must show: its steps, every answer signed and verified, its faults' codes. */
  function expectRun(run: FlowRun, soap: Soap, scenario: Scenario): FlowResult {
    const r = run.result;
    const faults = FAULTS[scenario];
    expectStepRun(run, {
      soap,
      steps: STEPS[scenario],
      xsd: ['symphony.xsd', 'enumeration-2004-09.xsd', 'enumeration-2011.xsd', 'ws-addr.xsd', 'xml.xsd'],
      faults: Object.keys(faults).length,
    });
    expect(r.scenario).to.equal(scenario);

    for (const [name, want] of Object.entries(faults)) {
      const f = r.faults?.[name];
      expect(f, `fault '${name}'`).to.not.equal(undefined);
      expect(f!.raisedZeepFault, `zeep raised Fault for '${name}'`).to.equal(true);
      // SOAP 1.1 has no subcodes: the standard's code is the faultcode; SOAP 1.2: the subcode.
      expect(f!.code, `code of '${name}'`).to.equal(want.code);
      expect(f!.soapCode, `SOAP code of '${name}'`).to.equal(
        soap === '1.1' ? want.code : `{${SOAP12}}${want.side}`,
      );
      if (soap === '1.2') {
        expect(f!.zeepSubcodes, `zeep's subcodes of '${name}'`).to.deep.equal([
          want.code,
          `{urn:symphony-soap-proxy:errors}${want.errorCode}`,
        ]);
      }
      expect(f!.errorCode, `sym:code of '${name}'`).to.equal(want.errorCode);
    }

    // Design doc §7.4: each reply echoes wsa:RelatesTo and carries its own wsa:Action
    // ({ns}/{Operation}Response, or {ns}/fault for WS-Enumeration's faults).
    const a = r.addressing;
    expect(a, why(run)).to.not.equal(undefined);
    expect(a!.checked, 'WS-Enumeration calls checked for WS-Addressing').to.be.greaterThan(0);
    const wrong = addressingProblems(a!);
    expect(wrong, `SOAP ${soap}: replies without the reply's WS-Addressing headers`).to.deep.equal([]);
    return r;
  }

  for (const soap of ['1.1', '1.2'] as const) {
    describe(`SOAP ${soap}`, () => {
      it('2004/09 over a session’s outputs: Enumerate, Pull (MaxElements 4) to EndOfSequence, a repeated Pull, GetStatus, Renew, Release', async () => {
        const r = expectRun(await flow(soap, 'outputs-2004'), soap, 'outputs-2004');
        expect(stepOf(r, 'Enumerate')['expires']).to.equal('PT300S');
        expect(stepOf(r, 'Renew')).to.deep.include({ expires: 'PT3600S', statusAfter: 'PT3600S' });
        expect(stepOf(r, 'Pull')['taskIds']).to.have.length(4);
        // A Pull sent again with the same context (its reply lost) gets the same page and context.
        const repeat = stepOf(r, 'Pull sent twice');
        expect(repeat['again'], 'task ids of the repeated Pull').to.deep.equal(repeat['taskIds']);
        expect(repeat['taskIds']).to.have.length(4);
        expect(repeat['sameContext']).to.equal(true);
        // Every output exactly once, typed by zeep as sym:TaskOutput, in pages of at most 4.
        const end = stepOf(r, 'Pull to the end');
        expect(end['texts']).to.deep.equal(texts('outputs-2004', soap, 25));
        expect(end['itemTypes']).to.deep.equal([`{${SYM}}TaskOutput`]);
        const pages = end['pages'] as number[];
        expect(pages.every((n) => n <= 4)).to.equal(true);
        expect(pages.reduce((s, n) => s + n, 0)).to.equal(25);
        // zeep shows an empty element as None: EndOfSequence is read from the verified envelope.
        expect(end['zeepEndOfSequence']).to.equal(null);
        // The 2004/09 Release answers an empty Body; zeep returns None.
        expect(stepOf(r, 'Release')).to.deep.include({ zeepValue: null, emptyBody: true });
        // The cursor element is undeclared, so zeep keeps it as XML and the parsed context goes back as is.
        expect(r.contextEcho, 'the parsed EnumerationContext goes back as is').to.deep.include({
          works: true,
        });
      });

      it('2004/09 with wsman:OptimizeEnumeration: the first page comes in wsman:Items', async () => {
        const r = expectRun(await flow(soap, 'optimized'), soap, 'optimized');
        const e = stepOf(r, 'Enumerate optimized');
        expect(e['sent']).to.deep.equal([
          `{${WSEN_2004}}Expires`,
          `{${WSMAN}}OptimizeEnumeration`,
          `{${WSMAN}}MaxElements`,
        ]);
        // No schema for WS-Management: zeep hands wsman:Items over as an lxml element.
        expect(e['zeepValue1']).to.deep.equal([`{${WSMAN}}Items`]);
        expect(e['itemNames']).to.deep.equal([`{${SYM}}Output`]);
        expect(e['taskIds']).to.have.length(4);
        const end = stepOf(r, 'Pull to the end');
        expect(end['texts']).to.deep.equal(texts('optimized', soap, 10));
      });

      it('2011 over a session’s outputs: Enumerate(NewContext, MaxItems 5), then Enumerate(EnumerationContext) to the end', async () => {
        const r = expectRun(await flow(soap, 'outputs-2011'), soap, 'outputs-2011');
        const e = stepOf(r, 'Enumerate to the end');
        expect(e['grantedExpires']).to.equal('PT600S');
        expect(e['texts']).to.deep.equal(texts('outputs-2011', soap, 12));
        const pages = e['pages'] as number[];
        expect(pages[0], 'the first page, in the EnumerateResponse of NewContext').to.equal(5);
        expect(pages.every((n) => n <= 5)).to.equal(true);
        expect(stepOf(r, 'GetStatus, Renew, Release')).to.deep.include({ renewed: 'PT1200S' });
      });

      it('the consumer’s sessions at …/sessions: a 2004/09 XPath Filter and Pull, and an unfiltered 2011 Enumerate', async () => {
        const r = expectRun(await flow(soap, 'sessions'), soap, 'sessions');
        const e = stepOf(r, 'Enumerate sessions with a Filter');
        expect(e['address'] as string).to.match(/\/symphony\/sessions$/);
        // zeep writes the expression as the Filter's text; its prefix is declared on the Envelope.
        expect(e['sent']).to.deep.equal({ text: "s:State = 'Open'", prefixDeclaredOn: 'Envelope' });
        const pulled = stepOf(r, 'Pull sessions');
        expect(pulled['itemNames']).to.deep.equal([`{${SYM}}SessionResourceProperties`]);
        expect(pulled['sessionIds']).to.have.length(2);
        expect(pulled['states']).to.deep.equal(['Open']);
        expect(pulled['owner']).to.equal('CN=client-b,O=Symphony Test');
        expect(pulled['endOfSequence']).to.equal(true);
        const all = stepOf(r, 'Enumerate sessions 2011 without a Filter');
        expect(all['states']).to.deep.equal(['Detached', 'Open', 'Open']);
        expect(all['owner']).to.equal('CN=client-b,O=Symphony Test');
      });

      it('faults: a Filter on outputs, an expiry in the past, an unknown filter dialect', async () => {
        const r = expectRun(await flow(soap, 'faults'), soap, 'faults');
        const dialect = r.faults!['unknown filter dialect']!;
        expect(dialect.detail).to.include(`{${WSEN_2004}}SupportedDialect`);
        expect(dialect.supportedDialects).to.deep.equal([XPATH_10]);
      });
    });
  }

  // After the runs of both versions (mocha runs a suite's own its before its nested suites').
  describe('across the SOAP 1.2 runs', () => {
    it('a fault’s HTTP status follows its Code (SOAP 1.2 Part 2 §7.5.2.2: env:Sender is 400, no other)', async () => {
      const wrong: string[] = [];
      // One run at a time: the sessions scenario must not overlap another run of itself.
      for (const scenario of SCENARIOS) {
        const run = await flow('1.2', scenario);
        for (const [name, f] of Object.entries(run.result.faults ?? {})) {
          const sender = f.soapCode === `{${SOAP12}}Sender`;
          if (sender ? f.httpStatus !== 400 : f.httpStatus === 400 || f.httpStatus === null) {
            wrong.push(`${name}: ${f.soapCode ?? '?'} (${f.code ?? '?'}) with HTTP ${String(f.httpStatus)}`);
          }
        }
      }
      expect(
        wrong,
        'SOAP 1.2 faults whose HTTP status contradicts their Code: the SOAP 1.2 HTTP binding ' +
          '(Part 2 §7.5.2.2) sends env:Sender with 400 Bad Request and every other Code with 500. ' +
          'src/soap/envelope.ts sends the catalogue status, and SSP_ENUMERATION_CONTEXT_INVALID is ' +
          'side Receiver (as WS-Enumeration defines InvalidEnumerationContext) with status 400',
      ).to.deep.equal([]);
    });
  });
});
