/**
 * A private RabbitMQ (Debian's rabbitmq-server with the rabbitmq_stomp plugin) on loopback, for
 * the accounting tests. Everything is under one temp dir: its own epmd on a free port, its own
 * erlang cookie and node name, so it neither needs nor touches a system instance.
 *
 * Started as the invoking user (root in CI) straight from /usr/lib/rabbitmq/bin, not through the
 * /usr/sbin wrapper that switches to the `rabbitmq` user. Start time on the 2-core dev box: about
 * 5 s (measured: `startMs`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, freePort, stopProcess } from './peer-process';
import type { CertPair } from './pki';

const RABBIT_BIN = '/usr/lib/rabbitmq/bin/rabbitmq-server';
/** Generous: the box has 2 cores and other suites run beside this one. */
const START_TIMEOUT_MS = 90000;
/** RabbitMQ flushes its message store on a graceful stop; give it time before SIGKILL. */
const STOP_TIMEOUT_MS = 30000;

export interface RabbitTls {
  ca: CertPair;
  server: CertPair;
  /** Require a client certificate issued by `ca` (mutual TLS). */
  requireClientCert?: boolean;
}

export interface RabbitOptions {
  tls?: RabbitTls;
}

export interface RabbitProcess {
  host: '127.0.0.1';
  amqpPort: number;
  stompPort: number;
  /** Set when started with `tls`. */
  stompTlsPort: number | undefined;
  login: string;
  passcode: string;
  vhost: '/';
  /** How long the last start took until STOMP answered CONNECT, ms. */
  startMs: number;
  /** Graceful stop that keeps the data and the ports, so `start()` brings back persistent messages. */
  halt(): Promise<void>;
  /** Starts again after `halt()` or `kill()`. */
  start(): Promise<void>;
  /** halt() then start(). */
  restart(): Promise<void>;
  /** SIGKILL to the Erlang VM: no flush, no goodbye to clients. */
  kill(): Promise<void>;
  /** Stops everything (broker and epmd) and removes the temp dir. */
  stop(): Promise<void>;
}

export function hasRabbitmq(): boolean {
  return existsSync(RABBIT_BIN) && existsSync('/usr/bin/epmd');
}

/**
 * One STOMP SEND over a raw socket, waiting for its RECEIPT: readiness and control messages must
 * not depend on the client under test. Headers are written as given (no escaping needed for ours).
 */
export function rawStomp(
  port: number,
  frames: {
    login: string;
    passcode: string;
    send?: { destination: string; headers: Record<string, string>; body: string };
  },
  timeoutMs = 2000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let got = '';
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
    sock.once('connect', () => {
      sock.write(
        `CONNECT\naccept-version:1.2\nhost:/\nlogin:${frames.login}\npasscode:${frames.passcode}\n\n\0`,
      );
      const s = frames.send;
      if (s) {
        const headers = { destination: s.destination, receipt: 'raw-1', ...s.headers };
        const lines = Object.entries(headers).map(([k, v]) => `${k}:${v}`);
        const body = Buffer.from(s.body, 'utf8');
        sock.write(`SEND\n${lines.join('\n')}\ncontent-length:${body.length}\n\n`);
        sock.write(Buffer.concat([body, Buffer.from([0])]));
      }
    });
    const wantsReceipt = frames.send !== undefined;
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.startsWith('ERROR')) done(false);
      else if (!wantsReceipt && got.includes('CONNECTED')) done(true);
      else if (got.includes('receipt-id:raw-1')) done(true);
    });
  });
}

interface Layout {
  dir: string;
  nodename: string;
  epmdPort: number;
  amqpPort: number;
  distPort: number;
  stompPort: number;
  stompTlsPort: number | undefined;
  login: string;
  passcode: string;
}

