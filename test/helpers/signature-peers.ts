/**
 * Two independent verifiers for the proxy's WS-Security signed SOAP responses: xmlsec1 (libxmlsec1,
 * C/OpenSSL) and Apache Santuario (Java, test/java/VerifySignedEnvelope.java on the JDK source
 * launcher). Both are Debian packages installed by scripts/install-test-peers.sh.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCommand } from './peers';

export interface PeerVerdict {
  ok: boolean;
  output: string;
}

export interface SantuarioItem {
  envelopeXml: string;
  signerCertPemFile: string;
}

export interface RunResult {
  /** Exit status; null when the child was killed (e.g. by the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export const SANTUARIO_INSTALL = 'apt-get install -y libxml-security-java openjdk-17-jdk-headless';
export const XMLSEC1_INSTALL = 'apt-get install -y xmlsec1';

const SOAP11 = 'http://schemas.xmlsoap.org/soap/envelope/';
const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';
const WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';

/**
 * xmlsec1 1.2.37 (apps/xmlsec.c, xmlSecAppAddIDAttr) matches `--id-attr:<name>` against the
 * attribute's *local* name and ignores the attribute's namespace, so `Id` registers `wsu:Id`
 * (while `--id-attr:wsu:Id` matches nothing). The element is matched by local name plus namespace
 * (`<ns-uri>:<local>`, split at the last colon). The self-test proves both facts.
 */
export const XMLSEC1_ID_ATTRS: readonly string[] = [
  '--id-attr:Id',
  `${SOAP11}:Body`,
  '--id-attr:Id',
  `${SOAP12}:Body`,
  '--id-attr:Id',
  `${WSU}:Timestamp`,
];

const JAVA_SOURCE = join(__dirname, '..', '..', '..', 'test', 'java', 'VerifySignedEnvelope.java');
const JAR_DIR = '/usr/share/java';
const REQUIRED_JARS = ['xmlsec.jar', 'slf4j-api.jar'];
// slf4j-nop silences slf4j's "no binding" warning; commons-codec is a declared runtime dependency.
const OPTIONAL_JARS = ['slf4j-nop.jar', 'commons-codec.jar'];
// C1-only JIT and the serial GC roughly halve start-up for this short-lived run.
const JAVA_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

const XMLSEC1_TIMEOUT_MS = 15000;
const JAVA_TIMEOUT_MS = 60000;

export function santuarioClasspath(): string {
  return [...REQUIRED_JARS, ...OPTIONAL_JARS.filter((j) => existsSync(join(JAR_DIR, j)))]
    .map((j) => join(JAR_DIR, j))
    .join(':');
}

export function hasXmlsec1(): boolean {
  return hasCommand('xmlsec1', ['--version']);
}

let santuarioPresent: boolean | undefined;

/** java with the jdk.compiler module (the source launcher needs a JDK) plus Santuario's jars. */
export function hasSantuario(): boolean {
  if (santuarioPresent === undefined) {
    const jars = REQUIRED_JARS.every((j) => existsSync(join(JAR_DIR, j)));
    const r = jars ? spawnSync('java', ['--list-modules'], { encoding: 'utf8', timeout: 20000 }) : null;
    santuarioPresent =
      r !== null && r.status === 0 && /^jdk\.compiler@/m.test(r.stdout) && existsSync(JAVA_SOURCE);
  }
  return santuarioPresent;
}

/** execFile with a hard timeout; never rejects, so callers see the exit status and output. */
export function runBounded(cmd: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr, timedOut: false });
        // A numeric code is the exit status; otherwise it is a spawn error or a kill (timeout).
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : null;
        const timedOut = e.killed === true;
        resolve({
          code,
          stdout,
          stderr: code === null && !timedOut ? `${stderr}${e.message}` : stderr,
          timedOut,
        });
      },
    );
  });
}

/** A private temp dir for one call, always removed afterwards. */
async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-sigpeer-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * xmlsec1 does not understand wsse:SecurityTokenReference, so the key comes from the signer
 * certificate given on the command line (RSA and EC alike); only same-document references are allowed.
 */
export async function verifyWithXmlsec1(
  envelopeXml: string,
  signerCertPemFile: string,
  idAttrArgs: readonly string[] = XMLSEC1_ID_ATTRS,
): Promise<PeerVerdict> {
  return withTempDir(async (dir) => {
    const file = join(dir, 'envelope.xml');
    writeFileSync(file, envelopeXml);
    const r = await runBounded(
      'xmlsec1',
      [
        '--verify',
        '--enabled-reference-uris',
        'same-doc',
        '--pubkey-cert-pem',
        signerCertPemFile,
        ...idAttrArgs,
        file,
      ],
      XMLSEC1_TIMEOUT_MS,
    );
    const output = `${r.stdout}${r.stderr}`.trim() + (r.timedOut ? '\n(timed out)' : '');
    // xmlsec1 prints a line "OK" (to stderr) only when the signature and every reference verify.
    return { ok: r.code === 0 && /^OK$/m.test(output), output };
  });
}

export async function verifyWithSantuario(
  envelopeXml: string,
  signerCertPemFile: string,
): Promise<PeerVerdict> {
  const [verdict] = await verifyManyWithSantuario([{ envelopeXml, signerCertPemFile }]);
  return verdict;
}

/** One JVM for all items (start-up dominates); verdicts come back in the items' order. */
export async function verifyManyWithSantuario(items: readonly SantuarioItem[]): Promise<PeerVerdict[]> {
  if (items.length === 0) return [];
  return withTempDir(async (dir) => {
    const args: string[] = [];
    items.forEach((item, i) => {
      const file = join(dir, `envelope-${i}.xml`);
      writeFileSync(file, item.envelopeXml);
      args.push(file, item.signerCertPemFile);
    });
    const r = await runBounded(
      'java',
      [...JAVA_FLAGS, '-cp', santuarioClasspath(), JAVA_SOURCE, ...args],
      JAVA_TIMEOUT_MS + 2000 * items.length,
    );
    const lines = r.stdout.split('\n').filter((l) => l === 'OK' || l.startsWith('FAIL: '));
    if (lines.length !== items.length) {
      // Compile error, crash or timeout: every item is refused, with the whole output to explain why.
      const output =
        `java exited ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}${r.stderr}`.trim();
      return items.map(() => ({ ok: false, output }));
    }
    return lines.map((line) => ({ ok: line === 'OK', output: line }));
  });
}
