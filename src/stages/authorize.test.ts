import { expect } from 'chai';
import { join } from 'node:path';
import { envelope11, fakeCall, op, type FakeRequestOptions } from '../../test/helpers/in-process';
import { GatewayError } from '../errors/catalogue';
import { SCHEMA_DIR } from '../paths';
import type { Consumer, IdentifiedCall } from '../pipeline/context';
import { ActivePolicy } from '../policy/active-policy';
import { parseControlFile } from '../policy/control-file';
import { PolicyManager } from '../policy/policy-manager';
import { readEnvelope } from '../soap/envelope';
import { parseXml } from '../soap/xml';
import { authorize, CONTEXT_HEADER } from './authorize';
import { ANONYMOUS } from './identify';
import { servicePath } from './service-path';

const EXAMPLES = join(SCHEMA_DIR, 'sla-examples');
const CLUSTERS: Record<string, string> = { 'symphony://grid-a': 'grid-a', 'symphony://grid-b': 'grid-b' };
const resolveCluster = (url: string): string | undefined => CLUSTERS[url];
const XML = envelope11(op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>'));
const V1 = '/services/MathServer/V1';

/** No example control file declares a contextId SLA, so this one does. */
const CONTEXT_CONTROL = `<?xml version="1.0" encoding="UTF-8"?>
<BusinessServices>
  <BusinessService name="MathServer">
    <ServiceVersion uri="/ctx">
      <SLAs>
        <SLA consumerId="client-a">
          <Policy>SLA_1MessagePer10Seconds_Throttle</Policy>
        </SLA>
        <SLA consumerId="client-a" contextId="Gold">
          <Policy>SLA_5MessagesPer10Seconds_Throttle</Policy>
        </SLA>
        <SLA consumerId="client-b" contextId="Gold">
          <Policy>SLA_2MessagesPer10Seconds_Throttle</Policy>
        </SLA>
      </SLAs>
      <SLD>
        <EndPoint>
          <URL>symphony://grid-a</URL>
        </EndPoint>
      </SLD>
    </ServiceVersion>
  </BusinessService>
</BusinessServices>
`;

const certificateConsumer = (id: string): Consumer => ({ id, via: 'certificate', subject: `CN=${id}` });

/** A call as the security phase leaves it: parsed, the caller known. */
function identifiedCall(consumer: Consumer, o: FakeRequestOptions = {}): IdentifiedCall {
  const root = parseXml(XML);
  const { header, payload } = readEnvelope(root, '1.1');
  return Object.assign(fakeCall({ ...o, body: XML }), {
    raw: Buffer.from(XML),
    envelope: root,
    header,
    payload,
    signer: null,
    consumer,
  });
}

/** The fault a hook ended the call with; fails the test when it did not throw a GatewayError. */
async function refusal(run: Promise<unknown>): Promise<GatewayError> {
  try {
    await run;
  } catch (e) {
    expect(e).to.be.instanceOf(GatewayError);
    if (e instanceof GatewayError) return e;
  }
  throw new Error('expected the stage to refuse the call');
}

describe('stages/authorize: without an SLA control file', () => {
  it('sets policy to null when no service version is pinned, for any consumer', async () => {
    for (const consumer of [ANONYMOUS, certificateConsumer('client-a')]) {
      const ctx = identifiedCall(consumer);
      await authorize()(ctx);
      expect(ctx.policy).to.equal(null);
    }
  });
});

describe('stages/authorize: the SLA check against a control file', () => {
  let policies: PolicyManager;

  before(async () => {
    policies = await PolicyManager.start(
      join(EXAMPLES, 'one-service-version.xml'),
      { resolveCluster },
      { reloaded: () => undefined },
    );
  });
  after(() => policies?.close());

  /** A call at `path` with the service version pinned by the service-path stage. */
  async function callAt(path: string, consumer: Consumer, headers: Record<string, string> = {}) {
    const ctx = identifiedCall(consumer, { path, headers });
    await servicePath('/soap', policies)(ctx);
    return ctx;
  }

  it('binds the consumer’s SLA: ctx.policy holds the pinned snapshot, version and sla', async () => {
    const ctx = await callAt(V1, certificateConsumer('APPLICATION2'));
    await authorize()(ctx);
    expect(ctx.policy).to.not.equal(null);
    expect(ctx.policy?.policy).to.equal(ctx.service?.policy);
    expect(ctx.policy?.version).to.equal(ctx.service?.version);
    expect(ctx.policy?.sla.consumerId).to.equal('APPLICATION2');
    expect(ctx.policy?.sla.contextId).to.equal(undefined);
    expect(ctx.policy?.sla.policy?.name).to.equal('SLA_5MessagesPer10Seconds_Throttle');
    ctx.deferred.forEach((job) => job());
  });

  it('refuses a consumer without an SLA with SSP_SLA_CHECK, naming the consumer and path', async () => {
    for (const consumer of [certificateConsumer('client-c'), ANONYMOUS]) {
      const ctx = await callAt(V1, consumer);
      const err = await refusal(authorize()(ctx));
      expect(err.code, consumer.id).to.equal('SSP_SLA_CHECK');
      expect(err.detail).to.equal('SlaFault');
      expect(err.message).to.contain(`'${consumer.id}'`).and.to.contain(V1);
      expect(ctx.policy, consumer.id).to.equal(undefined);
      ctx.deferred.forEach((job) => job());
    }
  });

  it('matches consumer ids exactly (no case folding)', async () => {
    const ctx = await callAt(V1, certificateConsumer('application1'));
    expect((await refusal(authorize()(ctx))).code).to.equal('SSP_SLA_CHECK');
    ctx.deferred.forEach((job) => job());
  });

  it('falls back to the SLA without a context for an x-context-id no SLA declares', async () => {
    const ctx = await callAt(V1, certificateConsumer('APPLICATION1'), { [CONTEXT_HEADER]: 'Platinum' });
    await authorize()(ctx);
    expect(ctx.policy?.sla.consumerId).to.equal('APPLICATION1');
    expect(ctx.policy?.sla.contextId).to.equal(undefined);
    ctx.deferred.forEach((job) => job());
  });
});

describe('stages/authorize: SLAs selected by x-context-id', () => {
  let active: ActivePolicy;

  before(async () => {
    const control = await parseControlFile(CONTEXT_CONTROL, join(EXAMPLES, 'context-ids.xml'), {
      resolveCluster,
    });
    active = await ActivePolicy.compile(control);
  });

  function callWithContext(consumerId: string, contextId?: string): IdentifiedCall {
    const ctx = identifiedCall(certificateConsumer(consumerId), {
      path: '/ctx',
      headers: contextId === undefined ? {} : { [CONTEXT_HEADER]: contextId },
    });
    const version = active.version('/ctx');
    if (!version) throw new Error('the control file has no /ctx version');
    ctx.service = { policy: active, version };
    return ctx;
  }

  it('selects the SLA declared for the context the header names', async () => {
    const ctx = callWithContext('client-a', 'Gold');
    await authorize()(ctx);
    expect(ctx.policy?.sla.contextId).to.equal('Gold');
    expect(ctx.policy?.sla.policy?.name).to.equal('SLA_5MessagesPer10Seconds_Throttle');
  });

  it('selects the SLA without a context when the header is absent, empty or unknown', async () => {
    for (const contextId of [undefined, '', 'Silver', 'gold']) {
      const ctx = callWithContext('client-a', contextId);
      await authorize()(ctx);
      expect(ctx.policy?.sla.contextId, String(contextId)).to.equal(undefined);
      expect(ctx.policy?.sla.policy?.name).to.equal('SLA_1MessagePer10Seconds_Throttle');
    }
  });

  it('admits a consumer whose only SLA has a context only with that context', async () => {
    const ok = callWithContext('client-b', 'Gold');
    await authorize()(ok);
    expect(ok.policy?.sla).to.include({ consumerId: 'client-b', contextId: 'Gold' });
    for (const contextId of [undefined, '', 'Silver']) {
      const ctx = callWithContext('client-b', contextId);
      const err = await refusal(authorize()(ctx));
      expect(err.code, String(contextId)).to.equal('SSP_SLA_CHECK');
      if (contextId) expect(err.message).to.contain(`in context '${contextId}'`);
      else expect(err.message).to.not.contain('in context');
    }
  });
});
