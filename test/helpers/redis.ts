/** A throwaway redis-server on a free loopback port, for tests of the shared store. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasCommand } from './peers';
import { exited, freePort, stopProcess } from './peer-process';

export interface RedisProcess {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Stops and starts again on the same port, with empty data (nothing is persisted). */
  restart(): Promise<void>;
}

const START_TIMEOUT_MS = 10000;

export function hasRedis(): boolean {
  return hasCommand('redis-server', ['--version']);
}

/** One PING over a raw socket, so that readiness does not depend on the client under test. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

async function launch(port: number, dir: string, persistent: boolean): Promise<ChildProcess> {
  // persistent: the append-only file with an fsync per write, as docs/operations.md asks for
  // when a restart must lose nothing.
  const args = [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    persistent ? 'yes' : 'no',
    ...(persistent ? ['--appendfsync', 'always'] : []),
    '--dir',
    dir,
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited(child)) throw new Error(`redis-server exited before answering on port ${port}:\n${output}`);
    if (await pings(port)) return child;
    await sleep(50);
  }
  await stopProcess(child);
  throw new Error(
    `redis-server did not answer PING on port ${port} within ${START_TIMEOUT_MS} ms:\n${output}`,
  );
}

export async function startRedis(opts: { persistent?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssp-redis-'));
  const persistent = opts.persistent ?? false;
  let child = await launch(port, dir, persistent);
  // A crashed test run must not leave a server behind.
  const reap = (): void => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await stopProcess(child);
      process.off('exit', reap);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopProcess(child);
      mkdirSync(dir, { recursive: true });
      child = await launch(port, dir, persistent);
      process.off('exit', reap);
      process.once('exit', reap);
    },
  };
}
