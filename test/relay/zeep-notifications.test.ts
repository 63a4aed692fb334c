/**
 * A Python zeep client (Debian python3-zeep + python3-xmlsec), generated from the WSDL the proxy
 * serves, takes a session's notifications through a pull point (WS-BaseNotification 1.3,
 * docs/design/notifications.md §7.3 and §8.7), over SOAP 1.1 and 1.2: CreatePullPoint, Subscribe
 * at the session's EPR Address with the pull point as consumer, GetMessages with sym:Ack (and
 * the lost-response case), the subscription manager, refused Subscribes, DestroyPullPoint. It
 * signs every request and verifies every response signature as test/zeep/signed_flow.py does
 * (whose helpers it reuses, through test/zeep/step_flow.py). Each SOAP version is one run of
 * test/zeep/pullpoint_flow.py, whose header says how zeep expresses the wildcard Filter, sym:Ack
 * and the answers.
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
import { SYM, WSNT, WSRF_R } from '../../src/soap/ws-namespaces';

const SIMPLE = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple';

type Soap = '1.1' | '1.2';

interface FaultSeen {
  want: string;
  detail: string | null;
  detailLocalName: string | null;
  raisedZeepFault: boolean;
  code: string | null;
  errorCode: string | null;
  description: string | null;
}

/** The JSON line pullpoint_flow.py prints last (see the script for the meaning of each field). */
type FlowResult = StepResult<FaultSeen>;
type FlowRun = ZeepRun<FlowResult>;

/** One GetMessagesResponse as the script summarises it: the sym:Ack sent, sym:Batch, the payloads' seqs. */
interface Batch {
  ack: number | null;
  first: number | null;
  last: number | null;
  seqs: number[];
}

// The steps, in the order the script runs them.
const STEPS = [
  'connect',
  'createSession',
  'CreatePullPoint',
  'Subscribe',
  'sendTaskInputBatch',
  'GetMessages until 5 outputs',
  'GetMessages with the same sym:Ack twice',
  'sendTaskInputBatch (2 more)',
  'GetMessages after sym:Ack of the last',
  'Renew',
  'PauseSubscription',
  'sendTaskInputBatch while paused',
  'GetMessages while paused',
  'ResumeSubscription',
  'GetMessages after ResumeSubscription',
  'Unsubscribe',
  'Unsubscribe again',
  'Subscribe a link-local consumer',
  'Subscribe to an unknown topic',
  'Subscribe with the Full dialect',
  'DestroyPullPoint',
  'GetMessages after DestroyPullPoint',
  'cleanup',
];
// The expected faults: the detail element each must carry, and the proxy's error code.
const FAULTS: Record<string, { detail: string; errorCode: string }> = {
  'Unsubscribe again': { detail: `{${WSRF_R}}ResourceUnknownFault`, errorCode: 'SSP_SUBSCRIPTION_UNKNOWN' },
  'Subscribe a link-local consumer': {
    detail: `{${WSNT}}SubscribeCreationFailedFault`,
    errorCode: 'SSP_CONSUMER_REFUSED',
  },
  'Subscribe to an unknown topic': {
    detail: `{${WSNT}}TopicNotSupportedFault`,
    errorCode: 'SSP_TOPIC_NOT_SUPPORTED',
  },
  'Subscribe with the Full dialect': {
    detail: `{${WSNT}}TopicExpressionDialectUnknownFault`,
    errorCode: 'SSP_TOPIC_DIALECT_UNKNOWN',
  },
  'GetMessages after DestroyPullPoint': {
    detail: `{${WSRF_R}}ResourceUnknownFault`,
    errorCode: 'SSP_SUBSCRIPTION_UNKNOWN',
  },
};

/** The texts the script submits, in order: `pullpoint-{11|12}-{nn}`. */
function texts(soap: Soap, from: number, n: number): string[] {
  const tag = `pullpoint-${soap === '1.2' ? '12' : '11'}`;
  return Array.from({ length: n }, (_, i) => `${tag}-${String(from + i).padStart(2, '0')}`);
}

