/**
 * A real WS-BaseNotification 1.3 consumer for the tests: the NotificationConsumer SEI that wsimport
 * generates from test/java/wsn-consumer/consumer.wsdl (types from the stored b-2.xsd, resolved offline
 * through catalog.xml), implemented by NotifyConsumer.java and published on the JDK HTTP server. It
 * verifies every Notify's WS-Security signature against one certificate and writes what it received to
 * a JSON-lines file, which `records()` reads back.
 *
 * wsimport and javac run once per version of the sources: the classes are cached in the temp directory
 * under a hash of every input (sources, WSDL, catalog, schemas).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { hasCommand } from './peers';
import { runBounded } from './signature-peers';
import { JAXWS_RT, javaFiles } from './wsimport';

const ROOT = join(__dirname, '..', '..', '..');
/** javac and wsimport read the sources from the source tree, not from the compiled output. */
export const CONSUMER_SOURCES = join(ROOT, 'test', 'java', 'wsn-consumer');
const SCHEMAS = join(ROOT, 'schemas', 'ws');
/** Every file the build reads: a change to any of them means a new build. */
const INPUTS = [
  join(CONSUMER_SOURCES, 'consumer.wsdl'),
  join(CONSUMER_SOURCES, 'catalog.xml'),
  join(CONSUMER_SOURCES, 'NotifyConsumer.java'),
  ...['b-2.xsd', 't-1.xsd', 'bf-2.xsd', 'ws-addr.xsd', 'xml.xsd'].map((f) => join(SCHEMAS, f)),
];
const MAIN_CLASS = 'NotifyConsumer';
const CACHE_ROOT = join(tmpdir(), 'symphony-wsn-consumer');
const JAVA_FLAGS = [
  // C1-only JIT and the serial GC roughly halve start-up for these short-lived JVMs.
  '-XX:TieredStopAtLevel=1',
  '-XX:+UseSerialGC',
  // Names SAAJ's factory outright: otherwise every message logs a warning about the deprecated lookup.
  '-Djavax.xml.soap.SAAJMetaFactory=com.sun.xml.messaging.saaj.soap.SAAJMetaFactoryImpl',
];
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

export const WSN_CONSUMER_INSTALL =
  'apt-get install -y jaxws openjdk-17-jdk-headless (or: bash scripts/install-test-peers.sh)';

/** One NotificationMessage of a recorded Notify. */
export interface NotifyRecordMessage {
  /** The `seq` attribute of the payload element inside wsnt:Message (null if absent or not an integer). */
  seq: number | null;
  /** The text of wsnt:Topic as sent (`prefix:Local/Child`); null without a Topic. */
  topic: string | null;
  /** The payload element's `{namespace}local` name. */
  payload: string | null;
}

/**
 * One Notify the consumer received. `accepted` is true only for the ones it acknowledged (HTTP 200/202);
 * refused ones are recorded too, with `reason` and the HTTP `status` it answered, and no messages.
 */
export interface NotifyRecord {
  messageId: string | null;
  to: string | null;
  action: string | null;
  /** From the sym:Sequence header's attributes. */
  subscription: string | null;
  first: number | null;
  last: number | null;
  /** false: refused by the WS-Security check (HTTP 500). true and not accepted: refused by --fail-first. */
  signatureOk: boolean;
  accepted: boolean;
  reason?: string;
  status?: number;
  messages: NotifyRecordMessage[];
}

export interface ConsumerOptions {
  /** PEM certificate whose key must have signed every Notify (and which the BinarySecurityToken must be). */
  certFile: string;
  /** Refuse the first K well-signed Notify messages (default 0). */
  failFirst?: number;
  /** The HTTP status of those refusals (default 500). */
  statusOnFail?: 500 | 503;
  /** Loopback port; default 0 (the OS chooses). */
  port?: number;
  /** Default `/consumer`. */
  path?: string;
}

export interface Consumer {
  /** `http://127.0.0.1:<port><path>`: the ConsumerReference Address. */
  url: string;
  port: number;
  /**
   * Every Notify recorded so far, in arrival order (after stop()/kill(): the last ones read). An accepted
   * one is written just *after* the 202 (the RI answers a one-way request before it calls the endpoint):
   * use waitForRecords() after a delivery; refusals are written before their answer.
   */
  records(): NotifyRecord[];
  /** Resolves with the records once `done(records)` holds; rejects after `timeoutMs` (default 10 s). */
  waitForRecords(done: (records: NotifyRecord[]) => boolean, timeoutMs?: number): Promise<NotifyRecord[]>;
  /** What the JVM wrote to stderr (RI warnings, stack traces), for assertion messages. */
  stderr(): string;
  /** Closes the consumer's stdin (it exits), then SIGKILL if it is still there after 5 s. */
  stop(): Promise<void>;
  /** SIGKILL at once: a consumer that vanishes mid-delivery. */
  kill(): void;
}

let jaxwsPresent: boolean | undefined;

