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
import { SSP_ERRORS, SYM, WSRF_RL, XPATH_10 } from '../../src/soap/ws-namespaces';
import { hasCommand, requirePeer } from '../helpers/peers';
import { runBounded } from '../helpers/signature-peers';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
const CLIENT_SOURCES = join(__dirname, '..', '..', '..', 'test', 'java', 'wsimport-client');
/**
 * Compiled with the generated classes: the signing handler and the policy reader the API client uses,
 * and this client. Not the whole directory: SymphonyWsimportClient.java is written against the
 * generated methods as they were before connectResponse/createSessionResponse gained their EPR.
 */
const CLIENT_FILES = [
  'WsSecurityPolicyHandler.java',
  'WsdlAlgorithmSuite.java',
  'SymphonyResourceClient.java',
];
/** Its manifest Class-Path brings JAXB, SAAJ, StAX and the rest of the JAX-WS RI runtime. */
const JAXWS_RT = '/usr/share/java/jaxws-rt.jar';
const JAXWS_INSTALL =
  'apt-get install -y jaxws openjdk-17-jdk-headless (or: bash scripts/install-test-peers.sh)';
// C1-only JIT and the serial GC roughly halve start-up for this short-lived run.
const JAVA_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

const SP = 'http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
/** WS-SecurityPolicy 1.2 §6.1: the asymmetric signature and digest of the suites the WSDL may name. */
const SUITES: Record<string, { signature: string; digest: string }> = {
  Basic256Sha256: {
    signature: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
  },
};

const FLAVORS = [
  { key: 'soap11', title: 'SOAP 1.1', suffix: '' },
  { key: 'soap12', title: 'SOAP 1.2', suffix: 'Soap12' },
] as const;

/** One step of the client's run: whether it passed, why not, and what it saw. */
interface StepRecord {
  ok: boolean;
  error?: string;
  rejection?: string;
  requestsSigned: number;
  responsesVerified: number;
  [seen: string]: unknown;
}

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

/** The JSON line SymphonyResourceClient prints last. */
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

const ms = (xsDateTime: unknown): number => Date.parse(String(xsDateTime));

describe('npm start defaults: a wsimport-generated Java client uses sessions and connections as WS-Resources, signed', function () {
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

    dir = mkdtempSync(join(tmpdir(), 'ssp-wsimport-resources-'));
    proxy = await startDevProxy(dir);
    const contract = join(dir, 'contract');
    const gen = join(dir, 'gen');
    const classes = join(dir, 'classes');
    for (const d of [contract, gen, classes]) mkdirSync(d);
    wsdlFile = await saveServedContract(`${proxy.url}?wsdl`, contract);

    // -extension: without it wsimport drops the SOAP 1.2 ports ("non-standard SOAP 1.2 binding").
    const wsimport = await runBounded(
      'wsimport',
      ['-extension', '-keep', '-Xnocompile', '-d', gen, '-s', gen, wsdlFile],
      90_000,
    );
    expect(wsimport.code, `wsimport failed:\n${wsimport.stdout}${wsimport.stderr}`).to.equal(0);
    const generated = javaFiles(gen);
    for (const sei of ['SessionResourcePortType.java', 'ConnectionResourcePortType.java']) {
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
        'SymphonyResourceClient',
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
      90_000,
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

  it('wsimport generated the SOAP 1.1 and SOAP 1.2 resource ports; their policy is the one the WSDL names', () => {
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
      'SessionResourcePort',
      'ConnectionResourcePort',
      'SessionResourcePortSoap12',
      'ConnectionResourcePortSoap12',
    ]);
  });

  it('signed every request; every response and every fault verified with the suite of the WSDL', () => {
    const suite = SUITES[summary.policySuite ?? '']!;
    // Two flows of 20-odd calls each (see the cases below).
    expect(summary.requestsSigned, summary.error).to.be.at.least(40);
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
      const epr = (name: string): { address: string; referenceParameters: Record<string, string> } =>
        passed(name).epr as { address: string; referenceParameters: Record<string, string> };

      it('connect and createSession return an endpoint reference whose Address names the resource', () => {
        const c = passed('connect');
        const s = passed('createSession');
        const base = proxy!.url.replace(/\/$/, '');
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
        expect(sent!.text).to.match(/^[A-Za-z_][\w.-]*:State$/);
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
