import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../errors/catalogue';
import { ProxyMetrics } from '../observability/metrics';
import type { PolicyBinding, ResolvedCall } from '../pipeline/context';
import type { BoundOperation } from '../pipeline/operation';
import { PolicyManager } from '../policy/policy-manager';
import { parseXml } from '../soap/xml';
import { MemoryStore } from '../store/memory-store';
import { StoreUnavailableError, type RateDecision, type RateLimit } from '../store/store';
import { fakeCall, op, testContract } from '../../test/helpers/in-process';
import { ratelimit } from './ratelimit';

/** Small thresholds and long intervals: a test never waits for a window to pass. */
const CONTROL = `<?xml version="1.0" encoding="UTF-8"?>
<BusinessServices domain="tests" version="1">
  <BusinessService name="MathServer">
    <ServiceVersion uri="/limits/throttle">
      <SLAs>
        <SLA consumerId="client-a"><Policy>SLA_2MessagesPer60Seconds_Throttle</Policy></SLA>
        <SLA consumerId="client-b"><Policy>SLA_2MessagesPer60Seconds_Throttle</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/none">
      <SLAs>
        <SLA consumerId="client-a"/>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/sld">
      <SLAs>
        <SLA consumerId="client-a"/>
        <SLA consumerId="client-b"/>
      </SLAs>
      <SLD>
        <Policy>SLD_3MessagesPer60Seconds_Throttle</Policy>
        <EndPoint><URL>symphony://grid-b</URL></EndPoint>
      </SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/notify">
      <SLAs>
        <SLA consumerId="client-a"><Policy>SLA_1MessagePer60Seconds_Notify</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/shape">
      <SLAs>
        <SLA consumerId="client-a"><Policy maxDelayMs="200">SLA_1MessagePer60Seconds_Shape</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/fail-open">
      <SLAs>
        <SLA consumerId="client-a"><Policy onStoreFailure="open">SLA_5MessagesPer60Seconds_Throttle</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/fail-closed">
      <SLAs>
        <SLA consumerId="client-a"><Policy onStoreFailure="closed">SLA_5MessagesPer60Seconds_Throttle</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/default-failure">
      <SLAs>
        <SLA consumerId="client-a"><Policy>SLA_5MessagesPer60Seconds_Throttle</Policy></SLA>
      </SLAs>
      <SLD><EndPoint><URL>symphony://grid-a</URL></EndPoint></SLD>
    </ServiceVersion>
    <ServiceVersion uri="/limits/mixed-failure">
      <SLAs>
        <SLA consumerId="client-a"><Policy onStoreFailure="open">SLA_5MessagesPer60Seconds_Throttle</Policy></SLA>
      </SLAs>
      <SLD>
        <Policy onStoreFailure="closed">SLD_50MessagesPer60Seconds_Throttle</Policy>
        <EndPoint><URL>symphony://grid-c</URL></EndPoint>
      </SLD>
    </ServiceVersion>
  </BusinessService>
</BusinessServices>
`;

const CLUSTERS: Record<string, string> = {
  'symphony://grid-a': 'grid-a',
  'symphony://grid-b': 'grid-b',
  'symphony://grid-c': 'grid-c',
};

const operation: BoundOperation = (() => {
  const info = testContract().byName.get('getSessionStatus');
  if (!info) throw new Error('the WSDL has no getSessionStatus');
  return {
    ...info,
    handler: async () => ({}),
    traits: { remembered: false, rerunOnResend: () => true },
  };
})();

/** A store whose admit is scripted: each call takes the next answer (or throws it). */
class ScriptedStore extends MemoryStore {
  readonly seen: RateLimit[][] = [];
  constructor(private readonly script: (RateDecision | Error)[]) {
    super();
  }
  override async admit(limits: RateLimit[]): Promise<RateDecision> {
    this.seen.push(limits);
    const next = this.script.shift();
    if (next === undefined) throw new Error('the script ran out');
    if (next instanceof Error) throw next;
    return next;
  }
}

const storeDown = (): StoreUnavailableError => new StoreUnavailableError('the store is down');

async function expectFault(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a GatewayError');
}

/** The value of ssp_limiter_decisions_total for one scope and decision (0 when never counted). */
async function decisions(metrics: ProxyMetrics, scope: string, decision: string): Promise<number> {
  const all = await metrics.registry.getMetricsAsJSON();
  const metric = all.find((m) => m.name === 'ssp_limiter_decisions_total');
  const v = metric?.values.find((x) => x.labels['scope'] === scope && x.labels['decision'] === decision);
  return v?.value ?? 0;
}

