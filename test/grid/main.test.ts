import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ErrorCode } from '../../src/backend/protocol';
import { requestGridStats } from '../../src/grid/stats-probe';
import { spawnGrid } from '../../src/server/embedded-grid';
import { fetchOutputs, newSession, textTasks } from './helpers';
import { RawClient } from './raw-client';

const MAIN = join(__dirname, '..', '..', 'src', 'grid', 'main.js');

interface Started {
  child: ChildProcess;
  host: string;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
}

function startMain(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, GRID_SHARED_SECRET: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('grid did not print its listening line within 15 s'));
    }, 15000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const m = /^grid listening on (.+):(\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, host: m[1]!, port: Number(m[2]), lines, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`grid exited with code ${code} before listening`));
    });
  });
}

describe('grid standalone process (main.js)', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'grid-main-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints its address, serves a round trip and exits 0 on SIGTERM', async () => {
    const grid = await startMain(['--host', '127.0.0.1', '--port', '0', '--secret', 'cli-secret']);
    try {
      expect(grid.host).to.equal('127.0.0.1');
      expect(grid.port).to.be.greaterThan(0);
      const client = await RawClient.connect(grid.port, { secret: 'cli-secret' });
      const { sessionId } = await newSession(client);
      await client.call('sendTasks', { sessionId, tasks: textTasks(['standalone']) });
      const outputs = await fetchOutputs(client, sessionId, 1);
      expect(outputs[0]).to.deep.include({ successful: true, payload: { text: 'standalone' } });
      await client.close();
    } finally {
      grid.child.kill('SIGTERM');
    }
    expect(await grid.exited).to.equal(0);
    expect(grid.lines).to.deep.equal([`grid listening on 127.0.0.1:${grid.port}`]);
  });

  it('reads a JSON config file and GRID_SHARED_SECRET', async () => {
    const configPath = join(dir, 'grid.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        gridName: 'from-file',
        applications: [{ name: 'only', service: 'echo', workers: 1 }],
      }),
    );
    const grid = await startMain(['--config', configPath], { GRID_SHARED_SECRET: 'env-secret' });
    try {
      const client = await RawClient.connect(grid.port, { secret: 'env-secret' });
      const hello = await client.serverHello;
      expect(hello.gridName).to.equal('from-file');
      const err = await client.callError('connect', {
        applicationName: 'echo',
        username: 'u',
        password: 'p',
      });
      expect(err.code).to.equal(ErrorCode.UNKNOWN_APPLICATION);
      await client.close();
    } finally {
      grid.child.kill('SIGINT');
    }
    expect(await grid.exited).to.equal(0);
  });

  it('prints its stats on SIGUSR2, readable with requestGridStats', async () => {
    // The way suites that run the grid as a process (spawnGrid) read its counters.
    const grid = await spawnGrid(['--host', '127.0.0.1', '--port', '0']);
    try {
      const port = Number(grid.address.split(':')[1]);
      const client = await RawClient.connect(port);
      const { sessionId } = await newSession(client);
      const tasks = textTasks(['once', 'only']);
      await client.call('sendTasks', { sessionId, tasks, submitKey: 'retry-me' });
      await client.call('sendTasks', { sessionId, tasks, submitKey: 'retry-me' });
      await fetchOutputs(client, sessionId, 2);
      const [a, b] = await Promise.all([requestGridStats(grid.child), requestGridStats(grid.child)]);
      for (const stats of [a!, b!]) {
        expect(stats).to.include({
          tasksAccepted: 2,
          duplicateSubmits: 1,
          tasksCompleted: 2,
          outputsHeld: 0,
        });
        expect(stats.sockets).to.equal(1);
      }
      await client.close();
    } finally {
      await grid.stop();
    }
    const exited = await startMain(['--port', '0']);
    exited.child.kill('SIGKILL');
    await exited.exited;
    let error: unknown;
    await requestGridStats(exited.child).catch((err: unknown) => (error = err));
    expect(String(error)).to.match(/exited|no stats/);
  });

  it('exits non-zero with the offending key on a bad config', async () => {
    const configPath = join(dir, 'bad.json');
    writeFileSync(configPath, JSON.stringify({ heartbeatMs: -1 }));
    const child = spawn(process.execPath, [MAIN, '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).to.equal(1);
    expect(stderr).to.match(/heartbeatMs/);
  });
});
