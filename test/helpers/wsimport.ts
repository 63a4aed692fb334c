/**
 * What the wsimport suites (test/relay/wsimport-*.test.ts) share: a proxy on the `npm start` defaults,
 * the contract it serves saved where wsimport reads it, wsimport + javac of a Java client from
 * test/java/wsimport-client/, one JVM run of that client and the JSON summary it prints last, and the
 * assertions every suite makes on that summary's policy and signature counts.
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
import { hasCommand, requirePeer } from './peers';
import { runBounded } from './signature-peers';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
/** The clients' sources: javac reads them from the source tree, not from the compiled output. */
export const CLIENT_SOURCES = join(__dirname, '..', '..', '..', 'test', 'java', 'wsimport-client');
/**
 * What every client is compiled with: the signing handler and the policy reader the API client uses,
 * and the shared command line, step records, keys and JSON writer.
 */
export const CLIENT_SUPPORT_FILES: readonly string[] = [
  'WsSecurityPolicyHandler.java',
  'WsdlAlgorithmSuite.java',
  'ClientSupport.java',
];
/** Its manifest Class-Path brings JAXB, SAAJ, StAX and the rest of the JAX-WS RI runtime. */
export const JAXWS_RT = '/usr/share/java/jaxws-rt.jar';
export const JAXWS_INSTALL =
  'apt-get install -y jaxws openjdk-17-jdk-headless (or: bash scripts/install-test-peers.sh)';
// C1-only JIT and the serial GC roughly halve start-up for these short-lived runs.
const JAVA_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

const SP = 'http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702';
export const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
export const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

export interface AlgorithmSuite {
  signature: string;
  digest: string;
}

/** WS-SecurityPolicy 1.2 §6.1: the asymmetric signature and digest of the suites the WSDL may name. */
export const SUITES: Record<string, AlgorithmSuite> = {
  Basic256Sha256: { signature: RSA_SHA256, digest: 'http://www.w3.org/2001/04/xmlenc#sha256' },
  Basic256: {
    signature: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
    digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
  },
};

/** The SOAP versions whose ports the flows clients use, as their summaries key them. */
export const FLAVORS = [
  { key: 'soap11', title: 'SOAP 1.1', suffix: '' },
  { key: 'soap12', title: 'SOAP 1.2', suffix: 'Soap12' },
] as const;
export type Flavor = (typeof FLAVORS)[number];
export type FlavorKey = Flavor['key'];

/** What every client's summary says: how the run ended, the WSDL's policy, and the signing handler's counts. */
export interface PolicySummary {
  ok: boolean;
  step?: string;
  error?: string;
  policySuite?: string;
  policySignatureMethod?: string;
  policyDigestMethod?: string;
  policyC14nMethod?: string;
  requestsSigned?: number;
  responsesVerified?: number;
  responseSignatureMethods?: string[];
  responseDigestMethods?: string[];
  responseC14nMethods?: string[];
}

/** One step of a flows client's run (ClientSupport.Flow.step): whether it passed, why not, and what it saw. */
export interface StepRecord {
  ok: boolean;
  error?: string;
  rejection?: string;
  requestsSigned: number;
  responsesVerified: number;
  ms: number;
  [seen: string]: unknown;
}

/** The summary of a client made of flows (ClientSupport.runFlows): per SOAP version, per step. */
export interface FlowsSummary extends PolicySummary {
  soapVersions?: string[];
  policyPorts?: string[];
  flows?: Record<string, Record<string, StepRecord>>;
}

export interface ClientRun<S extends PolicySummary> {
  exitCode: number | null;
  stderr: string;
  summary: S;
}

export interface DevProxy {
  url: string;
  banner: string;
  stderr(): string;
  stop(): Promise<void>;
}

export const devCert = (name: keyof typeof DEV_PKI_FILES): string =>
  join(DEFAULT_DEV_CERTS_DIR, DEV_PKI_FILES[name]);

