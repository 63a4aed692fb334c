/**
 * Active/active with real parts: HAProxy (docs/haproxy.cfg, as shipped) in front of three proxy
 * processes sharing one redis-server and two reference grids, and a zeep client signing with
 * xmlsec. Proxies are killed with SIGKILL mid-run, drained with SIGTERM, Redis and a grid
 * session manager are restarted: every task's output arrives, no task reaches the grid twice,
 * and the client sees no error (except where the README says a client must retry).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { requestGridStats } from '../../src/grid/stats-probe';
import { freePort, hasHaproxy, startHaproxy, type HaproxyProcess } from '../helpers/haproxy';
import { hasPythonModule, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from '../helpers/processes';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';

const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'zeep', 'ha_client.py');
const PYTHON = '/usr/bin/python3';
const NAMES = ['proxy1', 'proxy2', 'proxy3'];

interface ClientResult {
  ok: boolean;
  submitted: number;
  unique_ids: number;
  received: number;
  missing: number;
  wrong: number;
  duplicates: number;
  errors: string[];
  client_retries: number;
}

interface Progress {
  submitted: number;
  received: number;
}

/** Runs ha_client.py; `onProgress` sees every progress line (and may act on it). */
function runClient(
  args: string[],
  onProgress: (p: Progress) => void | Promise<void>,
): Promise<{ result: ClientResult | undefined; code: number | null; stderr: string }> {
  const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  let result: ClientResult | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    let v: (Progress & { event?: string }) | ClientResult;
    try {
      v = JSON.parse(line) as typeof v;
    } catch {
      return;
    }
    if ('event' in v && v.event === 'progress') void onProgress(v);
    else result = v as ClientResult;
  });
  // Bounded: the client has its own deadline; this is the backstop.
  const killer = setTimeout(() => child.kill('SIGKILL'), 300000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ result, code, stderr });
    });
  });
}

