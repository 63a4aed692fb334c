import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { eventually } from '../test/grid/helpers';
import { startTestGrid } from '../test/helpers/in-process';
import { envelope11, op, pick, postSoap } from '../test/helpers/soap-http';
import { startProxy, type RunningProxy } from './app';
import { verifyAuditFile } from './commands/audit';
import { parseConfig, type ProxyConfig } from './config';
import type { Grid } from './grid/server';
import { log } from './log';
import { AuditLog } from './observability/audit-log';

const CONNECT = op(
  'connect',
  '<sym:applicationName>echo</sym:applicationName><sym:username>user-a</sym:username><sym:password>pw</sym:password>',
);

/** The configuration of a test proxy: loopback, ephemeral ports, no WS-Security, audit in `dir`. */
function testConfig(
  dir: string,
  overrides: { grid: Record<string, unknown>; audit?: Record<string, unknown>; port?: number },
): ProxyConfig {
  return parseConfig({
    server: { host: '127.0.0.1', port: overrides.port ?? 0, drainDelayMs: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    security: { mode: 'off' },
    log: { level: 'error' },
    audit: { file: join(dir, 'audit.jsonl'), ...overrides.audit },
    grid: overrides.grid,
  });
}

const EMBEDDED = { embedded: true };

/** The compiled reference grid next to this file: what the embedded grid runs, and its workers. */
const GRID_DIR = join(__dirname, 'grid');

interface Proc {
  pid: number;
  ppid: number;
  args: string;
}

/** Processes on this machine running this build's grid (main.js) or its workers (worker.js). */
function gridProcesses(): Proc[] {
  const out = execFileSync('ps', ['-ww', '-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  const procs: Proc[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const args = m[3]!;
    if (args.includes(join(GRID_DIR, 'main.js')) || args.includes(join(GRID_DIR, 'worker.js'))) {
      procs.push({ pid: Number(m[1]), ppid: Number(m[2]), args });
    }
  }
  return procs;
}

/** Grid processes now running that were not running at `before`. */
function newGridProcesses(before: Set<number>): Proc[] {
  return gridProcesses().filter((p) => !before.has(p.pid));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` with the operational log captured at info level (and the console quiet). */
async function withLogCaptured<T>(
  fn: () => Promise<T>,
): Promise<{ entries: Record<string, unknown>[]; result: PromiseSettledResult<T> }> {
  const entries: Record<string, unknown>[] = [];
  const sink = new winston.transports.Stream({
    stream: new Writable({
      objectMode: true,
      write(info: Record<string, unknown>, _enc, done) {
        entries.push(info);
        done();
      },
    }),
  });
  const consoles = log.transports.filter((t) => t instanceof winston.transports.Console);
  const silenced = consoles.map((t) => t.silent);
  const level = log.level;
  consoles.forEach((t) => (t.silent = true));
  log.level = 'info';
  log.add(sink);
  let result: PromiseSettledResult<T>;
  try {
    result = { status: 'fulfilled', value: await fn() };
  } catch (reason) {
    result = { status: 'rejected', reason };
  } finally {
    log.remove(sink);
    log.level = level;
    consoles.forEach((t, i) => (t.silent = silenced[i]));
  }
  return { entries, result };
}

/** The pid the embedded grid was logged with. */
function loggedGridPid(entries: Record<string, unknown>[]): number {
  const started = entries.find((e) => e['message'] === 'embedded reference grid started');
  expect(started, 'the embedded grid was started').not.to.equal(undefined);
  const pid = started!['pid'];
  expect(pid).to.be.a('number').and.not.equal(process.pid);
  return pid as number;
}

function freeListen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const closeServer = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

describe('app: startProxy assembles a working proxy in-process', function () {
  // Spawning the embedded grid costs a Node start-up.
  this.timeout(20_000);
  let dir: string;
  const savedLevel = log.level;

  before(async () => {
    log.level = 'error';
    dir = await mkdtemp(join(tmpdir(), 'ssp-app-'));
  });
  after(async () => {
    log.level = savedLevel;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('with a cluster pointing at an in-process grid', () => {
    let grid: Grid;
    let proxy: RunningProxy;
    let subdir: string;

    before(async () => {
      grid = await startTestGrid();
      subdir = await mkdtemp(join(dir, 'cluster-'));
      proxy = await startProxy(
        testConfig(subdir, {
          grid: {
            clusters: [{ name: 'default', urls: ['grid-a'], addresses: [`127.0.0.1:${grid.address.port}`] }],
          },
        }),
      );
    });
    after(async () => {
      await proxy?.close();
      await grid?.close();
    });

    it('answers a SOAP 1.1 call at proxy.url', async () => {
      expect(proxy.url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/symphony$/);
      const r = await postSoap(proxy.url, envelope11(CONNECT));
      expect(r.status, r.text).to.equal(200);
      expect(r.headers.get('content-type')).to.contain('text/xml');
      expect(r.headers.get('x-correlation-id')).to.be.a('string');
      expect(pick(r.text, 'connectionId')).to.be.a('string').and.not.equal('');
    });

    it('runs connect → createSession → sendTaskInput → fetchTaskOutput over HTTP', async () => {
      const c = await postSoap(proxy.url, envelope11(CONNECT));
      const connectionId = pick(c.text, 'connectionId')!;
      const s = await postSoap(
        proxy.url,
        envelope11(op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`)),
      );
      const sessionId = pick(s.text, 'sessionId')!;
      const t = await postSoap(
        proxy.url,
        envelope11(
          op(
            'sendTaskInput',
            `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:text>over http</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
          ),
        ),
      );
      const taskId = pick(t.text, 'taskId');
      const f = await postSoap(
        proxy.url,
        envelope11(
          op(
            'fetchTaskOutput',
            `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>1</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>`,
          ),
        ),
      );
      expect(f.status, f.text).to.equal(200);
      expect(pick(f.text, 'taskId')).to.equal(taskId);
      expect(pick(f.text, 'text')).to.equal('over http');
    });

    it('/readyz on the admin URL says ready once a grid connection is live, /livez says ok', async () => {
      expect(proxy.adminUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      let last = '';
      const ready = await eventually(async () => {
        const res = await fetch(`${proxy.adminUrl!}/readyz`);
        last = await res.text();
        return res.status === 200;
      });
      expect(ready, last).to.equal(true);
      // The verdict first, then how each grid link travels, so an operator sees a plain link.
      expect(last).to.equal('ready\ngrid link default: plain TCP on loopback\n');
      expect(proxy.gridLinks()).to.deep.equal([
        { cluster: 'default', transport: 'plain-loopback', describe: 'plain TCP on loopback' },
      ]);
      const live = await fetch(`${proxy.adminUrl!}/livez`);
      expect(live.status).to.equal(200);
    });

    it('/metrics on the admin URL counts the SOAP calls', async () => {
      await postSoap(proxy.url, envelope11(CONNECT));
      const res = await fetch(`${proxy.adminUrl!}/metrics`);
      const text = await res.text();
      expect(res.status).to.equal(200);
      expect(text).to.match(/ssp_requests_total\{operation="connect",outcome="ok"\} [1-9]/);
    });

    it('answers a POST to another path with the SOAP fault SSP_UNKNOWN_PATH and HTTP 404', async () => {
      const elsewhere = proxy.url.replace(/\/symphony$/, '/elsewhere');
      const r = await postSoap(elsewhere, envelope11(CONNECT));
      expect(r.status).to.equal(404);
      expect(r.text).to.contain('Fault');
      expect(r.text).to.contain('<sym:code>SSP_UNKNOWN_PATH</sym:code>');
      expect(pick(r.text, 'connectionId')).to.equal(undefined);
    });

    it('serves the WSDL at ?wsdl with its own address, and the schema at ?xsd=', async () => {
      const res = await fetch(proxy.wsdlUrl);
      const wsdl = await res.text();
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.contain('text/xml');
      expect(wsdl).to.contain('definitions');
      expect(wsdl).to.contain(`location="${proxy.url}"`);
      const xsd = await fetch(`${proxy.url}?xsd=symphony.xsd`);
      expect(xsd.status).to.equal(200);
      expect(await xsd.text()).to.contain('name="fetchTaskOutput"');
      // The resource ports keep their path; the standards' schemas and what they import are
      // served by the proxy too, so a client needs no other network access.
      expect(wsdl).to.contain(`location="${proxy.url}/sessions"`);
      expect(wsdl).to.contain(`schemaLocation="${proxy.url}?xsd=rp-2.xsd"`);
      const rp = await (await fetch(`${proxy.url}?xsd=rp-2.xsd`)).text();
      expect(rp).to.contain(`schemaLocation="${proxy.url}?xsd=bf-2.xsd"`);
      const bf = await (await fetch(`${proxy.url}?xsd=bf-2.xsd`)).text();
      expect(bf).to.contain(`schemaLocation="${proxy.url}?xsd=xml.xsd"`);
      expect(bf).to.contain(`schemaLocation="${proxy.url}?xsd=ws-addr.xsd"`);
      expect((await fetch(`${proxy.url}?xsd=xml.xsd`)).status).to.equal(200);
    });

    it('close() frees both ports and flushes the audit trail', async () => {
      const port = Number(new URL(proxy.url).port);
      const adminPort = Number(new URL(proxy.adminUrl!).port);
      await postSoap(proxy.url, envelope11(CONNECT));
      await proxy.close();
      for (const p of [port, adminPort]) {
        const s = await freeListen(p);
        await closeServer(s);
      }
      let refused: unknown;
      await fetch(proxy.url, { method: 'POST', body: envelope11(CONNECT) }).catch(
        (e: unknown) => (refused = e),
      );
      expect(refused, 'the SOAP port no longer answers').to.be.instanceOf(Error);
      const audit = await readFile(join(subdir, 'audit.jsonl'), 'utf8');
      expect(audit).to.contain('"operation":"connect"');
      expect(await verifyAuditFile(join(subdir, 'audit.jsonl'))).to.include({ ok: true });
      // A second close is harmless.
      await proxy.close();
    });
  });

  describe('with the embedded grid', () => {
    it('spawns the grid as a child process, serves calls through it, and close() stops it and its workers', async () => {
      const before = new Set(gridProcesses().map((p) => p.pid));
      const subdir = await mkdtemp(join(dir, 'embedded-'));
      const { entries, result } = await withLogCaptured(() =>
        startProxy(testConfig(subdir, { grid: EMBEDDED })),
      );
      if (result.status === 'rejected') throw result.reason;
      const proxy = result.value;
      try {
        const gridPid = loggedGridPid(entries);
        const spawned = newGridProcesses(before);
        expect(spawned.find((p) => p.pid === gridPid)).to.deep.include({ ppid: process.pid });
        expect(spawned.filter((p) => p.ppid === gridPid).length, 'grid workers').to.be.greaterThan(0);

        const r = await postSoap(proxy.url, envelope11(CONNECT));
        expect(r.status, r.text).to.equal(200);
        expect(pick(r.text, 'connectionId')).to.be.a('string');
        expect(
          await eventually(async () => (await fetch(`${proxy.adminUrl!}/readyz`)).status === 200),
        ).to.equal(true);
      } finally {
        await proxy.close();
      }
      expect(await eventually(() => newGridProcesses(before).length === 0, 5000)).to.equal(true);
    });
  });

  describe('a start-up that fails after the embedded grid was spawned', () => {
    /** Starts a proxy that must fail; returns why, once no grid process it spawned survives. */
    async function failedStart(config: ProxyConfig): Promise<unknown> {
      const before = new Set(gridProcesses().map((p) => p.pid));
      const { entries, result } = await withLogCaptured(() => startProxy(config));
      if (result.status === 'fulfilled') {
        await result.value.close();
        expect.fail('startProxy should have rejected');
      }
      const gridPid = loggedGridPid(entries);
      const gone = await eventually(() => !alive(gridPid) && newGridProcesses(before).length === 0, 5000);
      const left = newGridProcesses(before);
      // Should the check fail, do not leave the grid running past the test run (it stops its workers).
      if (alive(gridPid)) process.kill(gridPid, 'SIGTERM');
      expect(gone, `grid processes left: ${JSON.stringify(left)}`).to.equal(true);
      return result.reason;
    }

    it('rejects when the audit file is in use, and the embedded grid is gone', async () => {
      const subdir = await mkdtemp(join(dir, 'audit-in-use-'));
      const holder = await AuditLog.open(join(subdir, 'audit.jsonl'));
      try {
        const why = await failedStart(testConfig(subdir, { grid: EMBEDDED }));
        expect(String(why)).to.match(/in use by process \d+/);
      } finally {
        await holder.close();
      }
    });

    it('rejects when the audit file cannot be created, and the embedded grid is gone', async () => {
      const subdir = await mkdtemp(join(dir, 'audit-blocked-'));
      const notADirectory = join(subdir, 'plain-file');
      await writeFile(notADirectory, 'not a directory\n');
      const why = await failedStart(
        testConfig(subdir, { grid: EMBEDDED, audit: { file: join(notADirectory, 'audit.jsonl') } }),
      );
      expect(String(why)).to.match(/ENOTDIR|EEXIST/);
    });

    it('rejects when the SOAP port is taken, and releases the grid and the audit file', async () => {
      const subdir = await mkdtemp(join(dir, 'port-taken-'));
      const squatter = await freeListen(0);
      try {
        const address = squatter.address();
        const port = address && typeof address === 'object' ? address.port : 0;
        const why = await failedStart(testConfig(subdir, { grid: EMBEDDED, port }));
        expect(String(why)).to.contain('EADDRINUSE');
      } finally {
        await closeServer(squatter);
      }
      // The audit trail the failed start had opened was closed, so its lock is free again.
      const again = await AuditLog.open(join(subdir, 'audit.jsonl'));
      await again.close();
    });
  });
});
