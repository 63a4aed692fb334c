/**
 * What the signed zeep suites (test/relay/zeep-*.test.ts) share: a reference grid with the test PKI
 * and wss proxies in front of it that sign their responses, runs of the scripts in test/zeep read
 * through their last JSON line, and the checks common to the step-by-step scripts
 * (resources_flow.py, enumeration_flow.py: see test/zeep/step_flow.py for their JSON).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { hasPythonModule, requirePeer } from './peers';
import { makeTestPki, type CertPair, type TestPki } from './pki';
import { proxyConfig, spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from './processes';

// Debian's python: the python3 on PATH cannot see python3-zeep / python3-xmlsec.
const PYTHON = '/usr/bin/python3';
const SCRIPTS = join(__dirname, '..', '..', '..', 'test', 'zeep');

export const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
export const ECDSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256';

/** What every script's last JSON line carries, whatever else it reports. */
export interface ZeepResult {
  ok: boolean;
  soap: string;
  error?: string;
}

export interface ZeepRun<R extends ZeepResult> {
  exitCode: number | null;
  stderr: string;
  result: R;
  ms: number;
}

/** Runs test/zeep/`script`, killed after 90 s, and resolves even on failure so assertions show why. */
export function runZeep<R extends ZeepResult>(script: string, args: string[]): Promise<ZeepRun<R>> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [join(SCRIPTS, script), ...args],
      { encoding: 'utf8', timeout: 90000, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        const last = stdout.trim().split('\n').pop() ?? '';
        let result: R;
        try {
          result = JSON.parse(last) as R;
        } catch {
          // Only the fields every result has: the assertions on `ok` then fail with `why`.
          result = { ok: false, soap: '?', error: `no JSON on stdout (${error?.message ?? 'exit 0'})` } as R;
        }
        resolve({ exitCode, stderr, result, ms: Date.now() - started });
      },
    );
  });
}

/** The script's own message (stderr also carries any Python traceback), else the JSON's. */
export function why(run: ZeepRun<ZeepResult>): string {
  return run.stderr.trim() || run.result.error || `exit ${String(run.exitCode)}`;
}

/**
 * Runs of test/zeep/`script` by key, each started once (with `args()`) by the first `it` that asks,
 * so that several `it`s assert on one run.
 */
export function sharedRuns<R extends ZeepResult>(
  script: string,
): (key: string, args: () => string[]) => Promise<ZeepRun<R>> {
  const runs = new Map<string, Promise<ZeepRun<R>>>();
  return (key, args) => {
    let run = runs.get(key);
    if (!run) {
      run = runZeep<R>(script, args());
      runs.set(key, run);
    }
    return run;
  };
}

/** The arguments of every signed script: the proxy's WSDL, the consumer's key pair, the proxy's cert. */
export function signedArgs(proxy: ProxyProcess, client: CertPair, proxyCert: CertPair): string[] {
  return [
    '--wsdl',
    proxy.wsdlUrl,
    '--client-cert',
    client.certFile,
    '--client-key',
    client.keyFile,
    '--proxy-cert',
    proxyCert.certFile,
  ];
}

export interface ZeepGrid {
  pki: TestPki;
  grid: GridProcess;
}

/**
 * The test PKI and a reference grid, started before the enclosing describe's tests and stopped
 * after. Its before hook comes first: without python3-zeep and python3-xmlsec it fails under CI and
 * skips the suite elsewhere, and a skip also skips the describe's later before hooks.
 */
export function withZeepGrid(): () => ZeepGrid {
  const relay = {} as ZeepGrid;
  before(async function () {
    requirePeer(this, 'python3-zeep', hasPythonModule('zeep'), 'apt-get install python3-zeep');
    requirePeer(this, 'python3-xmlsec', hasPythonModule('xmlsec'), 'apt-get install python3-xmlsec');
    relay.pki = await makeTestPki();
    relay.grid = await spawnGrid(['--port', '0']);
  });
  after(async () => {
    await relay.grid?.stop();
  });
  return () => relay;
}

