import { expect } from 'chai';
import {
  CONSUMER_HEADER,
  consumersFromHeader,
  op,
  runRequest,
  startHarness,
  type CallResult,
  type Harness,
} from '../../test/helpers/in-process';
import { Reaper } from '../lifetime/reaper';
import { resourceKey } from '../lifetime/lifetimes';
import { SYM, WSRF_RL, WSRF_RP, XPATH_10 } from '../soap/ws-namespaces';

const RP = `xmlns:wsrf-rp="${WSRF_RP}"`;
const RL = `xmlns:wsrf-rl="${WSRF_RL}"`;
const getProperty = (qname: string, decls = `xmlns:sym="${SYM}"`): string =>
  `<wsrf-rp:GetResourceProperty ${RP} ${decls}>${qname}</wsrf-rp:GetResourceProperty>`;
const query = (expression: string, dialect = XPATH_10): string =>
  `<wsrf-rp:QueryResourceProperties ${RP}><wsrf-rp:QueryExpression Dialect="${dialect}" xmlns:s="${SYM}">${expression}</wsrf-rp:QueryExpression></wsrf-rp:QueryResourceProperties>`;
const setTermination = (inner: string): string =>
  `<wsrf-rl:SetTerminationTime ${RL} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${inner}</wsrf-rl:SetTerminationTime>`;
const DESTROY = `<wsrf-rl:Destroy ${RL}/>`;

