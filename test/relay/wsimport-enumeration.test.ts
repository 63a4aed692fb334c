/**
 * WS-Enumeration (2004/09 and 2011 namespaces) through a Java client that `wsimport -extension`
 * (JAX-WS RI, Debian's jaxws) generated from the WSDL a proxy on the `npm start` defaults serves:
 * EnumerationSource2004PortType (Enumerate, Pull, Renew, GetStatus, Release) and
 * EnumerationSource2011PortType (Enumerate with NewContext or an EnumerationContext, Renew, GetStatus,
 * Release), over a session's task outputs (sent to the Address of the endpoint reference createSession
 * returns) and over the consumer's sessions (sent to the ports' own address, …/sessions), on the
 * SOAP 1.1 and the SOAP 1.2 ports. Every request is signed and every response and fault verified
 * against the WSDL's sp:AlgorithmSuite by the handler the API client uses
 * (test/java/wsimport-client/WsSecurityPolicyHandler.java, WsdlAlgorithmSuite.java).
 *
 * One proxy, one wsimport + javac and one client run (before()); each case asserts on its part of
 * the JSON summary the client prints (test/java/wsimport-client/SymphonyEnumerationClient.java).
 */
import { expect } from 'chai';
import { SYM, WSEN_2004, WSEN_2011, XPATH_10 } from '../../src/soap/ws-namespaces';
import {
  expectEveryResponseVerified,
  FLAVORS,
  FlowsClientRun,
  SUITES,
  type FlavorKey,
  type StepRecord,
} from '../helpers/wsimport';

const SOAP12_ENV = 'http://www.w3.org/2003/05/soap-envelope';

/** What the client sends (SymphonyEnumerationClient's constants). */
const OUTPUTS_2004 = 25;
const PAGE_2004 = 4;
const OUTPUTS_2011 = 12;
const PAGE_2011 = 5;
const FILTER = "s:State = 'Open'";

/** How JAXB hands back an item (the generated ItemListType / EnumerationContextType are xs:any lax). */
const OUTPUT_ITEM = 'javax.xml.bind.JAXBElement<symphony.soapproxy.v1.TaskOutput>';
const CURSOR_ITEM = 'org.w3c.dom.Element';
const SESSION_ITEM = 'symphony.soapproxy.v1.SessionResourceProperties';

/** An item of Items or of an EnumerationContext's content, as the client describes it. */
interface Item {
  javaType: string | null;
  name?: string;
  value?: string;
  text?: string | null;
  taskId?: string;
  tag?: string;
  successful?: boolean;
  sessionId?: string;
  state?: string | null;
  owner?: string;
  connectionId?: string;
}

interface Context {
  content: Item[];
  cursor: string | null;
}

interface Page {
  sentContext?: string | null;
  context: Context | null;
  items: Item[] | null;
  endOfSequence: boolean;
  count?: number;
  grantedExpires?: string | null;
}

interface Fault {
  javaType: string;
  soapFaultException: boolean;
  message: string;
  code?: string;
  subcodes?: string[];
  reason?: string;
  detail?: string[];
  detailFields?: Record<string, string>;
}

interface Sent {
  name: string;
  nil: boolean;
  text: string;
}