/**
 * A wss proxy in front of `relay`'s grid for the enclosing describe: it trusts the test CA (and its
 * CRL) and signs every response with `signer`; `extra` adds top-level config sections.
 */
export function withSigningProxy(
  relay: () => ZeepGrid,
  signer: (pki: TestPki) => CertPair,
  extra: Record<string, unknown> = {},
): () => ProxyProcess {
  let proxy: ProxyProcess | undefined;
  before(async () => {
    const { pki, grid } = relay();
    const { certFile, keyFile } = signer(pki);
    proxy = await startProxyProcess(
      proxyConfig([grid.address], '', {
        security: {
          mode: 'wss',
          trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
          responseSigning: { enabled: true, certFile, keyFile },
        },
        ...extra,
      }),
    );
  });
  after(async () => {
    // SIGINT closes at once; SIGTERM would first drain for server.drainDelayMs (5 s).
    await proxy?.stop('SIGINT');
  });
  return () => proxy!;
}

/** One step of a step-by-step script, with the details it records. */
export interface Step {
  step: string;
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

/** The WS-Addressing headers of the replies a step-by-step script checked (design doc §7.4). */
export interface AddressingSeen {
  checked: number;
  wrong: { operation: string; fault: boolean; problems: string[] }[];
}

/** The JSON line of a step-by-step script (step_flow.finish); `F` is its script's fault entry. */
export interface StepResult<F> extends ZeepResult {
  xsd?: string[];
  schemasNotFromProxy?: string[];
  steps?: Step[];
  faults?: Record<string, F>;
  requests?: number;
  verifiedResponses?: number;
  signedFaults?: number;
  unsignedFaults?: number;
  responseSignatureMethods?: string[];
  addressing?: AddressingSeen;
}

export function stepOf(r: StepResult<unknown>, name: string): Step {
  const s = r.steps?.find((x) => x.step === name);
  expect(s, `step '${name}' missing from the JSON`).to.not.equal(undefined);
  return s!;
}

export interface StepRunWant {
  soap: string;
  /** Every step, in the order the script runs them. */
  steps: string[];
  /** Schemas that must be among those pulled through ?xsd=. */
  xsd: string[];
  /** How many requests the run makes, if the suite knows it (else at least one). */
  requests?: number;
  /** How many of the answers are faults. */
  faults: number;
}

/**
 * What every run of a step-by-step script must show: every step passed, in this order; the client
 * generated from ?wsdl with every schema pulled through ?xsd=; every answer, faults included,
 * signed by the proxy (RSA) and verified with its certificate.
 */
export function expectStepRun(run: ZeepRun<StepResult<unknown>>, want: StepRunWant): void {
  const r = run.result;
  const failed = (r.steps ?? []).filter((s) => !s.ok).map((s) => `${s.step}: ${s.error ?? '?'}`);
  expect(failed, 'failed steps').to.deep.equal([]);
  expect(r.ok, why(run)).to.equal(true);
  expect(run.exitCode, why(run)).to.equal(0);
  expect(r.soap).to.equal(want.soap);
  expect((r.steps ?? []).map((s) => s.step)).to.deep.equal(want.steps);

  expect(r.schemasNotFromProxy).to.deep.equal([]);
  expect(r.xsd).to.include.members(want.xsd);

  if (want.requests === undefined) {
    expect(r.requests).to.be.greaterThan(0);
  } else {
    expect(r.requests).to.equal(want.requests);
  }
  expect(r.verifiedResponses, 'verified response signatures').to.equal(r.requests);
  expect(r.signedFaults).to.equal(want.faults);
  expect(r.unsignedFaults).to.equal(0);
  expect(r.responseSignatureMethods).to.deep.equal([RSA_SHA256]);
}

/** One line per reply that lacked the reply's WS-Addressing headers. */
export function addressingProblems(a: AddressingSeen): string[] {
  return a.wrong.map((w) => `${w.operation}${w.fault ? ' (fault)' : ''}: ${w.problems.join('; ')}`);
}
