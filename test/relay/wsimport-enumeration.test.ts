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
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_DEV_CERTS_DIR } from '../../src/commands/certs';
import { DEV_PKI_FILES } from '../../src/commands/dev-pki';
import { stopChild } from '../../src/server/embedded-grid';
import { childElements, parseXml, type XmlElement } from '../../src/soap/xml';
import { SYM, WSEN_2004, WSEN_2011, XPATH_10 } from '../../src/soap/ws-namespaces';
import { hasCommand, requirePeer } from '../helpers/peers';
import { runBounded } from '../helpers/signature-peers';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
const CLIENT_SOURCES = join(__dirname, '..', '..', '..', 'test', 'java', 'wsimport-client');
/**
 * Compiled with the generated classes: the signing handler and the policy reader the API client uses,
 * and this client (not the whole directory: the other clients are written against other versions of
 * the generated methods).
 */
const CLIENT_FILES = [
  'WsSecurityPolicyHandler.java',
  'WsdlAlgorithmSuite.java',
  'SymphonyEnumerationClient.java',
];
/** Its manifest Class-Path brings JAXB, SAAJ, StAX and the rest of the JAX-WS RI runtime. */
const JAXWS_RT = '/usr/share/java/jaxws-rt.jar';
const JAXWS_INSTALL =
  'apt-get install -y jaxws openjdk-17-jdk-headless (or: bash scripts/install-test-peers.sh)';
// C1-only JIT and the serial GC roughly halve start-up for this short-lived run.
const JAVA_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

const SP = 'http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const SOAP12_ENV = 'http://www.w3.org/2003/05/soap-envelope';
/** WS-SecurityPolicy 1.2 §6.1: the asymmetric signature and digest of the suites the WSDL may name. */
const SUITES: Record<string, { signature: string; digest: string }> = {
  Basic256Sha256: {
    signature: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
  },
};

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

const FLAVORS = [
  { key: 'soap11', title: 'SOAP 1.1', suffix: '' },
  { key: 'soap12', title: 'SOAP 1.2', suffix: 'Soap12' },
] as const;
type FlavorKey = (typeof FLAVORS)[number]['key'];

/** One step of the client's run: whether it passed, why not, and what it saw. */
interface StepRecord {
  ok: boolean;
  error?: string;
  rejection?: string;
  requestsSigned: number;
  responsesVerified: number;
  ms: number;
  [seen: string]: unknown;
}

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

/** The JSON line SymphonyEnumerationClient prints last. */
interface ClientSummary {
  ok: boolean;
  step?: string;
  error?: string;
  soapVersions?: string[];
  policySuite?: string;
  policySignatureMethod?: string;
  policyDigestMethod?: string;
  policyC14nMethod?: string;
  policyPorts?: string[];
  flows?: Record<string, Record<string, StepRecord>>;
  requestsSigned?: number;
  responsesVerified?: number;
  responseSignatureMethods?: string[];
  responseDigestMethods?: string[];
  responseC14nMethods?: string[];
}

interface DevProxy {
  url: string;
  banner: string;
  stop(): Promise<void>;
}

const devCert = (name: keyof typeof DEV_PKI_FILES): string =>
  join(DEFAULT_DEV_CERTS_DIR, DEV_PKI_FILES[name]);