/** Call from before(): wsimport, the JAX-WS RI runtime and a JDK are required peers. */
export function requireJaxws(ctx: Mocha.Context): void {
  requirePeer(ctx, 'wsimport (jaxws)', hasCommand('wsimport', ['-version']), JAXWS_INSTALL);
  requirePeer(ctx, 'JAX-WS RI runtime (jaxws)', existsSync(JAXWS_RT), JAXWS_INSTALL);
  requirePeer(ctx, 'javac (a JDK)', hasCommand('javac', ['-version']), JAXWS_INSTALL);
}

/**
 * `serve --dev`, exactly as `npm start` runs it, on loopback ports chosen by the OS; `env` may
 * override configuration keys. Resolves once the banner has been printed.
 */
export async function startDevProxy(dir: string, env: NodeJS.ProcessEnv = {}): Promise<DevProxy> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--dev'], {
    env: {
      ...process.env,
      SSP_SERVER__PORT: '0',
      SSP_ADMIN__PORT: '0',
      SSP_AUDIT__FILE: join(dir, 'audit.jsonl'),
      SSP_LOG__LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < 256 * 1024) stderr += chunk;
  });
  const stop = async (): Promise<void> => {
    // SIGINT is the developer's Ctrl-C: close at once (the proxy stops its embedded grid too).
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await stopChild(child, 'SIGINT');
    clearTimeout(killer);
  };
  try {
    const { url, banner } = await devBanner(child, () => stderr);
    return { url, banner, stderr: () => stderr, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Waits for `serve --dev` to print its banner: the SOAP address, then the WS-Security line that
 * ends it. Rejects if the process exits first (with its stderr, when kept) or after 45 s.
 */
export function devBanner(
  child: ChildProcess,
  stderr: () => string = () => '',
): Promise<{ url: string; banner: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve --dev did not start within 45 s')), 45_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --dev exited with ${code}${stderr() ? `: ${stderr()}` : ''}`));
    });
    let banner = '';
    let at = '';
    createInterface({ input: child.stdout! }).on('line', (line) => {
      banner += `${line}\n`;
      const m = /listening on (\S+)/.exec(line);
      if (m) at = m[1]!;
      if (line.includes('WS-Security:') && at) {
        clearTimeout(timer);
        resolve({ url: at, banner });
      }
    });
  });
}

/**
 * The WSDL the proxy serves and every schema it imports, saved into `dir` with the imports pointed at
 * the local copies, so that wsimport and the client read exactly what was served. Returns the WSDL path.
 */
export async function saveServedContract(wsdlUrl: string, dir: string): Promise<string> {
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
export function suitesIn(wsdlText: string): string[] {
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

/** Every .java file below `dir`. */
export function javaFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...javaFiles(p));
    else if (name.endsWith('.java')) out.push(p);
  }
  return out;
}

export interface ClientBuildOptions {
  /** wsimport -extension: without it wsimport drops the SOAP 1.2 ports ("non-standard SOAP 1.2 binding"). */
  extension: boolean;
  /** Generated sources (file names) the client needs: asserted to be there before javac runs. */
  generated: readonly string[];
  /** The client's sources in CLIENT_SOURCES, or 'all' (every .java there). */
  clientFiles: readonly string[] | 'all';
}

export interface ClientBuild {
  /** The served WSDL as saved (in `dir`/contract): what wsimport read and what the client reads. */
  wsdlFile: string;
  /** javac's output: the generated classes and the client's. */
  classes: string;
}