describe('resources: sessions and connections as WS-Resources (WS-RP 1.2, WS-RL 1.2)', () => {
  let h: Harness;
  const at = (path: string, body: string, consumer = 'client-a'): Promise<CallResult> =>
    h.post(body, { path, headers: { [CONSUMER_HEADER]: consumer } });

  async function sessionOf(
    consumer = 'client-a',
  ): Promise<{ connectionId: string; sessionId: string; epr: string }> {
    const c = await h.post(
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
      { headers: { [CONSUMER_HEADER]: consumer } },
    );
    const connectionId = c.pick('connectionId')!;
    const s = await h.post(op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`), {
      headers: { [CONSUMER_HEADER]: consumer },
    });
    expect(s.code, s.answer.body).to.equal(undefined);
    return { connectionId, sessionId: s.pick('sessionId')!, epr: s.answer.body };
  }

  before(async () => {
    h = await startHarness({ phases: consumersFromHeader, maxTerminationMs: 7 * 86_400_000 });
  });
  after(() => h?.close());

  describe('endpoint references', () => {
    it('connect and createSession return an EPR whose Address names the resource, and a reference parameter', async () => {
      const { connectionId, sessionId, epr } = await sessionOf();
      expect(epr).to.contain(`<wsa:Address>http://localhost/soap/sessions/${sessionId}</wsa:Address>`);
      expect(epr).to.contain(`<sym:SessionId xmlns:sym="${SYM}">${sessionId}</sym:SessionId>`);
      const r = await h.post(
        op(
          'connect',
          '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
        ),
      );
      expect(r.answer.body).to.match(
        /<wsa:Address>http:\/\/localhost\/soap\/connections\/[^<]+<\/wsa:Address>/,
      );
      expect(connectionId).to.be.a('string');
    });
  });

  describe('resource properties', () => {
    it('GetResourcePropertyDocument answers the whole document from one snapshot', async () => {
      const { sessionId, connectionId } = await sessionOf();
      const r = await at(`/soap/sessions/${sessionId}`, `<wsrf-rp:GetResourcePropertyDocument ${RP}/>`);
      expect(r.code, r.answer.body).to.equal(undefined);
      const body = r.answer.body;
      expect(body).to.contain('<sym:SessionResourceProperties');
      expect(r.pick('SessionId')).to.equal(sessionId);
      expect(r.pick('ConnectionId')).to.equal(connectionId);
      expect(r.pick('State')).to.equal('Open');
      expect(r.pick('ApplicationName')).to.equal('echo');
      expect(r.pick('Owner')).to.equal('client-a');
      expect(r.pick('SubmittedTaskCount')).to.equal('0');
      expect(r.pick('QueryExpressionDialect')).to.equal(XPATH_10);
      expect(Date.parse(r.pick('CurrentTime')!)).to.be.closeTo(Date.now(), 60_000);
      // Nothing lapses in this harness: no termination time.
      expect(body).to.match(/<wsrf-rl:TerminationTime[^>]*xsi:nil="true"\/>/);
    });

    it('GetResourceProperty names one property by QName; the prefix is resolved where it is written', async () => {
      const { sessionId } = await sessionOf();
      const r = await at(`/soap/sessions/${sessionId}`, getProperty('x:State', `xmlns:x="${SYM}"`));
      expect(r.code, r.answer.body).to.equal(undefined);
      expect(r.answer.body).to.contain(`<sym:State xmlns:sym="${SYM}">Open</sym:State>`);
      // Declared but absent (no name was given): no instance, no fault.
      const name = await at(`/soap/sessions/${sessionId}`, getProperty('sym:Name'));
      expect(name.code).to.equal(undefined);
      expect(name.pick('Name')).to.equal(undefined);
    });

    it('refuses a name that is no property, or whose prefix is not declared, with InvalidResourcePropertyQNameFault', async () => {
      const { sessionId } = await sessionOf();
      for (const q of ['sym:Nope', 'nope:State', 'sym:Session Id']) {
        const r = await at(`/soap/sessions/${sessionId}`, getProperty(q));
        expect(r.code, q).to.equal('SSP_INVALID_PROPERTY_QNAME');
        expect(r.answer.body).to.contain('wsrf-rp:InvalidResourcePropertyQNameFault');
        expect(r.answer.body).to.contain('<wsrf-bf:ErrorCode dialect="urn:symphony-soap-proxy:errors">');
      }
    });

    it('GetMultipleResourceProperties answers in the order asked', async () => {
      const { sessionId } = await sessionOf();
      const r = await at(
        `/soap/sessions/${sessionId}`,
        `<wsrf-rp:GetMultipleResourceProperties ${RP} xmlns:sym="${SYM}" xmlns:wsrf-rl="${WSRF_RL}">` +
          `<wsrf-rp:ResourceProperty>wsrf-rl:CurrentTime</wsrf-rp:ResourceProperty>` +
          `<wsrf-rp:ResourceProperty>sym:State</wsrf-rp:ResourceProperty>` +
          `</wsrf-rp:GetMultipleResourceProperties>`,
      );
      expect(r.code, r.answer.body).to.equal(undefined);
      const body = r.answer.body;
      expect(body.indexOf('CurrentTime')).to.be.lessThan(body.indexOf('sym:State'));
    });

    it('a connection has its own document', async () => {
      const { connectionId } = await sessionOf();
      const r = await at(`/soap/connections/${connectionId}`, `<wsrf-rp:GetResourcePropertyDocument ${RP}/>`);
      expect(r.code, r.answer.body).to.equal(undefined);
      expect(r.answer.body).to.contain('<sym:ConnectionResourceProperties');
      expect(r.pick('ConnectionId')).to.equal(connectionId);
      // A session property is not a connection property.
      const s = await at(`/soap/connections/${connectionId}`, getProperty('sym:State'));
      expect(s.code).to.equal('SSP_INVALID_PROPERTY_QNAME');
    });
  });

  describe('QueryResourceProperties (XPath 1.0)', () => {
    it('answers node-sets as elements and other results as text', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      const nodes = await at(path, query('/s:SessionResourceProperties/s:State'));
      expect(nodes.code, nodes.answer.body).to.equal(undefined);
      expect(nodes.pick('State')).to.equal('Open');
      const bool = await at(path, query("s:State = 'Open' and s:PendingTaskCount = 0"));
      expect(bool.code, bool.answer.body).to.equal(undefined);
      expect(bool.pick('QueryResourcePropertiesResponse')).to.equal('true');
      const num = await at(path, query('count(s:*)'));
      expect(Number(num.pick('QueryResourcePropertiesResponse'))).to.be.greaterThan(10);
    });

    it('gives the standard faults for an unknown dialect, a bad expression and an XPath bomb', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      const dialect = await at(path, query('s:State', 'urn:example:sql'));
      expect(dialect.code).to.equal('SSP_UNKNOWN_QUERY_DIALECT');
      expect(dialect.answer.body).to.contain('wsrf-rp:UnknownQueryExpressionDialectFault');
      for (const bad of [
        's:State[',
        'unknown:State',
        'count(//*[count(//*[count(//*)>0])>0])',
        '$v',
        'id("x")',
      ]) {
        const r = await at(path, query(bad.replace(/</g, '&lt;').replace(/>/g, '&gt;')));
        expect(r.code, bad).to.equal('SSP_INVALID_QUERY');
        expect(r.answer.body).to.contain('wsrf-rp:InvalidQueryExpressionFault');
      }
    });
  });

  describe('which resource, and whose', () => {
    it('accepts the key as a reference-parameter header at the service address, and refuses a mismatch', async () => {
      const { sessionId } = await sessionOf();
      const header = (id: string): string =>
        `<sym:SessionId xmlns:sym="${SYM}" xmlns:wsa="http://www.w3.org/2005/08/addressing" wsa:IsReferenceParameter="true">${id}</sym:SessionId>`;
      const r = await postWithHeader(h, '/soap', header(sessionId), getProperty('sym:SessionId'));
      expect(r.code, r.answer.body).to.equal(undefined);
      expect(r.pick('SessionId')).to.equal(sessionId);
      const mismatch = await postWithHeader(
        h,
        `/soap/sessions/${sessionId}`,
        header('other-id'),
        getProperty('sym:State'),
      );
      expect(mismatch.code).to.equal('SSP_RESOURCE_UNKNOWN');
      expect(mismatch.answer.body).to.contain('wsrf-r:ResourceUnknownFault');
      const none = await at('/soap', getProperty('sym:State'));
      expect(none.code).to.equal('SSP_RESOURCE_UNKNOWN');
      const template = await at('/soap/sessions', getProperty('sym:State'));
      expect(template.code).to.equal('SSP_RESOURCE_UNKNOWN');
    });

    it('an unknown id is ResourceUnknownFault; another consumer’s resource is NotOwnerFault', async () => {
      const { sessionId } = await sessionOf('client-a');
      const unknown = await at('/soap/sessions/no-such-session', getProperty('sym:State'));
      expect(unknown.code).to.equal('SSP_RESOURCE_UNKNOWN');
      expect(unknown.answer.body).to.contain('wsrf-r:ResourceUnknownFault');
      const foreign = await at(`/soap/sessions/${sessionId}`, getProperty('sym:State'), 'client-b');
      expect(foreign.code).to.equal('SSP_NOT_OWNER');
      const destroy = await at(`/soap/sessions/${sessionId}`, DESTROY, 'client-b');
      expect(destroy.code).to.equal('SSP_NOT_OWNER');
      // Nothing was destroyed by the refused call.
      expect((await at(`/soap/sessions/${sessionId}`, getProperty('sym:State'))).pick('State')).to.equal(
        'Open',
      );
    });
  });

  describe('lifetime', () => {
    it('SetTerminationTime with a duration schedules the end and shows it as TerminationTime', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      const r = await at(
        path,
        setTermination('<wsrf-rl:RequestedLifetimeDuration>PT1H</wsrf-rl:RequestedLifetimeDuration>'),
      );
      expect(r.code, r.answer.body).to.equal(undefined);
      const granted = Date.parse(r.pick('NewTerminationTime')!);
      expect(granted).to.be.closeTo(Date.now() + 3_600_000, 60_000);
      expect(Date.parse(r.pick('CurrentTime')!)).to.be.closeTo(Date.now(), 60_000);
      const rp = await at(path, getProperty('wsrf-rl:TerminationTime', `xmlns:wsrf-rl="${WSRF_RL}"`));
      expect(Date.parse(rp.pick('TerminationTime')!)).to.equal(granted);
      expect(await h.store.terminationSetByClient(resourceKey('session', sessionId))).to.equal(true);
      // nil: no time of the client's own; nothing lapses in this harness, so none at all.
      const nil = await at(path, setTermination('<wsrf-rl:RequestedTerminationTime xsi:nil="true"/>'));
      expect(nil.code, nil.answer.body).to.equal(undefined);
      expect(nil.answer.body).to.match(/<wsrf-rl:NewTerminationTime[^>]*xsi:nil="true"\/>/);
      expect(await h.store.terminationOf(resourceKey('session', sessionId))).to.equal(null);
    });

    it('refuses a time in the past, too far ahead, or not a time at all, and changes nothing', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      for (const inner of [
        '<wsrf-rl:RequestedTerminationTime>2001-01-01T00:00:00Z</wsrf-rl:RequestedTerminationTime>',
        '<wsrf-rl:RequestedLifetimeDuration>P30D</wsrf-rl:RequestedLifetimeDuration>',
        '<wsrf-rl:RequestedLifetimeDuration>-PT1H</wsrf-rl:RequestedLifetimeDuration>',
        '<wsrf-rl:RequestedTerminationTime>tomorrow</wsrf-rl:RequestedTerminationTime>',
        '<wsrf-rl:RequestedLifetimeDuration>PT</wsrf-rl:RequestedLifetimeDuration>',
      ]) {
        const r = await at(path, setTermination(inner));
        expect(r.code, inner).to.equal('SSP_TERMINATION_TIME_INVALID');
        expect(r.answer.body).to.contain('wsrf-rl:UnableToSetTerminationTimeFault');
      }
      expect(await h.store.terminationOf(resourceKey('session', sessionId))).to.equal(null);
    });

    it('a time the client set is carried out by the reaper as a destroy, whatever idle sessions become', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      const r = await at(
        path,
        setTermination('<wsrf-rl:RequestedLifetimeDuration>PT1S</wsrf-rl:RequestedLifetimeDuration>'),
      );
      expect(r.code, r.answer.body).to.equal(undefined);
      const reaper = new Reaper(h.store, h.router, h.lifetimes, h.metrics, {
        sweepIntervalMs: 1000,
        claimLeaseMs: 10_000,
        onSessionExpiry: 'detach',
      });
      const done = await reaper.sweep(Date.now() + 2000);
      expect(done).to.deep.include({ key: resourceKey('session', sessionId), outcome: 'destroyed' });
      expect(await h.store.terminationSetByClient(resourceKey('session', sessionId))).to.equal(false);
      const after = await at(path, getProperty('sym:State'));
      expect(after.code).to.equal('SSP_RESOURCE_UNKNOWN');
      const metrics = await h.metrics.registry.getSingleMetricAsString('ssp_resource_terminations_total');
      expect(metrics).to.match(
        /cause="scheduled".*outcome="destroyed"|outcome="destroyed".*cause="scheduled"/,
      );
    });

    it('Destroy ends a session on the grid; afterwards it is unknown', async () => {
      const { sessionId } = await sessionOf();
      const path = `/soap/sessions/${sessionId}`;
      const before = h.grid.stats().sessions;
      const r = await at(path, DESTROY);
      expect(r.code, r.answer.body).to.equal(undefined);
      expect(r.answer.body).to.contain('DestroyResponse');
      expect(h.grid.stats().sessions).to.equal(before - 1);
      const again = await at(path, DESTROY);
      expect(again.code).to.equal('SSP_RESOURCE_UNKNOWN');
    });

    it('Destroy ends a connection', async () => {
      const { connectionId } = await sessionOf();
      const r = await at(`/soap/connections/${connectionId}`, DESTROY);
      expect(r.code, r.answer.body).to.equal(undefined);
      expect(await h.store.getConnection(connectionId)).to.equal(undefined);
    });
  });
});