describe('HA: three proxies behind HAProxy, one Redis, two grids', function () {
  this.timeout(600000);
  let pki: TestPki;
  let redis: RedisProcess;
  let gridA: GridProcess;
  let gridB: GridProcess;
  let haproxy: HaproxyProcess;
  const ports: { port: number; adminPort: number }[] = [];
  const proxies: (ProxyProcess | undefined)[] = [];

  function config(i: number): Record<string, unknown> {
    return {
      server: { host: '127.0.0.1', port: ports[i]!.port, drainDelayMs: 4000, drainTimeoutMs: 30000 },
      admin: { enabled: true, host: '127.0.0.1', port: ports[i]!.adminPort },
      security: {
        mode: 'wss',
        trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile] },
        responseSigning: { enabled: false },
      },
      store: { kind: 'redis', redis: { url: redis.url, keyPrefix: 'ha:' } },
      log: { level: 'warn' },
      grid: {
        defaultCluster: 'default',
        clusters: [
          { name: 'default', urls: ['grid-a'], addresses: [gridA.address], requestTimeoutMs: 10000 },
          { name: 'b', urls: ['grid-b'], addresses: [gridB.address], requestTimeoutMs: 10000 },
        ],
      },
    };
  }

  async function startProxy(i: number): Promise<void> {
    proxies[i] = await startProxyProcess(config(i));
    await haproxy?.waitForState(NAMES[i]!, 'UP', 20000);
  }

  function clientArgs(tasks: number, extra: string[] = []): string[] {
    return [
      '--wsdl',
      `${haproxy.url}/symphony?wsdl`,
      '--client-cert',
      pki.client.certFile,
      '--client-key',
      pki.client.keyFile,
      '--tasks',
      String(tasks),
      '--batch',
      '25',
      // Paced so that the run spans the kills, health checks and restarts below.
      '--pace-ms',
      '20',
      ...extra,
    ];
  }

  async function accepted(): Promise<number> {
    return (await requestGridStats(gridA.child)).tasksAccepted;
  }

  function expectNoLoss(run: Awaited<ReturnType<typeof runClient>>, tasks: number): ClientResult {
    const r = run.result;
    expect(r, `no result from the client (exit ${run.code}):\n${run.stderr}`).to.not.equal(undefined);
    expect(r!.errors, run.stderr).to.deep.equal([]);
    expect(r!.submitted).to.equal(tasks);
    expect(r!.unique_ids).to.equal(tasks);
    expect(r!.missing).to.equal(0);
    expect(r!.wrong).to.equal(0);
    expect(r!.ok).to.equal(true);
    expect(run.code).to.equal(0);
    return r!;
  }

  before(async function () {
    requirePeer(this, 'haproxy', hasHaproxy(), 'apt-get install haproxy');
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    requirePeer(this, 'python3-zeep', hasPythonModule('zeep'), 'apt-get install python3-zeep');
    requirePeer(this, 'python3-xmlsec', hasPythonModule('xmlsec'), 'apt-get install python3-xmlsec');
    pki = await makeTestPki();
    redis = await startRedis({ persistent: true });
    gridA = await spawnGrid(['--port', '0']);
    gridB = await spawnGrid(['--port', '0']);
    for (let i = 0; i < 3; i++) ports.push({ port: await freePort(), adminPort: await freePort() });
    for (let i = 0; i < 3; i++) await startProxy(i);
    haproxy = await startHaproxy({ backends: NAMES.map((name, i) => ({ name, ...ports[i]! })) });
    for (const name of NAMES) await haproxy.waitForState(name, 'UP', 20000);
  });

  after(async () => {
    await haproxy?.stop();
    for (const p of proxies) await p?.stop('SIGKILL');
    await gridA?.stop();
    await gridB?.stop();
    await redis?.stop();
  });

  it('two proxies killed with SIGKILL mid-run: 5,000 tasks, every output, none submitted twice, no client error', async () => {
    const before = await accepted();
    const killed: number[] = [];
    let firstDown = false;
    const run = await runClient(clientArgs(5000), async (p) => {
      if (p.submitted >= 1500 && killed.length === 0) {
        killed.push(p.submitted);
        proxies[0]!.child.kill('SIGKILL');
        await haproxy.waitForState('proxy1', 'DOWN', 15000);
        firstDown = true;
      } else if (p.submitted >= 3000 && killed.length === 1 && firstDown) {
        killed.push(p.submitted);
        proxies[1]!.child.kill('SIGKILL');
      }
    });
    const r = expectNoLoss(run, 5000);
    expect(killed, 'both proxies were killed mid-run').to.have.length(2);
    expect(r.client_retries, 'the client never had to retry').to.equal(0);
    expect((await accepted()) - before, 'tasks that reached the grid').to.equal(5000);
    console.log(
      `      killed at ${killed.join(' and ')} tasks submitted; ${r.duplicates} outputs delivered twice (at least once)`,
    );
    for (const i of [0, 1]) await startProxy(i);
  });

  it('SIGTERM drains: readiness goes false first, HAProxy moves away, calls in flight finish, exit 0', async () => {
    const before = await accepted();
    const victim = proxies[2]!;
    let drained: Promise<number | null> | undefined;
    const observed: string[] = [];
    const run = await runClient(clientArgs(1500), async (p) => {
      if (p.submitted < 300 || drained) return;
      drained = new Promise((resolve) => victim.child.once('exit', (code) => resolve(code)));
      victim.child.kill('SIGTERM');
      // The signal is handled on the proxy's event loop, which may serve a probe first: ask
      // again (boundedly) until the answer reflects the signal.
      let answer = '';
      for (let i = 0; i < 40; i++) {
        const ready = await fetch(`${victim.adminUrl}/readyz`);
        answer = `readyz ${ready.status} ${(await ready.text()).trim()}`;
        if (ready.status !== 200) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      observed.push(answer);
      await haproxy.waitForState('proxy3', 'DOWN', 15000);
      observed.push(
        `haproxy DOWN while the process ${victim.child.exitCode === null ? 'still runs' : 'had exited'}`,
      );
    });
    expectNoLoss(run, 1500);
    expect(await drained).to.equal(0);
    expect(observed[0]).to.match(/^readyz 503 not ready: draining/);
    expect(observed[1]).to.equal('haproxy DOWN while the process still runs');
    expect((await accepted()) - before).to.equal(1500);
    await startProxy(2);
  });

  it('Redis restarted mid-run: refused calls are retryable, and a client retrying them loses nothing', async () => {
    const before = await accepted();
    let restarted = false;
    const run = await runClient(clientArgs(1500, ['--retry-retryable']), async (p) => {
      if (p.submitted < 300 || restarted) return;
      restarted = true;
      await redis.restart();
    });
    const r = expectNoLoss(run, 1500);
    expect(restarted).to.equal(true);
    expect((await accepted()) - before).to.equal(1500);
    console.log(`      the client retried ${r.client_retries} calls while Redis restarted`);
  });

  it('a grid session manager restarted: every proxy reconnects to it', async () => {
    const port = gridB.address.split(':').pop()!;
    await gridB.stop('SIGKILL');
    gridB = await spawnGrid(['--port', port]);
    for (const p of proxies) {
      let connected = 0;
      // Bounded: reconnect backoff is capped at 5 s; 40 x 250 ms covers it.
      for (let i = 0; i < 40 && connected === 0; i++) {
        const text = await (await fetch(`${p!.adminUrl}/metrics`)).text();
        const m = /ssp_grid_connections\{cluster="b"\} (\d+)/.exec(text);
        connected = m ? Number(m[1]) : 0;
        if (connected === 0) await sleep(250);
      }
      expect(connected, `${p!.url} reconnected to the restarted grid`).to.be.greaterThan(0);
    }
  });
});