/** Saves the contract `proxyUrl` serves into `dir`, runs wsimport on it and javac on its output and the client. */
export async function buildClient(
  proxyUrl: string,
  dir: string,
  options: ClientBuildOptions,
): Promise<ClientBuild> {
  const contract = join(dir, 'contract');
  const gen = join(dir, 'gen');
  const classes = join(dir, 'classes');
  for (const d of [contract, gen, classes]) mkdirSync(d);
  const wsdlFile = await saveServedContract(`${proxyUrl}?wsdl`, contract);

  // No -p: the two WS-Enumeration namespaces have classes of the same names (schemas/ws/README.md).
  const wsimport = await runBounded(
    'wsimport',
    [...(options.extension ? ['-extension'] : []), '-keep', '-Xnocompile', '-d', gen, '-s', gen, wsdlFile],
    90_000,
  );
  expect(wsimport.code, `wsimport failed:\n${wsimport.stdout}${wsimport.stderr}`).to.equal(0);
  const generated = javaFiles(gen);
  for (const name of options.generated) {
    expect(
      generated.some((f) => f.endsWith(name)),
      `wsimport generated ${name}`,
    ).to.equal(true);
  }
  const client =
    options.clientFiles === 'all'
      ? javaFiles(CLIENT_SOURCES)
      : options.clientFiles.map((f) => join(CLIENT_SOURCES, f));
  const javac = await runBounded(
    'javac',
    ['-nowarn', '-encoding', 'UTF-8', '-cp', JAXWS_RT, '-d', classes, ...generated, ...client],
    120_000,
  );
  expect(javac.code, `javac failed:\n${javac.stdout}${javac.stderr}`).to.equal(0);
  return { wsdlFile, classes };
}

export interface ClientArgs {
  wsdl: string;
  endpoint: string;
  /** The certificate the client verifies response signatures against. */
  responseCert: string;
}

/**
 * One JVM run of `mainClass` (signing with the dev client key), killed after `timeoutMs`; resolves
 * even on failure, with the reason in `summary.error` when it printed no JSON, so that assertions show why.
 */
export async function runClient<S extends PolicySummary>(
  classes: string,
  mainClass: string,
  args: ClientArgs,
  timeoutMs: number,
): Promise<ClientRun<S>> {
  const r = await runBounded(
    'java',
    [
      ...JAVA_FLAGS,
      '-cp',
      `${classes}:${JAXWS_RT}`,
      mainClass,
      '--wsdl',
      args.wsdl,
      '--endpoint',
      args.endpoint,
      '--client-cert',
      devCert('client'),
      '--client-key',
      devCert('clientKey'),
      '--response-cert',
      args.responseCert,
    ],
    timeoutMs,
  );
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let summary: S;
  try {
    summary = JSON.parse(last) as S;
  } catch {
    summary = { ok: false, error: `no JSON on stdout${r.timedOut ? ' (timed out)' : ''}: ${r.stdout}` } as S;
  }
  return { exitCode: r.code, stderr: r.stderr, summary };
}

/** The one algorithm suite the saved WSDL names for every binding, asserted to be a known one. */
export function wsdlSuite(wsdlFile: string): { name: string } & AlgorithmSuite {
  const suites = suitesIn(readFileSync(wsdlFile, 'utf8'));
  expect(suites, 'one algorithm suite for every binding').to.have.length(1);
  const suite = SUITES[suites[0]!];
  expect(suite, `a known suite: ${suites.join()}`).to.not.equal(undefined);
  return { name: suites[0]!, ...suite! };
}

/** The client read the same suite from the WSDL as the test did. */
export function expectPolicyRead(summary: PolicySummary, suite: { name: string } & AlgorithmSuite): void {
  expect(summary.policySuite).to.equal(suite.name);
  expect(summary.policySignatureMethod).to.equal(suite.signature);
  expect(summary.policyDigestMethod).to.equal(suite.digest);
  expect(summary.policyC14nMethod).to.equal(EXC_C14N);
}

/** At least `minSigned` requests signed, and every response verified with exactly the suite's algorithms. */
export function expectEveryResponseVerified(
  summary: PolicySummary,
  suite: AlgorithmSuite,
  minSigned: number,
): void {
  expect(summary.requestsSigned, summary.error).to.be.at.least(minSigned);
  expect(summary.responsesVerified, 'every response verified').to.equal(summary.requestsSigned);
  expect(summary.responseSignatureMethods).to.deep.equal([suite.signature]);
  expect(summary.responseDigestMethods).to.deep.equal([suite.digest]);
  expect(summary.responseC14nMethods).to.deep.equal([EXC_C14N]);
}