interface FilterSent {
  dialect: string;
  text: string;
  prefixResolvesTo: string | null;
  declaredOn: string | null;
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();
const itemsOf = (pages: readonly Page[]): Item[] => pages.flatMap((p) => p.items ?? []);
const seconds = (duration: unknown): number => {
  const m = /^PT(\d+)S$/.exec(String(duration));
  return m ? Number(m[1]) : NaN;
};

/**
 * A WS-Enumeration fault as a JAX-WS client sees it: a SOAPFaultException whose fault code (SOAP 1.1)
 * or first subcode under env:Sender / env:Receiver (SOAP 1.2) is the standard's QName.
 */
function expectStandardFault(
  flavor: FlavorKey,
  fault: Fault | undefined,
  ns: string,
  local: string,
  soap12Code: 'Sender' | 'Receiver',
): void {
  expect(fault, `a fault {${ns}}${local} was recorded`).to.be.an('object');
  const f = fault!;
  expect(
    f.soapFaultException,
    `${f.javaType} is a javax.xml.ws.soap.SOAPFaultException: ${f.message}`,
  ).to.equal(true);
  if (flavor === 'soap11') {
    expect(f.code, `SOAP 1.1 faultcode (${f.reason ?? ''})`).to.equal(`{${ns}}${local}`);
    expect(f.subcodes).to.deep.equal([]);
  } else {
    expect(f.code, `SOAP 1.2 Code (${f.reason ?? ''})`).to.equal(`{${SOAP12_ENV}}${soap12Code}`);
    expect(f.subcodes?.[0], `SOAP 1.2 first Subcode (${f.reason ?? ''})`).to.equal(`{${ns}}${local}`);
  }
}

describe('npm start defaults: a wsimport-generated Java client enumerates task outputs and sessions (WS-Enumeration 2004/09 and 2011), signed', function () {
  this.timeout(120_000);
  const client = FlowsClientRun.inSuite({
    tmpPrefix: 'ssp-wsimport-enumeration-',
    mainClass: 'SymphonyEnumerationClient',
    generated: ['EnumerationSource2004PortType.java', 'EnumerationSource2011PortType.java'],
    timeoutMs: 120_000,
  });

  it('wsimport generated the SOAP 1.1 and SOAP 1.2 enumeration ports; their policy is the one the WSDL names', () => {
    client.expectPortsAndPolicy([
      'EnumerationSource2004Port',
      'EnumerationSource2011Port',
      'EnumerationSource2004PortSoap12',
      'EnumerationSource2011PortSoap12',
    ]);
  });

  it('signed every request; every response and every fault verified with the suite of the WSDL', () => {
    // Two flows of 40-odd calls each (see the cases below).
    expectEveryResponseVerified(client.summary, SUITES[client.summary.policySuite ?? '']!, 70);
  });

  for (const flavor of FLAVORS) {
    describe(`${flavor.title} ports`, () => {
      const flow = (): Record<string, StepRecord> => client.flow(flavor);
      /** The step's record, asserted to have passed with every response verified. */
      const passed = (name: string): StepRecord => client.passed(flavor, name);
      const base = (): string => client.base();
      /** The cursor of a context: a sym:EnumerationCursor, undeclared, so JAXB hands it back as a DOM element to echo. */
      const cursor = (c: Context | null | undefined, where: string): string => {
        expect(c, `${where}: an EnumerationContext`).to.be.an('object');
        expect(c!.content, `${where}: the context's content as JAXB gives it`).to.deep.equal([
          { javaType: CURSOR_ITEM, name: `{${SYM}}EnumerationCursor`, text: c!.cursor },
        ]);
        return c!.cursor!;
      };
      /** Every page but the last carries a context; the last has none and says EndOfSequence. */
      const endsProperly = (pages: readonly Page[], max: number, where: string): void => {
        expect(pages.length, `${where}: pages`).to.be.at.least(1);
        pages.forEach((p, i) => {
          const last = i === pages.length - 1;
          expect(p.items?.length ?? 0, `${where} page ${i + 1}: at most ${max} items`).to.be.at.most(max);
          if (last) {
            expect(p.context, `${where}: the last page carries no EnumerationContext`).to.equal(null);
            expect(p.endOfSequence, `${where}: the last page says EndOfSequence`).to.equal(true);
          } else {
            expect(p.endOfSequence, `${where} page ${i + 1}: no EndOfSequence before the end`).to.equal(
              false,
            );
            cursor(p.context, `${where} page ${i + 1}`);
          }
          // The client echoes the latest context unchanged.
          if (i > 0)
            expect(p.sentContext, `${where} page ${i + 1}: sent`).to.equal(pages[i - 1]!.context?.cursor);
        });
      };
      /** Every output of the session exactly once: the task ids and texts sent, no more, no fewer. */
      const exactlyOnce = (items: readonly Item[], key: 'e04' | 'e11', where: string): void => {
        const sent = passed(`${key}.sendTaskInputBatch`);
        for (const it of items) {
          expect(it.javaType, `${where}: an item is a sym:Output`).to.equal(OUTPUT_ITEM);
          expect(it.name).to.equal(`{${SYM}}Output`);
          expect(it.successful).to.equal(true);
        }
        const ids = items.map((i) => String(i.taskId));
        const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
        expect(dup, `${where}: task ids delivered more than once`).to.deep.equal([]);
        expect(sorted(ids), `${where}: every task id once`).to.deep.equal(sorted(sent.taskIds as string[]));
        expect(sorted(items.map((i) => String(i.text))), `${where}: every output text once`).to.deep.equal(
          sorted(sent.texts as string[]),
        );
      };

      it(`createSession's EPR Address is where the outputs are enumerated; ${OUTPUTS_2004} and ${OUTPUTS_2011} tasks ran`, () => {
        for (const key of ['e04', 'e11'] as const) {
          const s = passed(`${key}.createSession`);
          const epr = s.epr as { address: string; referenceParameters: Record<string, string> };
          expect(epr.address).to.equal(`${base()}/sessions/${String(s.sessionId)}`);
          expect(flow()[`${key}.port`]).to.deep.equal({
            port: `EnumerationSource${key === 'e04' ? '2004' : '2011'}Port${flavor.suffix}`,
            address: epr.address,
          });
          const n = key === 'e04' ? OUTPUTS_2004 : OUTPUTS_2011;
          expect(passed(`${key}.sendTaskInputBatch`).taskIds).to.have.length(n);
          expect(passed(`${key}.done`).doneTasks).to.equal(n);
        }
      });

      it('2004/09 Enumerate (Expires: a Duration, PT5M) answers the expiry granted and a context holding sym:EnumerationCursor', () => {
        const e = passed('e04.Enumerate');
        expect(e.request as Sent[]).to.deep.equal([
          { name: `{${WSEN_2004}}Expires`, nil: false, text: 'PT5M' },
        ]);
        expect(e.expires).to.equal('PT300S');
        cursor(e.context as Context, 'EnumerateResponse');
        expect(e.extensions, 'no wsman:Items without OptimizeEnumeration').to.deep.equal([]);
      });

      it(`Pull (MaxElements ${PAGE_2004}) to the end: every output exactly once, then no context and EndOfSequence`, () => {
        const first = passed('e04.Pull.first') as StepRecord & Page;
        expect(first.request as Sent[]).to.deep.equal([
          {
            name: `{${WSEN_2004}}EnumerationContext`,
            nil: false,
            text: cursor(passed('e04.Enumerate').context as Context, 'EnumerateResponse'),
          },
          { name: `{${WSEN_2004}}MaxElements`, nil: false, text: String(PAGE_2004) },
        ]);
        expect(first.items, 'the first page is full').to.have.length(PAGE_2004);
        const rest = passed('e04.Pull.rest').pages as Page[];
        const pages = [first, ...rest];
        endsProperly(pages, PAGE_2004, '2004/09 Pull');
        // 25 outputs in pages of 4: 7 pages with items, then the end is known (a Pull that finds none).
        expect(pages.map((p) => p.items?.length ?? 0)).to.deep.equal([4, 4, 4, 4, 4, 4, 1, 0]);
        exactlyOnce(itemsOf(pages), 'e04', '2004/09 Pull');
      });

      it('a Pull repeated with the same context (its reply lost) answers the same task ids and the same next context', () => {
        const first = passed('e04.Pull.first') as StepRecord & Page;
        const repeat = passed('e04.Pull.repeat') as StepRecord & Page;
        expect(repeat.sentContext).to.equal(first.sentContext);
        expect((repeat.items ?? []).map((i) => i.taskId)).to.deep.equal(
          (first.items ?? []).map((i) => i.taskId),
        );
        expect(cursor(repeat.context, 'repeat')).to.equal(cursor(first.context, 'first'));
      });

      it('GetStatus and Renew (Expires PT10M) on the live context', () => {
        const status = passed('e04.GetStatus');
        expect(seconds(status.expires), `GetStatus Expires ${String(status.expires)}`).to.be.within(240, 300);
        const renew = passed('e04.Renew');
        expect(renew.expires).to.equal('PT600S');
        expect(cursor(renew.context as Context, 'RenewResponse')).to.equal(
          cursor(renew.heldContext as Context, 'held'),
        );
      });

      it('Release (void: an empty Body) then Pull → SOAPFaultException wsen:InvalidEnumerationContext', () => {
        const r = passed('e04.Release');
        expect(r.released).to.equal(true);
        expect(r.responseBody, 'the Release response: an empty soap:Body').to.deep.equal([]);
        const f = r.fault as Fault;
        expectStandardFault(flavor.key, f, WSEN_2004, 'InvalidEnumerationContext', 'Receiver');
        expect(f.detailFields?.code).to.equal('SSP_ENUMERATION_CONTEXT_INVALID');
      });

      it('faults: a Filter on an outputs enumeration → FilteringNotSupported; Expires in the past → InvalidExpirationTime', () => {
        const filtered = passed('e04.Fault.Filter');
        expect((filtered.request as FilterSent).text).to.equal(FILTER);
        expectStandardFault(
          flavor.key,
          filtered.fault as Fault,
          WSEN_2004,
          'FilteringNotSupported',
          'Sender',
        );
        const past = passed('e04.Fault.PastExpires');
        expect(past.request as Sent[]).to.deep.equal([
          { name: `{${WSEN_2004}}Expires`, nil: false, text: '2001-01-01T00:00:00Z' },
        ]);
        expectStandardFault(flavor.key, past.fault as Fault, WSEN_2004, 'InvalidExpirationTime', 'Sender');
      });

      it(`2011: Enumerate(NewContext PT10M, MaxItems ${PAGE_2011}) then Enumerate(EnumerationContext) to the end: GrantedExpires, every output once`, () => {
        const first = passed('e11.Enumerate.NewContext') as StepRecord & Page;
        expect(first.request as Sent[]).to.deep.equal([
          { name: `{${WSEN_2011}}NewContext`, nil: false, text: 'PT10M' },
          { name: `{${WSEN_2011}}MaxItems`, nil: false, text: String(PAGE_2011) },
        ]);
        expect(first.grantedExpires, 'GrantedExpires answers NewContext/Expires').to.equal('PT600S');
        expect(first.items, 'the first page comes with the EnumerateResponse').to.have.length(PAGE_2011);
        const rest = passed('e11.Enumerate.EnumerationContext').pages as Page[];
        expect(rest[0]?.sentContext).to.equal(cursor(first.context, 'first EnumerateResponse'));
        const pages = [first, ...rest];
        endsProperly(pages, PAGE_2011, '2011 Enumerate');
        expect(pages.map((p) => p.items?.length ?? 0)).to.deep.equal([5, 5, 2, 0]);
        exactlyOnce(itemsOf(pages), 'e11', '2011 Enumerate');
      });

      it('2011: GetStatus, Renew (PT1H), Release (a ReleaseResponse), then Enumerate with it → wsen:InvalidEnumerationContext', () => {
        const r = passed('e11.GetStatus.Renew.Release');
        expect(seconds(r.getStatusGrantedExpires)).to.be.within(540, 600);
        expect(r.renewGrantedExpires).to.equal('PT3600S');
        expect(r.releaseResponse).to.equal('org.w3._2011._03.ws_enu.ReleaseResponse');
        expectStandardFault(flavor.key, r.fault as Fault, WSEN_2011, 'InvalidEnumerationContext', 'Receiver');
      });

      describe("the consumer's sessions (Enumerate at …/sessions)", () => {
        it("Filter s:State = 'Open' (prefix declared on wsen:Filter by a handler) → SessionResourceProperties of this consumer's open sessions", () => {
          expect(flow()['sessions.port']).to.deep.equal({
            port: `EnumerationSource2004Port${flavor.suffix}`,
            address: `${base()}/sessions`,
          });
          passed('sessions.detached');
          const s = passed('sessions.filtered');
          expect(s.request as FilterSent).to.deep.equal({
            dialect: XPATH_10,
            text: FILTER,
            prefixResolvesTo: SYM,
            declaredOn: 'Filter',
          });
          endsProperly(s.pages as Page[], 10, 'sessions');
          const items = s.items as Item[];
          const open = s.openSessions as string[];
          const detached = s.detachedSessions as string[];
          for (const it of items) {
            expect(it.javaType, 'an item is the typed properties document').to.equal(SESSION_ITEM);
            expect(it.state).to.equal('Open');
          }
          const owners = new Set(items.map((i) => i.owner));
          expect(owners.size, `one owner: ${[...owners].join(' | ')}`).to.equal(1);
          expect([...owners][0])
            .to.be.a('string')
            .and.not.equal('');
          // Every session this client left open (both flows: one consumer), and no detached one.
          expect(sorted(items.map((i) => String(i.sessionId)))).to.deep.equal(sorted(open));
          for (const id of detached) expect(items.map((i) => i.sessionId)).to.not.include(id);
        });

        it('without a Filter the detached session is there too (State Detached): the filter is what left it out', () => {
          const s = passed('sessions.unfiltered');
          const items = s.items as Item[];
          const filtered = passed('sessions.filtered');
          const detached = filtered.detachedSessions as string[];
          expect(sorted(items.map((i) => String(i.sessionId)))).to.deep.equal(
            sorted([...(filtered.openSessions as string[]), ...detached]),
          );
          for (const id of detached) {
            expect(items.find((i) => i.sessionId === id)?.state, `session ${id}`).to.equal('Detached');
          }
        });

        it('the same test written without a prefix needs no handler', () => {
          const s = passed('sessions.filtered.noPrefix');
          expect((s.request as FilterSent).prefixResolvesTo).to.equal(null);
          const ids = (s.items as Item[]).map((i) => String(i.sessionId));
          // Sessions the SOAP 1.2 flow made after the filtered step are in it too; all of them Open.
          expect(ids).to.include.members(passed('sessions.filtered').openSessions as string[]);
          for (const id of passed('sessions.filtered').detachedSessions as string[]) {
            expect(ids).to.not.include(id);
          }
        });

        it('the generated classes alone declare no prefix for the Filter text → wsen:CannotProcessFilter, which says so', () => {
          // JAXB writes FilterType's mixed content as text and declares nothing for it; the filtered
          // case above declares xmlns:s with a SOAP handler (FilterNamespaces).
          const s = passed('sessions.undeclaredPrefix');
          expect((s.request as FilterSent).prefixResolvesTo).to.equal(null);
          const f = s.fault as Fault;
          expectStandardFault(flavor.key, f, WSEN_2004, 'CannotProcessFilter', 'Sender');
          expect(f.detailFields?.code).to.equal('SSP_ENUMERATION_FILTER_INVALID');
          expect(f.reason).to.contain("the namespace prefix 's' is not declared");
        });
      });
    });
  }
});