describe('resources: an operator who keeps lifetimes to itself (lifetime.clientTerminationTimes: false)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ phases: consumersFromHeader, clientTerminationTimes: false });
  });
  after(() => h?.close());

  it('refuses SetTerminationTime with TerminationTimeChangeRejectedFault and changes nothing', async () => {
    const { sessionId } = await h.openSession();
    const r = await h.post(
      setTermination('<wsrf-rl:RequestedLifetimeDuration>PT1H</wsrf-rl:RequestedLifetimeDuration>'),
      {
        path: `/soap/sessions/${sessionId}`,
      },
    );
    expect(r.code).to.equal('SSP_TERMINATION_TIME_REJECTED');
    expect(r.answer.body).to.contain('wsrf-rl:TerminationTimeChangeRejectedFault');
    expect(await h.store.terminationSetByClient(resourceKey('session', sessionId))).to.equal(false);
  });
});

/** Posts with a SOAP header block (the reference parameter a GT4- or CXF-style client echoes). */
async function postWithHeader(h: Harness, path: string, header: string, body: string): Promise<CallResult> {
  const envelope =
    `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>${header}</soap:Header>` +
    `<soap:Body>${body}</soap:Body></soap:Envelope>`;
  return runRequest(h.pipeline, { path, body: envelope, headers: { [CONSUMER_HEADER]: 'client-a' } });
}