export interface FlowsClientOptions {
  /** mkdtemp prefix of the run's directory. */
  tmpPrefix: string;
  /** The client's class; its source is `${mainClass}.java`, compiled with CLIENT_SUPPORT_FILES only. */
  mainClass: string;
  /** Generated sources the client needs (its SEIs). */
  generated: readonly string[];
  /** How long the one client run may take. */
  timeoutMs: number;
}

/**
 * A suite around one run of a flows client (ClientSupport.runFlows): start() (in before()) starts the
 * proxy, builds the client with wsimport -extension (the SOAP 1.2 ports) and runs it once; each case
 * then asserts on its part of `summary`. stop() (in after()) also cleans up after a start() that failed.
 */
export class FlowsClientRun {
  dir = '';
  proxy: DevProxy | undefined;
  wsdlFile = '';
  summary: FlowsSummary = { ok: false, error: 'the client did not run' };
  stderr = '';

  constructor(private readonly options: FlowsClientOptions) {}

  /** A run for the calling describe(): its before() starts it, its after() stops it. */
  static inSuite(options: FlowsClientOptions): FlowsClientRun {
    const run = new FlowsClientRun(options);
    before(async function () {
      this.timeout(300_000);
      await run.start(this);
    });
    after(() => run.stop());
    return run;
  }

  async start(ctx: Mocha.Context): Promise<void> {
    const { mainClass } = this.options;
    requireJaxws(ctx);
    this.dir = mkdtempSync(join(tmpdir(), this.options.tmpPrefix));
    this.proxy = await startDevProxy(this.dir);
    const built = await buildClient(this.proxy.url, this.dir, {
      extension: true,
      generated: this.options.generated,
      // Not the whole directory: the other clients are written against other versions of the generated methods.
      clientFiles: [...CLIENT_SUPPORT_FILES, `${mainClass}.java`],
    });
    this.wsdlFile = built.wsdlFile;
    const args = { wsdl: built.wsdlFile, endpoint: this.proxy.url, responseCert: devCert('proxySigningRsa') };
    const run = await runClient<FlowsSummary>(built.classes, mainClass, args, this.options.timeoutMs);
    this.summary = run.summary;
    this.stderr = run.stderr;
    expect(
      this.summary.flows,
      `the client ran no flow: ${this.summary.error ?? ''}\n${this.stderr}`,
    ).to.be.an('object');
  }

  async stop(): Promise<void> {
    await this.proxy?.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The proxy's URL without its trailing slash: where the resources' addresses start. */
  base(): string {
    return this.proxy!.url.replace(/\/$/, '');
  }

  /** The steps of one SOAP version's flow, asserted to have run. */
  flow(flavor: Flavor): Record<string, StepRecord> {
    const f = this.summary.flows?.[flavor.key];
    expect(f, `no ${flavor.title} flow ran: ${this.summary.error ?? ''}\n${this.stderr}`).to.be.an('object');
    return f!;
  }

  /** The step's record, asserted to have passed with every response verified. */
  passed(flavor: Flavor, name: string): StepRecord {
    const s = this.flow(flavor)[name];
    expect(s, `step ${name} did not run (an earlier step failed?)`).to.be.an('object');
    expect(
      s!.ok,
      `${flavor.title} ${name}: ${s!.error ?? ''}${s!.rejection ? `\n${s!.rejection}` : ''}`,
    ).to.equal(true);
    expect(s!.requestsSigned, `${name}: requests signed`).to.be.at.least(1);
    expect(s!.responsesVerified, `${name}: every response verified`).to.equal(s!.requestsSigned);
    return s!;
  }

  /** The first case of each flows suite: the ports wsimport generated, and the policy the client read from the WSDL. */
  expectPortsAndPolicy(ports: readonly string[]): void {
    const suite = wsdlSuite(this.wsdlFile);
    expect(this.proxy!.banner).to.contain('responses signed (rsa-sha256)');
    expect(this.summary.soapVersions).to.deep.equal(['soap11', 'soap12']);
    expectPolicyRead(this.summary, suite);
    expect(this.summary.policyPorts).to.include.members([...ports]);
  }
}