/** `serve --dev`, exactly as `npm start` runs it, on loopback ports chosen by the OS. */
async function startDevProxy(dir: string): Promise<DevProxy> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--dev'], {
    env: {
      ...process.env,
      SSP_SERVER__PORT: '0',
      SSP_ADMIN__PORT: '0',
      SSP_AUDIT__FILE: join(dir, 'audit.jsonl'),
      SSP_LOG__LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < 256 * 1024) stderr += chunk;
  });
  const stop = async (): Promise<void> => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await stopChild(child, 'SIGINT');
    clearTimeout(killer);
  };
  let banner = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('serve --dev did not start within 45 s')), 45_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`serve --dev exited with ${code}: ${stderr}`));
      });
      let at = '';
      createInterface({ input: child.stdout! }).on('line', (line) => {
        banner += `${line}\n`;
        const m = /listening on (\S+)/.exec(line);
        if (m) at = m[1]!;
        if (line.includes('WS-Security:') && at) {
          clearTimeout(timer);
          resolve(at);
        }
      });
    });
    return { url, banner, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The WSDL the proxy serves and every schema it imports, saved into `dir` with the imports pointed at
 * the local copies, so that wsimport and the client read exactly what was served. Returns the WSDL path.
 */
async function saveServedContract(wsdlUrl: string, dir: string): Promise<string> {
  const get = async (url: string): Promise<string> => {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return res.text();
  };
  const saved = new Map<string, string>(); // absolute URL → local file name
  const localize = async (text: string, base: string): Promise<string> => {
    const locations = [...text.matchAll(/schemaLocation="([^"]+)"/g)].map((m) => m[1]!);
    for (const loc of new Set(locations)) {
      const abs = new URL(loc.replace(/&amp;/g, '&'), base).toString();
      let name = saved.get(abs);
      if (!name) {
        const u = new URL(abs);
        const wanted = (u.searchParams.get('xsd') ?? u.pathname.split('/').pop() ?? 'schema.xsd').replace(
          /[^A-Za-z0-9._-]/g,
          '_',
        );
        name = `${saved.size}-${wanted}`;
        saved.set(abs, name);
        writeFileSync(join(dir, name), await localize(await get(abs), abs));
      }
      text = text.split(`schemaLocation="${loc}"`).join(`schemaLocation="${name}"`);
    }
    return text;
  };
  const file = join(dir, 'symphony.wsdl');
  writeFileSync(file, await localize(await get(wsdlUrl), wsdlUrl));
  return file;
}

/** The algorithm suites the WSDL's policies name (sp:AlgorithmSuite > wsp:Policy > sp:<suite>). */
function suitesIn(wsdlText: string): string[] {
  const found = new Set<string>();
  const walk = (e: XmlElement): void => {
    for (const c of childElements(e)) {
      if (c.uri === SP && c.local === 'AlgorithmSuite') {
        for (const p of childElements(c)) for (const s of childElements(p)) found.add(s.local);
      }
      walk(c);
    }
  };
  walk(parseXml(wsdlText, undefined, { allowComments: true }));
  return [...found];
}

function javaFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...javaFiles(p));
    else if (name.endsWith('.java')) out.push(p);
  }
  return out;
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
  let dir = '';
  let proxy: DevProxy | undefined;
  let wsdlFile = '';
  let summary: ClientSummary = { ok: false, error: 'the client did not run' };
  let clientStderr = '';

  before(async function () {
    this.timeout(300_000);
    requirePeer(this, 'wsimport (jaxws)', hasCommand('wsimport', ['-version']), JAXWS_INSTALL);
    requirePeer(this, 'JAX-WS RI runtime (jaxws)', existsSync(JAXWS_RT), JAXWS_INSTALL);
    requirePeer(this, 'javac (a JDK)', hasCommand('javac', ['-version']), JAXWS_INSTALL);

    dir = mkdtempSync(join(tmpdir(), 'ssp-wsimport-enumeration-'));
    proxy = await startDevProxy(dir);
    const contract = join(dir, 'contract');
    const gen = join(dir, 'gen');
    const classes = join(dir, 'classes');
    for (const d of [contract, gen, classes]) mkdirSync(d);
    wsdlFile = await saveServedContract(`${proxy.url}?wsdl`, contract);

    // -extension: without it wsimport drops the SOAP 1.2 ports ("non-standard SOAP 1.2 binding").
    // No -p: the two WS-Enumeration namespaces have classes of the same names (schemas/ws/README.md).
    const wsimport = await runBounded(
      'wsimport',
      ['-extension', '-keep', '-Xnocompile', '-d', gen, '-s', gen, wsdlFile],
      90_000,
    );
    expect(wsimport.code, `wsimport failed:\n${wsimport.stdout}${wsimport.stderr}`).to.equal(0);
    const generated = javaFiles(gen);
    for (const sei of ['EnumerationSource2004PortType.java', 'EnumerationSource2011PortType.java']) {
      expect(
        generated.some((f) => f.endsWith(sei)),
        `wsimport generated ${sei}`,
      ).to.equal(true);
    }
    const javac = await runBounded(
      'javac',
      [
        '-nowarn',
        '-encoding',
        'UTF-8',
        '-cp',
        JAXWS_RT,
        '-d',
        classes,
        ...generated,
        ...CLIENT_FILES.map((f) => join(CLIENT_SOURCES, f)),
      ],
      120_000,
    );
    expect(javac.code, `javac failed:\n${javac.stdout}${javac.stderr}`).to.equal(0);

    const run = await runBounded(
      'java',
      [
        ...JAVA_FLAGS,
        '-cp',
        `${classes}:${JAXWS_RT}`,
        'SymphonyEnumerationClient',
        '--wsdl',
        wsdlFile,
        '--endpoint',
        proxy.url,
        '--client-cert',
        devCert('client'),
        '--client-key',
        devCert('clientKey'),
        '--response-cert',
        devCert('proxySigningRsa'),
      ],
      120_000,
    );
    clientStderr = run.stderr;
    const last = run.stdout.trim().split('\n').pop() ?? '';
    try {
      summary = JSON.parse(last) as ClientSummary;
    } catch {
      summary = { ok: false, error: `no JSON on stdout${run.timedOut ? ' (timed out)' : ''}: ${run.stdout}` };
    }
    expect(summary.flows, `the client ran no flow: ${summary.error ?? ''}\n${clientStderr}`).to.be.an(
      'object',
    );
  });

  after(async () => {
    await proxy?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('wsimport generated the SOAP 1.1 and SOAP 1.2 enumeration ports; their policy is the one the WSDL names', () => {
    const suites = suitesIn(readFileSync(wsdlFile, 'utf8'));
    expect(suites, 'one algorithm suite for every binding').to.have.length(1);
    const suite = SUITES[suites[0]!];
    expect(suite, `a known suite: ${suites.join()}`).to.not.equal(undefined);
    expect(proxy!.banner).to.contain('responses signed (rsa-sha256)');
    expect(summary.soapVersions).to.deep.equal(['soap11', 'soap12']);
    expect(summary.policySuite).to.equal(suites[0]);
    expect(summary.policySignatureMethod).to.equal(suite!.signature);
    expect(summary.policyDigestMethod).to.equal(suite!.digest);
    expect(summary.policyC14nMethod).to.equal(EXC_C14N);
    expect(summary.policyPorts).to.include.members([
      'EnumerationSource2004Port',
      'EnumerationSource2011Port',
      'EnumerationSource2004PortSoap12',
      'EnumerationSource2011PortSoap12',
    ]);
  });

  it('signed every request; every response and every fault verified with the suite of the WSDL', () => {
    const suite = SUITES[summary.policySuite ?? '']!;
    // Two flows of 40-odd calls each (see the cases below).
    expect(summary.requestsSigned, summary.error).to.be.at.least(70);
    expect(summary.responsesVerified, 'every response verified').to.equal(summary.requestsSigned);
    expect(summary.responseSignatureMethods).to.deep.equal([suite.signature]);
    expect(summary.responseDigestMethods).to.deep.equal([suite.digest]);
    expect(summary.responseC14nMethods).to.deep.equal([EXC_C14N]);
  });

  for (const flavor of FLAVORS) {
    describe(`${flavor.title} ports`, () => {
      const flow = (): Record<string, StepRecord> => {
        const f = summary.flows?.[flavor.key];
        expect(f, `no ${flavor.title} flow ran: ${summary.error ?? ''}\n${clientStderr}`).to.be.an('object');
        return f!;
      };
      /** The step's record, asserted to have passed with every response verified. */
      const passed = (name: string): StepRecord => {
        const s = flow()[name];
        expect(s, `step ${name} did not run (an earlier step failed?)`).to.be.an('object');
        expect(
          s!.ok,
          `${flavor.title} ${name}: ${s!.error ?? ''}${s!.rejection ? `\n${s!.rejection}` : ''}`,
        ).to.equal(true);
        expect(s!.requestsSigned, `${name}: requests signed`).to.be.at.least(1);
        expect(s!.responsesVerified, `${name}: every response verified`).to.equal(s!.requestsSigned);
        return s!;
      };
      const base = (): string => proxy!.url.replace(/\/$/, '');
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