/** wsimport, the JAX-WS RI runtime and a JDK (javac): what buildConsumer() and startConsumer() need. */
export function hasJaxws(): boolean {
  jaxwsPresent ??=
    existsSync(JAXWS_RT) && hasCommand('wsimport', ['-version']) && hasCommand('javac', ['-version']);
  return jaxwsPresent;
}

function inputsHash(): string {
  const h = createHash('sha256');
  for (const file of INPUTS) h.update(file).update('\0').update(readFileSync(file)).update('\0');
  return h.digest('hex').slice(0, 24);
}

let building: Promise<string> | undefined;

/**
 * wsimport (with the catalog, offline) + javac of the consumer; resolves with the classes directory.
 * Reuses a previous build of the same inputs, also one made by another test process.
 */
export function buildConsumer(): Promise<string> {
  building ??= build();
  building.catch(() => (building = undefined)); // a failed build is retried on the next call
  return building;
}

async function build(): Promise<string> {
  const done = join(CACHE_ROOT, inputsHash());
  const classes = join(done, 'classes');
  if (existsSync(join(classes, `${MAIN_CLASS}.class`))) return classes;

  mkdirSync(CACHE_ROOT, { recursive: true });
  const work = mkdtempSync(join(CACHE_ROOT, 'build-'));
  try {
    const gen = join(work, 'gen');
    mkdirSync(gen);
    mkdirSync(join(work, 'classes'));
    const wsimport = await runBounded(
      'wsimport',
      [
        '-keep',
        '-Xnocompile',
        // b-2.xsd imports by canonical absolute URLs; the catalog maps them to schemas/ws/.
        '-catalog',
        join(CONSUMER_SOURCES, 'catalog.xml'),
        '-d',
        gen,
        '-s',
        gen,
        join(CONSUMER_SOURCES, 'consumer.wsdl'),
      ],
      90_000,
    );
    if (wsimport.code !== 0) throw new Error(`wsimport failed:\n${wsimport.stdout}${wsimport.stderr}`);
    const javac = await runBounded(
      'javac',
      [
        '-nowarn',
        '-encoding',
        'UTF-8',
        '-cp',
        JAXWS_RT,
        '-d',
        join(work, 'classes'),
        ...javaFiles(gen),
        join(CONSUMER_SOURCES, 'NotifyConsumer.java'),
      ],
      120_000,
    );
    if (javac.code !== 0) throw new Error(`javac failed:\n${javac.stdout}${javac.stderr}`);
    // Published by one rename, so a directory under its final name is always a complete build.
    try {
      renameSync(work, done);
    } catch (e) {
      if (!existsSync(join(classes, `${MAIN_CLASS}.class`))) throw e; // not a concurrent build's win
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return classes;
}

function readRecords(file: string): NotifyRecord[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.pop(); // empty after the last '\n', or a line still being written
  return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as NotifyRecord);
}

/** Starts one consumer JVM (building it first if needed); resolves once it printed READY. */
export async function startConsumer(options: ConsumerOptions): Promise<Consumer> {
  const classes = await buildConsumer();
  const dir = mkdtempSync(join(tmpdir(), 'ssp-wsn-consumer-'));
  const recordsFile = join(dir, 'records.jsonl');
  const path = options.path ?? '/consumer';
  const child: ChildProcess = spawn(
    'java',
    [
      ...JAVA_FLAGS,
      '-cp',
      `${classes}:${JAXWS_RT}`,
      MAIN_CLASS,
      '--port',
      String(options.port ?? 0),
      '--path',
      path,
      '--cert',
      options.certFile,
      '--records',
      recordsFile,
      '--fail-first',
      String(options.failFirst ?? 0),
      '--status-on-fail',
      String(options.statusOnFail ?? 500),
    ],
    // stdin stays open: the consumer exits when it closes, so it cannot outlive this process.
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < 256 * 1024) stderr += chunk;
  });
  child.stdin!.on('error', () => undefined); // EPIPE when the JVM is already gone

  let last: NotifyRecord[] | undefined;
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const finish = (): void => {
    last ??= readRecords(recordsFile);
    rmSync(dir, { recursive: true, force: true });
  };
  const stop = async (): Promise<void> => {
    if (!exited()) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await gone;
      clearTimeout(killer);
    }
    finish();
  };
  const kill = (): void => {
    if (!exited()) child.kill('SIGKILL');
    finish();
  };

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`the WSN consumer did not print READY within ${READY_TIMEOUT_MS} ms:\n${stderr}`)),
        READY_TIMEOUT_MS,
      );
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start java: ${e.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the WSN consumer exited (${code ?? signal}) before READY:\n${stderr}`));
      });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^READY (\d+)$/.exec(line.trim());
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
  } catch (e) {
    kill();
    throw e;
  }

  const records = (): NotifyRecord[] => last ?? readRecords(recordsFile);
  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    records,
    async waitForRecords(done, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const now = records();
        if (done(now)) return now;
        if (Date.now() > until) {
          throw new Error(
            `the WSN consumer's records did not arrive in ${timeoutMs} ms: ${JSON.stringify(now)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stderr: () => stderr,
    stop,
    kill,
  };
}
