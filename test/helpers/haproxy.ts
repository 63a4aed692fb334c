/**
 * A throwaway HAProxy on free loopback ports, running the shipped docs/haproxy.cfg in front of
 * three proxies, so that tests prove the documented config (retries, health checks on /readyz).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasCommand } from './peers';
import { exited, freePort, stopProcess } from './peer-process';

export interface HaproxyBackend {
  /** The name serverStates() reports this proxy under. */
  name: string;
  /** The proxy's SOAP port on 127.0.0.1. */
  port: number;
  /** The proxy's admin port on 127.0.0.1 (/readyz is health-checked there). */
  adminPort: number;
}

export interface HaproxyOptions {
  /** Exactly three, in the order of the config's proxy1..proxy3 server lines. */
  backends: HaproxyBackend[];
  /** Defaults to the shipped docs/haproxy.cfg. */
  configFile?: string;
}

export interface HaproxyProcess {
  /** Frontend URL, e.g. http://127.0.0.1:41234 (append the SOAP path). */
  url: string;
  port: number;
  /** The stats page; /metrics there is the Prometheus exporter. */
  statsUrl: string;
  stop(): Promise<void>;
  /**
   * Status of each backend server by its name, from the stats socket's "show stat": "UP",
   * "DOWN", "MAINT", "DRAIN", "NOLB", or a transition such as "UP 1/2" (one failed check of the
   * two that mark it down) or "DOWN 1/2".
   */
  serverStates(): Promise<Record<string, string>>;
  /** Polls serverStates() until the named server has exactly this status. */
  waitForState(name: string, state: string, timeoutMs?: number): Promise<void>;
}

/** Backend section of docs/haproxy.cfg, and its server names in order. */
const BACKEND = 'ssp_proxies';
const SERVERS = ['proxy1', 'proxy2', 'proxy3'];

const START_TIMEOUT_MS = 10000;
const SOCKET_TIMEOUT_MS = 2000;
const STATE_TIMEOUT_MS = 10000;

export function hasHaproxy(): boolean {
  return hasCommand('haproxy', ['-v']);
}

/** The shipped config: found upwards from here, so it works from test/ and from dist/test/. */
export function shippedConfig(): string {
  let dir = __dirname;
  for (;;) {
    const file = join(dir, 'docs', 'haproxy.cfg');
    if (existsSync(join(dir, 'package.json')) && existsSync(file)) return file;
    const up = dirname(dir);
    if (up === dir) throw new Error(`docs/haproxy.cfg not found above ${__dirname}`);
    dir = up;
  }
}

export { freePort };

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => done(true));
  });
}

/** One command on the stats socket; HAProxy answers and closes (non-interactive mode). */
function socketCommand(path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let got = '';
    sock.setTimeout(SOCKET_TIMEOUT_MS, () => {
      sock.destroy();
      reject(new Error(`no answer to '${command}' on ${path} within ${SOCKET_TIMEOUT_MS} ms`));
    });
    sock.once('error', reject);
    sock.once('connect', () => sock.write(`${command}\n`));
    sock.on('data', (d) => (got += d.toString('utf8')));
    sock.once('end', () => {
      sock.destroy();
      resolve(got);
    });
  });
}

/** Server statuses of one backend from "show stat" CSV, by HAProxy server name. */
export function parseShowStat(csv: string, backend: string): Record<string, string> {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) throw new Error(`unexpected "show stat" output:\n${csv.slice(0, 500)}`);
  const cols = header.slice(2).split(',');
  const px = cols.indexOf('pxname');
  const sv = cols.indexOf('svname');
  const status = cols.indexOf('status');
  const out: Record<string, string> = {};
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const f = line.split(',');
    if (f[px] !== backend || f[sv] === 'FRONTEND' || f[sv] === 'BACKEND') continue;
    out[f[sv]!] = f[status]!;
  }
  return out;
}

export async function startHaproxy(opts: HaproxyOptions): Promise<HaproxyProcess> {
  if (opts.backends.length !== SERVERS.length) {
    throw new Error(
      `docs/haproxy.cfg has exactly ${SERVERS.length} server lines; got ${opts.backends.length} backends`,
    );
  }
  const names = opts.backends.map((b) => b.name);
  if (new Set(names).size !== names.length) throw new Error(`backend names must differ: ${names.join(', ')}`);
  const configFile = opts.configFile ?? shippedConfig();
  const port = await freePort();
  const statsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssp-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SSP_FRONT_BIND: `127.0.0.1:${port}`,
    SSP_HAPROXY_STATS_SOCKET: socket,
    SSP_HAPROXY_STATS_BIND: `127.0.0.1:${statsPort}`,
  };
  opts.backends.forEach((b, i) => {
    env[`SSP_PROXY${i + 1}_ADDR`] = `127.0.0.1:${b.port}`;
    env[`SSP_PROXY${i + 1}_ADMIN_PORT`] = String(b.adminPort);
  });

  // -db: stay in the foreground, so that the child is HAProxy itself and stop() ends it.
  const child = spawn('haproxy', ['-db', '-f', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-4000);
    if (process.env['SSP_HAPROXY_LOG']) process.stderr.write(d);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  // A crashed test run must not leave HAProxy behind.
  const reap = (): void => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  const stop = async (): Promise<void> => {
    // SIGTERM is HAProxy's hard stop: it closes everything at once and exits.
    await stopProcess(child);
    process.off('exit', reap);
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited(child)) {
      await stop();
      throw new Error(`haproxy exited before listening on port ${port}:\n${output}`);
    }
    if (existsSync(socket) && (await accepts(port))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not listen on port ${port} within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await sleep(50);
  }

  const serverStates = async (): Promise<Record<string, string>> => {
    const raw = parseShowStat(await socketCommand(socket, 'show stat'), BACKEND);
    const out: Record<string, string> = {};
    SERVERS.forEach((server, i) => {
      const status = raw[server];
      if (status === undefined) throw new Error(`server ${BACKEND}/${server} missing from "show stat"`);
      out[names[i]!] = status;
    });
    return out;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    statsUrl: `http://127.0.0.1:${statsPort}/`,
    stop,
    serverStates,
    async waitForState(name, state, timeoutMs = STATE_TIMEOUT_MS) {
      if (!names.includes(name)) throw new Error(`no backend named ${name}`);
      const until = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < until) {
        last = (await serverStates())[name]!;
        if (last === state) return;
        await sleep(100);
      }
      throw new Error(`${name} did not become ${state} within ${timeoutMs} ms (last: ${last})`);
    },
  };
}