function writeConfig(l: Layout, tls: RabbitTls | undefined): void {
  const lines = [
    `listeners.tcp.default = 127.0.0.1:${l.amqpPort}`,
    `stomp.listeners.tcp.1 = 127.0.0.1:${l.stompPort}`,
    `default_user = ${l.login}`,
    `default_pass = ${l.passcode}`,
    // No anonymous STOMP logins: a test that forgets credentials must fail.
    'stomp.default_user = none-such-user',
  ];
  if (tls && l.stompTlsPort !== undefined) {
    lines.push(
      `stomp.listeners.ssl.1 = 127.0.0.1:${l.stompTlsPort}`,
      `ssl_options.cacertfile = ${tls.ca.certFile}`,
      `ssl_options.certfile = ${tls.server.certFile}`,
      `ssl_options.keyfile = ${tls.server.keyFile}`,
      `ssl_options.verify = ${tls.requireClientCert ? 'verify_peer' : 'verify_none'}`,
      `ssl_options.fail_if_no_peer_cert = ${tls.requireClientCert ? 'true' : 'false'}`,
    );
  }
  writeFileSync(join(l.dir, 'rabbitmq.conf'), lines.join('\n') + '\n');
  writeFileSync(join(l.dir, 'enabled_plugins'), '[rabbitmq_stomp].\n');
  mkdirSync(join(l.dir, 'home'), { recursive: true });
  const cookie = join(l.dir, 'home', '.erlang.cookie');
  writeFileSync(cookie, randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
}

function brokerEnv(l: Layout): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: join(l.dir, 'home'),
    LANG: 'C.UTF-8',
    ERL_EPMD_PORT: String(l.epmdPort),
    RABBITMQ_NODENAME: l.nodename,
    RABBITMQ_MNESIA_BASE: join(l.dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(l.dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(l.dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(l.dir, 'enabled_plugins'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(l.dir, 'plugins-expand'),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(l.amqpPort),
    RABBITMQ_DIST_PORT: String(l.distPort),
    // Our own epmd (started below) and distribution on loopback only.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}',
  };
}

/** The Erlang VM is the wrapper script's child; SIGKILL must reach it, not the script. */
function beamPid(script: ChildProcess): number | undefined {
  try {
    const children = readFileSync(`/proc/${script.pid}/task/${script.pid}/children`, 'utf8').trim();
    const first = children.split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-3000);
  } catch {
    return '(no log)';
  }
}

async function launch(l: Layout): Promise<{ child: ChildProcess; ms: number }> {
  const t0 = Date.now();
  const child = spawn(RABBIT_BIN, [], { env: brokerEnv(l), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-3000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = t0 + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited(child)) {
      throw new Error(
        `rabbitmq-server exited before STOMP answered:\n${output}\n${tail(join(l.dir, 'log', `${l.nodename}.log`))}`,
      );
    }
    if (await rawStomp(l.stompPort, { login: l.login, passcode: l.passcode }, 1000)) {
      return { child, ms: Date.now() - t0 };
    }
    await sleep(200);
  }
  await stopBroker(child);
  throw new Error(
    `rabbitmq-server did not answer STOMP CONNECT on ${l.stompPort} within ${START_TIMEOUT_MS} ms:\n${output}`,
  );
}

async function stopBroker(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // SIGTERM to the script: it runs RabbitMQ's orderly shutdown and waits for the VM.
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    const beam = beamPid(child);
    if (beam) process.kill(beam, 'SIGKILL');
    child.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  await gone;
  clearTimeout(timer);
}

function startEpmd(port: number): ChildProcess {
  return spawn('/usr/bin/epmd', ['-port', String(port), '-address', '127.0.0.1'], { stdio: 'ignore' });
}

export async function startRabbitmq(opts: RabbitOptions = {}): Promise<RabbitProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-rabbitmq-'));
  const [epmdPort, amqpPort, distPort, stompPort, tlsPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const layout: Layout = {
    dir,
    nodename: `ssp-test-${process.pid}-${randomBytes(4).toString('hex')}@localhost`,
    epmdPort: epmdPort!,
    amqpPort: amqpPort!,
    distPort: distPort!,
    stompPort: stompPort!,
    stompTlsPort: opts.tls ? tlsPort : undefined,
    login: 'accounting',
    passcode: randomBytes(12).toString('hex'),
  };
  writeConfig(layout, opts.tls);
  const epmd = startEpmd(layout.epmdPort);
  let child: ChildProcess | undefined;
  // A crashed test run must not leave a broker behind.
  const reap = (): void => {
    if (child && !exited(child)) {
      const beam = beamPid(child);
      if (beam) process.kill(beam, 'SIGKILL');
      child.kill('SIGKILL');
    }
    if (!exited(epmd)) epmd.kill('SIGKILL');
  };
  process.once('exit', reap);

  const rabbit: RabbitProcess = {
    host: '127.0.0.1',
    amqpPort: layout.amqpPort,
    stompPort: layout.stompPort,
    stompTlsPort: layout.stompTlsPort,
    login: layout.login,
    passcode: layout.passcode,
    vhost: '/',
    startMs: 0,
    async start() {
      if (child && !exited(child)) return;
      const started = await launch(layout);
      child = started.child;
      rabbit.startMs = started.ms;
    },
    async halt() {
      if (child) await stopBroker(child);
    },
    async restart() {
      await rabbit.halt();
      await rabbit.start();
    },
    async kill() {
      if (!child || exited(child)) return;
      const gone = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      const beam = beamPid(child);
      if (beam) process.kill(beam, 'SIGKILL');
      else child.kill('SIGKILL');
      await gone;
    },
    async stop() {
      await rabbit.halt();
      await stopProcess(epmd);
      process.off('exit', reap);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await rabbit.start();
  } catch (err) {
    await stopProcess(epmd);
    process.off('exit', reap);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return rabbit;
}