describe('relay: zeep takes a session’s notifications through a pull point (WS-BaseNotification 1.3), signed both ways', function () {
  this.timeout(180000);
  const relay = withZeepGrid();
  const proxy = withSigningProxy(relay, (pki) => pki.proxyRsa, {
    // Some destinations are allowed, so that the link-local consumer is refused for what it is
    // (not because this consumer may name no address at all); the pull point needs none.
    notifications: {
      destinations: [{ consumer: '*', hosts: ['consumer.example', '192.0.2.0/24'], allowHttp: true }],
    },
  });
  const runs = sharedRuns<FlowResult>('pullpoint_flow.py');

  /** One run per SOAP version, shared by the its that assert on it. */
  function flow(soap: Soap): Promise<FlowRun> {
    const { pki } = relay();
    return runs(soap, () => [
      ...signedArgs(proxy(), pki.client, pki.proxyRsa),
      ...(soap === '1.2' ? ['--soap12'] : []),
    ]);
  }

  /** Every step passed; every answer, faults included, signed by the proxy and verified. */
  async function passedRun(soap: Soap): Promise<FlowResult> {
    const r = await flow(soap);
    expectStepRun(r, {
      soap,
      steps: STEPS,
      xsd: ['symphony.xsd', 'ws-addr.xsd', 'b-2.xsd', 't-1.xsd', 'bf-2.xsd', 'r-2.xsd'],
      // GetMessages is polled: the number of requests varies from run to run.
      faults: Object.keys(FAULTS).length,
    });
    return r.result;
  }

  for (const soap of ['1.1', '1.2'] as const) {
    describe(`SOAP ${soap}`, () => {
      it('CreatePullPoint, then Subscribe at the session with the pull point as consumer and a Simple TopicExpression', async () => {
        const r = await passedRun(soap);
        const session = stepOf(r, 'createSession')['address'] as string;
        const base = session.replace(/\/sessions\/[^/]+$/, '');
        const created = stepOf(r, 'CreatePullPoint');
        expect(created['serviceAddress']).to.equal(`${base}/pullpoints`);
        expect(created['address'] as string).to.match(new RegExp(`^${base}/pullpoints/[A-Za-z0-9_-]{22}$`));
        const sub = stepOf(r, 'Subscribe');
        expect(sub['address'] as string).to.match(new RegExp(`^${base}/subscriptions/[A-Za-z0-9_-]{22}$`));
        // The wildcard Filter went as an lxml element: the sym prefix is declared on TopicExpression.
        expect(sub['sent']).to.deep.equal({
          text: 'sym:TaskOutputAvailable',
          prefixDeclaredOn: 'TopicExpression',
          dialect: SIMPLE,
        });
        // InitialTerminationTime PT10M: TerminationTime = CurrentTime + 10 min.
        expect(sub['grantedSeconds']).to.equal(600);
      });

      it('GetMessages (MaximumNumber 3, sym:Ack): seqs 1..5 once each, in order, each output echoing its input', async () => {
        const r = await passedRun(soap);
        const sent = stepOf(r, 'sendTaskInputBatch');
        expect(sent['texts']).to.deep.equal(texts(soap, 0, 5));
        const got = stepOf(r, 'GetMessages until 5 outputs');
        expect(got['seqs']).to.deep.equal([1, 2, 3, 4, 5]);
        const batches = got['batches'] as Batch[];
        let ack: number | null = null;
        for (const b of batches) {
          expect(b.seqs.length, 'messages per answer').to.be.within(1, 3);
          // sym:Batch names the pull point's seqs the answer carries (one subscription: the payloads' too).
          expect([b.first, b.last]).to.deep.equal([b.seqs[0], b.seqs[b.seqs.length - 1]]);
          // Each request acknowledged the answer before it (the first had nothing to acknowledge).
          expect(b.ack, 'sym:Ack sent').to.equal(ack);
          ack = b.last;
        }
        // Every output, matched to its input by task id.
        const ids = sent['taskIds'] as string[];
        const inputs = new Map(ids.map((id, i) => [id, texts(soap, 0, 5)[i]]));
        const outputs = got['outputs'] as { seq: number; taskId: string; text: string }[];
        expect(outputs.map((o) => o.taskId).sort()).to.deep.equal([...ids].sort());
        for (const o of outputs) expect(o.text, `output of task ${o.taskId}`).to.equal(inputs.get(o.taskId));
        // The payload, as zeep parsed it (declared in symphony.xsd), with its topic attribute.
        expect(got['payloads']).to.deep.equal([`{${SYM}}TaskOutputAvailable`]);
        expect(got['payloadAs']).to.deep.equal(['typed']);
        expect(got['topics']).to.deep.equal(['TaskOutputAvailable']);
        // wsnt:Topic as the proxy wrote it: the QName's prefix declared on the element itself …
        expect(got['topicElements']).to.deep.equal([
          { text: 'sym:TaskOutputAvailable', prefixDeclaredOn: 'Topic' },
        ]);
        // … and zeep 4.2.1 drops that mixed content's text: clients rely on the payload's topic.
        expect(got['topicTextAvailable']).to.equal(false);
      });

      it('a lost response: the same sym:Ack twice gets the same batch; the Ack of its last seq gets the batch after it', async () => {
        const r = await passedRun(soap);
        const collected = stepOf(r, 'GetMessages until 5 outputs');
        const outstanding = (collected['batches'] as Batch[]).slice(-1)[0]!;
        const repeat = stepOf(r, 'GetMessages with the same sym:Ack twice');
        const first = repeat['first'] as Batch;
        const again = repeat['again'] as Batch;
        expect(first.ack, 'the Ack of the request whose answer was "lost"').to.equal(collected['lastAck']);
        expect(again).to.deep.equal(first);
        expect([first.first, first.last, first.seqs]).to.deep.equal([
          outstanding.first,
          outstanding.last,
          outstanding.seqs,
        ]);
        const after = stepOf(r, 'GetMessages after sym:Ack of the last');
        expect(after['acked']).to.equal(5);
        expect(after['firstAfterAck']).to.equal(6);
        expect(after['seqs']).to.deep.equal([6, 7]);
      });

      it('the subscription manager: Renew (PT30M), PauseSubscription, ResumeSubscription, Unsubscribe', async () => {
        const r = await passedRun(soap);
        expect(stepOf(r, 'Renew')['grantedSeconds']).to.equal(1800);
        for (const [name, answer] of [
          ['PauseSubscription', 'PauseSubscriptionResponse'],
          ['ResumeSubscription', 'ResumeSubscriptionResponse'],
          ['Unsubscribe', 'UnsubscribeResponse'],
          ['DestroyPullPoint', 'DestroyPullPointResponse'],
        ] as const) {
          expect(stepOf(r, name)['answer'], name).to.equal(`{${WSNT}}${answer}`);
        }
        // What queued while paused arrives after ResumeSubscription, in order.
        expect(stepOf(r, 'GetMessages after ResumeSubscription')['seqs']).to.deep.equal([8, 9]);
      });

      it('faults reach zeep as Faults with the standard detail element: unknown subscription and pull point, refused Subscribes', async () => {
        const r = await passedRun(soap);
        for (const [name, want] of Object.entries(FAULTS)) {
          const f = r.faults?.[name];
          expect(f, `fault '${name}'`).to.not.equal(undefined);
          expect(f!.raisedZeepFault, `zeep raised Fault for '${name}'`).to.equal(true);
          expect(f!.detail, `detail of '${name}'`).to.equal(want.detail);
          expect(f!.errorCode, `ErrorCode of '${name}'`).to.equal(want.errorCode);
          // design doc §4: all of these are the sender's.
          expect(f!.code, `code of '${name}'`).to.match(soap === '1.1' ? /:Client$/ : /:Sender$/);
        }
        // Refused for the address it names, not for lack of any allowed destination.
        const linkLocal = r.faults!['Subscribe a link-local consumer']!;
        expect(linkLocal.description).to.include('169.254.169.254');
      });

      it('answers each request with the wsa:Action its WSDL output or fault declares, and wsa:RelatesTo', async () => {
        const run = await flow(soap);
        const a = run.result.addressing;
        expect(a, why(run)).to.not.equal(undefined);
        // Every WS-BaseNotification call: at least CreatePullPoint, Subscribe ×4, 5 GetMessages,
        // Renew, Pause, Resume, Unsubscribe ×2, DestroyPullPoint.
        expect(a!.checked, 'WS-BaseNotification calls checked').to.be.at.least(17);
        const wrong = addressingProblems(a!);
        expect(
          wrong,
          `SOAP ${soap}: replies whose wsa:Action is not the WSDL's wsam:Action (or without wsa:RelatesTo)`,
        ).to.deep.equal([]);
      });

      it('the response signature covers what a wsnt:Topic means: the namespace its QName’s prefix is bound to', async () => {
        const run = await flow(soap);
        const got = stepOf(run.result, 'GetMessages until 5 outputs');
        expect(got['ok'], why(run)).to.equal(true);
        const probe = got['topicBindingSigned'] as Record<string, unknown>;
        // The copy with the same declaration verifies: the probe itself changes nothing signed.
        expect(probe, 'the probe of a signed GetMessagesResponse').to.deep.include({
          prefix: 'sym',
          sameNamespaceVerifies: true,
        });
        expect(
          probe['otherNamespaceVerifies'],
          'a GetMessagesResponse whose wsnt:Topic binds sym to another namespace still verifies: ' +
            'the Body is signed with exclusive C14N and no InclusiveNamespaces, which leaves out a ' +
            'namespace declaration used only in text (design doc §9, pitfall 6: "sign with inclusive ' +
            'namespaces on wsnt:Topic (exclusive C14N does not protect a prefix used only in text)")',
        ).to.equal(false);
      });

      it('PauseSubscription holds the subscription’s messages: GetMessages hands none out until ResumeSubscription', async () => {
        const run = await flow(soap);
        const paused = stepOf(run.result, 'GetMessages while paused');
        expect(paused['ok'], why(run)).to.equal(true);
        expect(paused['doneTasks'], 'the tasks sent while paused were done').to.equal(9);
        expect(
          paused['seqsWhilePaused'],
          'seqs a paused subscription delivered into its pull point. The WSDL says PauseSubscription ' +
            '"Stops delivery; messages keep queueing (up to the queue bound) until resumed" and ' +
            'ResumeSubscription "Delivers what queued while paused" (design doc §5). Both stores ' +
            '(memory-notifications.ts publish, redis-notification-scripts.ts) append a pull-point ' +
            'subscription’s messages to the pull point without looking at its paused flag',
        ).to.deep.equal([]);
      });
    });
  }
});
