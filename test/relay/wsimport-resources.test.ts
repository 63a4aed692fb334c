/**
 * Sessions and connections as WS-Resources, through a Java client that `wsimport -extension` (JAX-WS
 * RI, Debian's jaxws) generated from the WSDL a proxy on the `npm start` defaults serves: every
 * operation of SessionResourcePortType and ConnectionResourcePortType (WS-ResourceProperties 1.2,
 * WS-ResourceLifetime 1.2), sent to the Address of the endpoint reference that connect and
 * createSession return, over the SOAP 1.1 and the SOAP 1.2 ports. Every request is signed and every
 * response and fault verified against the WSDL's sp:AlgorithmSuite by the handler the API client uses
 * (test/java/wsimport-client/WsSecurityPolicyHandler.java, WsdlAlgorithmSuite.java).
 *
 * One proxy, one wsimport + javac and one client run (before()); each case asserts on its part of
 * the JSON summary the client prints (test/java/wsimport-client/SymphonyResourceClient.java).
 */
import { expect } from 'chai';
import { SSP_ERRORS, SYM, WSRF_RL, XPATH_10 } from '../../src/soap/ws-namespaces';
import {
  expectEveryResponseVerified,
  FLAVORS,
  FlowsClientRun,
  SUITES,
  type StepRecord,
} from '../helpers/wsimport';

interface Item {
  name?: string;
  nil?: boolean;
  value?: string | null;
  text?: string;
  javaType?: string;
}

interface Fault {
  message: string;
  detail: string;
  errorCode?: string;
  errorCodeDialect?: string;
  description: string[];
}

interface Sent {
  name: string;
  nil: boolean;
  text: string;
}

const ms = (xsDateTime: unknown): number => Date.parse(String(xsDateTime));

