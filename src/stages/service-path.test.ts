import { expect } from 'chai';
import { join } from 'node:path';
import { fakeCall } from '../../test/helpers/in-process';
import { GatewayError } from '../errors/catalogue';
import { SCHEMA_DIR } from '../paths';
import type { ActivePolicy } from '../policy/active-policy';
import { PolicyManager } from '../policy/policy-manager';
import { servicePath } from './service-path';

const EXAMPLES = join(SCHEMA_DIR, 'sla-examples');
const CLUSTERS: Record<string, string> = { 'symphony://grid-a': 'grid-a', 'symphony://grid-b': 'grid-b' };

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

/** Counts acquire/release on one snapshot, still doing the real work. */
function countHolds(policy: ActivePolicy): { acquired: number; released: number } {
  const counts = { acquired: 0, released: 0 };
  const acquire = policy.acquire.bind(policy);
  const release = policy.release.bind(policy);
  policy.acquire = () => {
    counts.acquired++;
    acquire();
  };
  policy.release = () => {
    counts.released++;
    release();
  };
  return counts;
}

describe('stages/service-path: without an SLA control file', () => {
  const hook = servicePath('/soap', null);

  it('lets a call at the endpoint path through and pins no service', async () => {
    const ctx = fakeCall({ path: '/soap' });
    await hook(ctx);
    expect(ctx.service).to.equal(undefined);
    expect(ctx.deferred).to.have.length(0);
  });

  it('refuses any other path with SSP_UNKNOWN_PATH, naming the endpoint', async () => {
    for (const path of ['/elsewhere', '/soap/', '/SOAP', '/services/MathServer/V1']) {
      const ctx = fakeCall({ path });
      const err = await refusal(hook(ctx));
      expect(err.code, path).to.equal('SSP_UNKNOWN_PATH');
      expect(err.message, path).to.contain('/soap');
      expect(ctx.service, path).to.equal(undefined);
    }
  });

  it('uses the configured endpoint path, not a fixed one', async () => {
    const other = servicePath('/grid/soap', null);
    await other(fakeCall({ path: '/grid/soap' }));
    expect((await refusal(other(fakeCall({ path: '/soap' })))).code).to.equal('SSP_UNKNOWN_PATH');
  });
});

describe('stages/service-path: with an SLA control file', () => {
  let policies: PolicyManager;
  const reloads: string[] = [];

  before(async () => {
    policies = await PolicyManager.start(
      join(EXAMPLES, 'two-service-versions.xml'),
      { resolveCluster: (url) => CLUSTERS[url] },
      { reloaded: (trigger) => void reloads.push(trigger) },
    );
  });
  after(() => policies?.close());

  it('pins the service version served at the path and the snapshot in effect', async () => {
    const hook = servicePath('/soap', policies);
    for (const uri of ['/services/MathServer/V1', '/services/MathServer/V2']) {
      const ctx = fakeCall({ path: uri });
      await hook(ctx);
      expect(ctx.service, uri).to.not.equal(undefined);
      expect(ctx.service?.policy).to.equal(policies.current);
      expect(ctx.service?.version.version.uri).to.equal(uri);
      expect(ctx.service?.version).to.equal(policies.current.version(uri));
      ctx.deferred.forEach((job) => job());
    }
  });

  it('holds the snapshot for the call and pushes its release onto ctx.deferred', async () => {
    const counts = countHolds(policies.current);
    const ctx = fakeCall({ path: '/services/MathServer/V2' });
    await servicePath('/soap', policies)(ctx);
    expect(counts).to.deep.equal({ acquired: 1, released: 0 });
    expect(ctx.deferred).to.have.length(1);
    ctx.deferred[0]!();
    expect(counts).to.deep.equal({ acquired: 1, released: 1 });
  });

  it('refuses an unknown uri with SSP_UNKNOWN_SERVICE_VERSION and still releases the snapshot', async () => {
    const counts = countHolds(policies.current);
    const ctx = fakeCall({ path: '/services/MathServer/V3' });
    const err = await refusal(servicePath('/soap', policies)(ctx));
    expect(err.code).to.equal('SSP_UNKNOWN_SERVICE_VERSION');
    expect(err.message).to.contain('/services/MathServer/V3');
    expect(ctx.service).to.equal(undefined);
    expect(ctx.deferred).to.have.length(1);
    ctx.deferred.forEach((job) => job());
    expect(counts).to.deep.equal({ acquired: 1, released: 1 });
  });

  it('does not serve the plain endpoint path once the control file names the paths', async () => {
    const err = await refusal(servicePath('/soap', policies)(fakeCall({ path: '/soap' })));
    expect(err.code).to.equal('SSP_UNKNOWN_SERVICE_VERSION');
  });

  it('keeps the pinned snapshot for a call in flight when the control file is reloaded', async () => {
    const ctx = fakeCall({ path: '/services/MathServer/V1' });
    await servicePath('/soap', policies)(ctx);
    const pinned = ctx.service?.policy;
    const outcome = await policies.reload('admin');
    expect(outcome).to.deep.include({ ok: true, changed: true });
    expect(reloads).to.include('admin');
    expect(policies.current).to.not.equal(pinned);
    expect(ctx.service?.policy).to.equal(pinned);
    expect(ctx.service?.version.version.uri).to.equal('/services/MathServer/V1');
    ctx.deferred.forEach((job) => job());
    // A new call gets the new snapshot.
    const next = fakeCall({ path: '/services/MathServer/V1' });
    await servicePath('/soap', policies)(next);
    expect(next.service?.policy).to.equal(policies.current);
    next.deferred.forEach((job) => job());
  });
});