describe('stages/ratelimit: SLA and SLD limits from the control file', () => {
  let dir: string;
  let manager: PolicyManager;
  let metrics: ProxyMetrics;

  function binding(uri: string, consumer: string): PolicyBinding {
    const policy = manager.current;
    const version = policy.version(uri);
    if (!version) throw new Error(`no version ${uri}`);
    const sla = policy.slaFor(version, consumer, undefined);
    if (!sla) throw new Error(`no SLA for ${consumer} at ${uri}`);
    return { policy, version, sla };
  }

  function call(uri: string | null, consumer = 'client-a'): ResolvedCall {
    const payload = parseXml(op(operation.name, ''));
    const ctx: ResolvedCall = Object.assign(fakeCall({ path: uri ?? '/soap' }), {
      raw: Buffer.alloc(0),
      envelope: payload,
      header: null,
      payload,
      signer: null,
      consumer: { id: consumer, via: 'anonymous' as const },
      policy: uri === null ? null : binding(uri, consumer),
      operation,
      args: { sessionId: 's-1' },
    });
    return ctx;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ratelimit-'));
    const file = join(dir, 'control.xml');
    writeFileSync(file, CONTROL);
    manager = await PolicyManager.start(
      file,
      { resolveCluster: (url) => CLUSTERS[url] },
      { reloaded: () => undefined },
    );
  });

  after(async () => {
    await manager?.close();
    // Retires the snapshot, as a reload would (no call holds it any more).
    manager?.current.retire();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    metrics = new ProxyMetrics(() => []);
  });

  it('does nothing without a policy: the store is not asked', async () => {
    const store = new ScriptedStore([]);
    const ctx = call(null);
    expect(await ratelimit(store, metrics)(ctx)).to.equal(undefined);
    expect(store.seen).to.deep.equal([]);
    expect(ctx.limitVerdict).to.equal(undefined);
  });

  it('does nothing when neither the SLA nor the SLD has a limit', async () => {
    const store = new ScriptedStore([]);
    const ctx = call('/limits/none');
    expect(await ratelimit(store, metrics)(ctx)).to.equal(undefined);
    expect(store.seen).to.deep.equal([]);
    expect(ctx.limitVerdict).to.equal(undefined);
  });

  it('admits up to the threshold, then refuses the next call with SSP_RATE_LIMITED', async () => {
    const store = new MemoryStore();
    const limit = ratelimit(store, metrics);
    for (let i = 0; i < 2; i++) {
      const ok = call('/limits/throttle');
      await limit(ok);
      expect(ok.limitVerdict, `call ${i + 1}`).to.equal('ok');
    }
    const third = call('/limits/throttle');
    const e = await expectFault(limit(third));
    expect(e.code).to.equal('SSP_RATE_LIMITED');
    expect(e.retryable).to.equal(true);
    expect(e.retryAfterSeconds).to.be.a('number').and.at.least(1);
    expect(e.message).to.contain('SLA_2MessagesPer60Seconds_Throttle');
    expect(third.limitVerdict).to.equal('over_limit SLA_2MessagesPer60Seconds_Throttle');
    expect(await decisions(metrics, 'sla', 'ok')).to.equal(2);
    expect(await decisions(metrics, 'sla', 'over_limit')).to.equal(1);
  });

  it('counts each consumer against its own SLA', async () => {
    const store = new MemoryStore();
    const limit = ratelimit(store, metrics);
    await limit(call('/limits/throttle', 'client-a'));
    await limit(call('/limits/throttle', 'client-a'));
    const other = call('/limits/throttle', 'client-b');
    await limit(other);
    expect(other.limitVerdict).to.equal('ok');
    expect((await expectFault(limit(call('/limits/throttle', 'client-a')))).code).to.equal(
      'SSP_RATE_LIMITED',
    );
  });

  it('an SLD limit is shared by every consumer of the version', async () => {
    const store = new MemoryStore();
    const limit = ratelimit(store, metrics);
    await limit(call('/limits/sld', 'client-a'));
    await limit(call('/limits/sld', 'client-b'));
    await limit(call('/limits/sld', 'client-a'));
    const fourth = call('/limits/sld', 'client-b');
    const e = await expectFault(limit(fourth));
    expect(e.code).to.equal('SSP_RATE_LIMITED');
    expect(e.message).to.contain('SLD policy SLD_3MessagesPer60Seconds_Throttle');
    expect(fourth.limitVerdict).to.equal('over_limit SLD_3MessagesPer60Seconds_Throttle');
    expect(await decisions(metrics, 'sld', 'over_limit')).to.equal(1);
  });

  it('a notify limit admits over its threshold, with the verdict notify', async () => {
    const store = new MemoryStore();
    const limit = ratelimit(store, metrics);
    const first = call('/limits/notify');
    await limit(first);
    expect(first.limitVerdict).to.equal('ok');
    const second = call('/limits/notify');
    expect(await limit(second)).to.equal(undefined);
    expect(second.limitVerdict).to.equal('notify');
    expect(await decisions(metrics, 'sla', 'notify')).to.equal(1);
  });

  it('a shape limit whose wait exceeds maxDelayMs refuses at once', async () => {
    const store = new MemoryStore();
    const limit = ratelimit(store, metrics);
    await limit(call('/limits/shape'));
    const started = Date.now();
    const second = call('/limits/shape');
    const e = await expectFault(limit(second));
    expect(Date.now() - started).to.be.below(150);
    expect(e.code).to.equal('SSP_RATE_LIMITED');
    expect(second.limitVerdict).to.equal('over_limit SLA_1MessagePer60Seconds_Shape');
  });

  it('a shape limit holds the call for a wait within maxDelayMs, then admits it as shaped', async () => {
    const store = new ScriptedStore([
      { admitted: false, over: [true], retryAfterMs: 5 },
      { admitted: true, over: [false], retryAfterMs: 0 },
    ]);
    const ctx = call('/limits/shape');
    expect(await ratelimit(store, metrics)(ctx)).to.equal(undefined);
    expect(store.seen).to.have.length(2);
    expect(ctx.limitVerdict).to.equal('shaped');
    expect(await decisions(metrics, 'sla', 'shaped')).to.equal(1);
  });

  it('a shape limit does not hold a call whose client went away', async () => {
    const store = new ScriptedStore([{ admitted: false, over: [true], retryAfterMs: 5 }]);
    const ctx = call('/limits/shape');
    Object.assign(ctx.req.socket, { destroyed: true });
    const e = await expectFault(ratelimit(store, metrics)(ctx));
    expect(e.code).to.equal('SSP_RATE_LIMITED');
    expect(store.seen).to.have.length(1);
  });

  it('a store that cannot be reached fails open when the policy says onStoreFailure="open"', async () => {
    const store = new ScriptedStore([storeDown()]);
    const ctx = call('/limits/fail-open');
    expect(await ratelimit(store, metrics)(ctx)).to.equal(undefined);
    expect(ctx.limitVerdict).to.equal('store_unavailable_open');
    expect(await decisions(metrics, 'sla', 'fail_open')).to.equal(1);
  });

  it('a store that cannot be reached fails closed with SSP_LIMITER_UNAVAILABLE when the policy says closed', async () => {
    const store = new ScriptedStore([storeDown()]);
    const ctx = call('/limits/fail-closed');
    const e = await expectFault(ratelimit(store, metrics)(ctx));
    expect(e.code).to.equal('SSP_LIMITER_UNAVAILABLE');
    expect(e.retryable).to.equal(true);
    expect(e.retryAfterSeconds).to.equal(1);
    expect(e.message).to.contain('SLA_5MessagesPer60Seconds_Throttle');
    expect(e.cause).to.be.instanceOf(StoreUnavailableError);
    expect(ctx.limitVerdict).to.equal('store_unavailable_closed');
    expect(await decisions(metrics, 'sla', 'error')).to.equal(1);
  });

  it('fails closed by default (no onStoreFailure attribute)', async () => {
    const e = await expectFault(
      ratelimit(new ScriptedStore([storeDown()]), metrics)(call('/limits/default-failure')),
    );
    expect(e.code).to.equal('SSP_LIMITER_UNAVAILABLE');
  });

  it('fails closed when any enforced limit of the call fails closed, naming only that one', async () => {
    const ctx = call('/limits/mixed-failure');
    const e = await expectFault(ratelimit(new ScriptedStore([storeDown()]), metrics)(ctx));
    expect(e.code).to.equal('SSP_LIMITER_UNAVAILABLE');
    expect(e.message).to.contain('SLD_50MessagesPer60Seconds_Throttle');
    expect(e.message).not.to.contain('SLA_5MessagesPer60Seconds_Throttle');
    expect(await decisions(metrics, 'sla', 'fail_open')).to.equal(1);
    expect(await decisions(metrics, 'sld', 'error')).to.equal(1);
  });

  it('a notify limit never fails closed, even with the default onStoreFailure', async () => {
    const ctx = call('/limits/notify');
    expect(await ratelimit(new ScriptedStore([storeDown()]), metrics)(ctx)).to.equal(undefined);
    expect(ctx.limitVerdict).to.equal('store_unavailable_open');
  });

  it('any other store error propagates unchanged', async () => {
    const boom = new Error('unexpected');
    let thrown: unknown;
    try {
      await ratelimit(new ScriptedStore([boom]), metrics)(call('/limits/fail-open'));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).to.equal(boom);
  });
});