describe('npm start defaults: a wsimport-generated Java client uses sessions and connections as WS-Resources, signed', function () {
  this.timeout(120_000);
  const client = FlowsClientRun.inSuite({
    tmpPrefix: 'ssp-wsimport-resources-',
    mainClass: 'SymphonyResourceClient',
    generated: ['SessionResourcePortType.java', 'ConnectionResourcePortType.java'],
    timeoutMs: 90_000,
  });

  it('wsimport generated the SOAP 1.1 and SOAP 1.2 resource ports; their policy is the one the WSDL names', () => {
    client.expectPortsAndPolicy([
      'SessionResourcePort',
      'ConnectionResourcePort',
      'SessionResourcePortSoap12',
      'ConnectionResourcePortSoap12',
    ]);
  });

  it('signed every request; every response and every fault verified with the suite of the WSDL', () => {
    // Two flows of 20-odd calls each (see the cases below).
    expectEveryResponseVerified(client.summary, SUITES[client.summary.policySuite ?? '']!, 40);
  });

  for (const flavor of FLAVORS) {
    describe(`${flavor.title} ports`, () => {
      const flow = (): Record<string, StepRecord> => client.flow(flavor);
      /** The step's record, asserted to have passed with every response verified. */
      const passed = (name: string): StepRecord => client.passed(flavor, name);
      const epr = (name: string): { address: string; referenceParameters: Record<string, string> } =>
        passed(name).epr as { address: string; referenceParameters: Record<string, string> };

      it('connect and createSession return an endpoint reference whose Address names the resource', () => {
        const c = passed('connect');
        const s = passed('createSession');
        const base = client.base();
        expect(epr('connect').address).to.equal(`${base}/connections/${String(c.connectionId)}`);
        expect(epr('connect').referenceParameters).to.deep.equal({
          [`{${SYM}}ConnectionId`]: c.connectionId,
        });
        expect(epr('createSession').address).to.equal(`${base}/sessions/${String(s.sessionId)}`);
        expect(epr('createSession').referenceParameters).to.deep.equal({
          [`{${SYM}}SessionId`]: s.sessionId,
        });
        expect(flow().sessionPort).to.deep.include({ port: `SessionResourcePort${flavor.suffix}` });
        expect(flow().connectionPort).to.deep.include({ port: `ConnectionResourcePort${flavor.suffix}` });
      });

      it('GetResourcePropertyDocument answers the typed SessionResourceProperties of that session', () => {
        const d = passed('session.GetResourcePropertyDocument');
        expect(d.javaType).to.equal('symphony.soapproxy.v1.SessionResourceProperties');
        expect(d.sessionId).to.equal(passed('createSession').sessionId);
        expect(d.connectionId).to.equal(passed('connect').connectionId);
        expect(d.state).to.equal('Open');
        expect(d.name).to.equal(`wsimport-resources-${flavor.key}`);
        expect(d.priority).to.equal(10);
        expect(d.applicationName).to.equal('echo');
        expect(d.owner).to.be.a('string').and.not.equal('');
        expect(ms(d.currentTime)).to.be.closeTo(Date.now(), 120_000);
        expect(d.queryExpressionDialects).to.deep.equal([XPATH_10]);
      });

      it('GetResourceProperty(QName sym:State): JAXB declares the prefix in scope, the proxy resolves it', () => {
        const g = passed('session.GetResourceProperty');
        const [sent] = g.request as {
          text: string;
          prefix: string;
          resolvesTo: string;
          declaredOn: string;
        }[];
        expect(sent, 'the request as sent').to.not.equal(undefined);
        // Prefixed, or unprefixed with the namespace as the default one in scope: JAXB chooses
        // (it took the default namespace once WS-BaseNotification's schema joined its context).
        expect(sent!.text).to.match(/^(?:[A-Za-z_][\w.-]*:)?State$/);
        expect(sent!.resolvesTo, `prefix ${sent!.prefix} in scope on GetResourceProperty`).to.equal(SYM);
        expect(g.items as Item[]).to.deep.equal([{ name: `{${SYM}}State`, nil: false, value: 'Open' }]);
      });

      it('GetMultipleResourceProperties answers every property, in the order asked', () => {
        const g = passed('session.GetMultipleResourceProperties');
        const sent = g.request as { resolvesTo: string }[];
        expect(sent.map((s) => s.resolvesTo)).to.deep.equal([SYM, WSRF_RL, SYM]);
        const items = g.items as Item[];
        expect(items).to.have.length(3);
        expect(items[0]).to.deep.equal({ name: `{${SYM}}State`, nil: false, value: 'Open' });
        // wsrf-rl:CurrentTime is a global element with its own JAXB class (no JAXBElement around it).
        expect(items[1]!.javaType).to.equal('org.oasis_open.docs.wsrf.rl_2.CurrentTime');
        expect(ms(items[1]!.value)).to.be.closeTo(Date.now(), 120_000);
        expect(items[2]).to.deep.equal({
          name: `{${SYM}}SessionId`,
          nil: false,
          value: passed('createSession').sessionId,
        });
      });

      it('QueryResourceProperties (XPath 1.0): a node-set and a boolean, the prefix declared on QueryExpression', () => {
        const nodes = passed('session.QueryResourceProperties.nodes');
        expect(nodes.request).to.deep.equal({
          dialect: XPATH_10,
          text: '/s:SessionResourceProperties/s:State',
          prefixResolvesTo: SYM,
          declaredOn: 'QueryExpression',
        });
        expect(nodes.content as Item[]).to.deep.equal([{ name: `{${SYM}}State`, nil: false, value: 'Open' }]);
        const bool = passed('session.QueryResourceProperties.boolean');
        expect(bool.content as Item[]).to.deep.equal([{ text: 'true' }]);
      });

      it('QueryResourceProperties: the generated classes alone declare no prefix for the expression text → InvalidQueryExpressionFault', () => {
        // JAXB writes QueryExpressionType's mixed content as text and declares nothing for it; the
        // cases above declare xmlns:s with a SOAP handler. The proxy says exactly what is missing.
        const q = passed('session.QueryResourceProperties.undeclaredPrefix');
        expect((q.request as { prefixResolvesTo: string | null }).prefixResolvesTo).to.equal(null);
        const f = q.fault as Fault;
        expect(f.detail).to.equal('InvalidQueryExpressionFaultType');
        expect(f.errorCode).to.equal('SSP_INVALID_QUERY');
        expect(f.errorCodeDialect).to.equal(SSP_ERRORS);
        expect(f.message).to.contain("the namespace prefix 's' is not declared");
      });

      it('SetTerminationTime with a duration (javax.xml.datatype.Duration PT1H) schedules the end an hour ahead', () => {
        const s = passed('session.SetTerminationTime.duration');
        expect(s.request as Sent[]).to.deep.equal([
          { name: 'RequestedLifetimeDuration', nil: false, text: 'PT1H' },
        ]);
        expect(ms(s.newTerminationTime) - ms(s.currentTime)).to.be.closeTo(3_600_000, 5_000);
        expect(s.grantedSecondsAhead).to.be.within(3590, 3610);
        const [tt] = s.terminationTimeProperty as Item[];
        expect(tt).to.deep.include({ name: `{${WSRF_RL}}TerminationTime`, nil: false });
        expect(ms(tt!.value)).to.equal(ms(s.newTerminationTime));
      });

      it('SetTerminationTime with a past time → UnableToSetTerminationTimeFault (the checked exception)', () => {
        const s = passed('session.SetTerminationTime.past');
        expect(s.request as Sent[]).to.deep.equal([
          { name: 'RequestedTerminationTime', nil: false, text: '2001-01-01T00:00:00Z' },
        ]);
        const f = s.fault as Fault;
        expect(f.detail).to.equal('UnableToSetTerminationTimeFaultType');
        expect(f.errorCode).to.equal('SSP_TERMINATION_TIME_INVALID');
        expect(f.description.join(' ')).to.contain('is not in the future');
      });

      it('an empty SetTerminationTime (all the generated method can send for nil) gets the declared InvalidArgumentFault', () => {
        const s = passed('session.SetTerminationTime.empty');
        expect(s).to.deep.include({ fault: 'InvalidArgumentFault', code: 'SSP_INVALID_ARGUMENT' });
      });

      it('SetTerminationTime nil through a JAX-WS Dispatch with the generated JAXB classes', () => {
        const s = passed('session.SetTerminationTime.nil.dispatch');
        expect(s.request as Sent[]).to.deep.equal([
          { name: 'RequestedTerminationTime', nil: true, text: '' },
        ]);
        // No time of the client's own: the hour set above is gone, the application's idle lease (if any) applies.
        const hour = ms(flow()['session.SetTerminationTime.duration']?.newTerminationTime);
        const [tt] = s.terminationTimeProperty as Item[];
        if (s.newTerminationTime === null) {
          expect(tt).to.deep.include({ nil: true });
        } else {
          expect(ms(s.newTerminationTime)).to.not.equal(hour);
          expect(ms(tt!.value)).to.equal(ms(s.newTerminationTime));
        }
      });

      it('Destroy ends the session; a later call → ResourceUnknownFault (the checked exception)', () => {
        passed('session.Destroy');
        const f = passed('session.afterDestroy').fault as Fault;
        expect(f.detail).to.equal('ResourceUnknownFaultType');
        expect(f.errorCode).to.equal('SSP_RESOURCE_UNKNOWN');
        expect(f.description.join(' ')).to.contain(String(passed('createSession').sessionId));
      });

      it('the connection: GetResourceProperty(sym:ConnectionId), its document, Destroy, then ResourceUnknownFault', () => {
        const id = passed('connect').connectionId;
        const g = passed('connection.GetResourceProperty');
        expect((g.request as { resolvesTo: string }[])[0]?.resolvesTo).to.equal(SYM);
        expect(g.items as Item[]).to.deep.equal([{ name: `{${SYM}}ConnectionId`, nil: false, value: id }]);
        const d = passed('connection.GetResourcePropertyDocument');
        expect(d.javaType).to.equal('symphony.soapproxy.v1.ConnectionResourceProperties');
        expect(d.connectionId).to.equal(id);
        passed('connection.Destroy');
        const f = passed('connection.afterDestroy').fault as Fault;
        expect(f.detail).to.equal('ResourceUnknownFaultType');
        expect(f.errorCode).to.equal('SSP_RESOURCE_UNKNOWN');
      });
    });
  }
});
