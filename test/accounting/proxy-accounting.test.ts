/**
 * Accounting end to end (issue 15): proxy processes in front of the reference grid's cpu service,
 * signed clients (WS-Security, test PKI), a private RabbitMQ and the independent APEL-side
 * receiver (test/accounting/receiver.py). Every record is checked as the receiver parsed it.
 *
 * One broker and one grid serve every case; each case has its own spool and destination queue,
 * so cases cannot see each other's messages. The receiver exits when the broker goes away, so
 * the outage cases collect what it accepted before the outage and start a new one after.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { startProxy, type RunningProxy } from '../../src/app';
import { parseConfig } from '../../src/config';
import { log } from '../../src/log';
import {
  hasApelReceiverPeers,
  opensslSlashDn,
  startApelReceiver,
  type AcceptedRecord,
  type ApelReceiver,
} from '../helpers/apel-receiver';
import { hasCommand, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { sample, until } from '../helpers/poll';
import { spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from '../helpers/processes';
import { hasRabbitmq, rawStomp, startRabbitmq, type RabbitProcess } from '../helpers/rabbitmq';
import { op, pick } from '../helpers/soap-http';
import { faultCodeOf, signedEnvelope } from '../helpers/wss-client';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
const SITE = 'TEST-SITE-LON';
const CLUSTER = 'grid-a';
const SUBMIT_HOST = 'grid-a.bank.test';
const MACHINE = 'node17.grid.test';
const APP = 'pricing-app';
const CONSUMER = 'APPLICATION1';
const VO = 'rates';
const WSEN = 'http://schemas.xmlsoap.org/ws/2004/09/enumeration';
const SYM = 'http://soapproxy.symphony/v1';
/** Spins past a second, so that the grid reports CpuDuration ≥ 1 s. */
const SPIN = '1500';
/** The cpu service refuses this input: the task fails, and is accounted all the same. */
const FAILING = 'not-a-number';
const WAIT_MS = 30000;

interface Case {
  spoolDir: string;
  destination: string;
  config: Record<string, unknown>;
}

interface CaseOptions {
  format?: 'apel' | 'car';
  encryptToCertFile?: string;
  summaryIntervalMs?: number;
}

interface TaskRef {
  sessionId: string;
  taskId: string;
  /** What the cpu service was given: SPIN, a shorter spin, or FAILING. */
  input: string;
}

const jobId = (t: TaskRef): string => `${CLUSTER}:${t.sessionId}:${t.taskId}`;
const jobs = (r: ApelReceiver): AcceptedRecord[] => r.records().filter((x) => x.kind !== 'summary');
const taskIdsIn = (xml: string): string[] =>
  [...xml.matchAll(/<sym:taskId>([^<]+)<\/sym:taskId>/g)].map((m) => m[1]!);

/** An unlabelled sample (gauges such as ssp_accounting_queue_messages); -1 when absent. */
function plainSample(metrics: string, name: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : -1;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One element in dirq layout (8-hex minute dir, 14-hex name), written without our spool code. */
function dropElement(queueDir: string, text: string): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  const dir = (sec - (sec % 60)).toString(16).padStart(8, '0');
  const name = `${sec.toString(16).padStart(8, '0')}${((now % 1000) * 1000).toString(16).padStart(5, '0')}f`;
  mkdirSync(join(queueDir, dir), { recursive: true });
  writeFileSync(join(queueDir, dir, `${name}.tmp`), text);
  renameSync(join(queueDir, dir, `${name}.tmp`), join(queueDir, dir, name));
  return `${dir}/${name}`;
}

/** Element files (not locks or temp files) in a dirq queue directory. */
function elementsIn(queueDir: string): number {
  let n = 0;
  let dirs: string[];
  try {
    dirs = readdirSync(queueDir).filter((d) => /^[0-9a-f]{8}$/.test(d));
  } catch {
    return 0;
  }
  for (const d of dirs) n += readdirSync(join(queueDir, d)).filter((f) => /^[0-9a-f]{14}$/.test(f)).length;
  return n;
}

describe('accounting end to end: proxy, reference grid, RabbitMQ and an APEL-side receiver', function () {
  this.timeout(180000);
  let pki: TestPki;
  let rabbit: RabbitProcess;
  let grid: GridProcess;
  let dir: string;
  let passcodeFile: string;
  let signerDn: string;
  let clientDn: string;
  let caseSeq = 0;
  const proxies: ProxyProcess[] = [];
  const receivers: ApelReceiver[] = [];

  before(async function () {
    requirePeer(this, 'rabbitmq-server', hasRabbitmq(), 'apt-get install rabbitmq-server');
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install openssl');
    requirePeer(this, 'python3-stomp', hasApelReceiverPeers(), 'apt-get install python3-stomp');
    pki = await makeTestPki();
    signerDn = opensslSlashDn(pki.proxyRsa.certFile);
    clientDn = opensslSlashDn(pki.client.certFile);
    dir = mkdtempSync(join(tmpdir(), 'ssp-proxy-accounting-'));
    const gridFile = join(dir, 'grid.json');
    writeFileSync(
      gridFile,
      JSON.stringify({
        machine: MACHINE,
        applications: [{ name: APP, service: 'cpu', workers: 2, maxTaskRetries: 0 }],
      }),
    );
    [rabbit, grid] = await Promise.all([startRabbitmq(), spawnGrid(['--config', gridFile, '--port', '0'])]);
    passcodeFile = join(dir, 'broker-passcode');
    writeFileSync(passcodeFile, rabbit.passcode, { mode: 0o600 });
  });

  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.stop('SIGKILL')));
    await Promise.all(receivers.splice(0).map((r) => r.stop()));
  });

  after(async () => {
    await grid?.stop();
    await rabbit?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function newCase(o: CaseOptions = {}): Case {
    caseSeq += 1;
    const spoolDir = join(dir, `spool-${caseSeq}`);
    const destination = `/queue/acct-e2e-${process.pid}-${caseSeq}`;
    const config = {
      server: { host: '127.0.0.1', port: 0 },
      admin: { enabled: true, host: '127.0.0.1', port: 0 },
      log: { level: 'error' },
      security: {
        mode: 'wss',
        trust: { caFiles: [pki.ca.certFile] },
        responseSigning: { enabled: false },
        consumers: [{ id: CONSUMER, fingerprint256: new X509Certificate(pki.client.certPem).fingerprint256 }],
      },
      grid: {
        defaultCluster: CLUSTER,
        clusters: [
          {
            name: CLUSTER,
            urls: [`symphony://${CLUSTER}`],
            addresses: [grid.address],
            requestTimeoutMs: 10000,
          },
        ],
      },
      accounting: {
        enabled: true,
        site: SITE,
        format: o.format ?? 'apel',
        spoolDir,
        batchDelayMs: 200,
        clusters: [
          { name: CLUSTER, submitHost: SUBMIT_HOST, serviceLevelType: 'HEPscore23', serviceLevel: 12.5 },
        ],
        consumers: [{ consumer: CONSUMER, vo: VO }],
        summaries:
          o.summaryIntervalMs === undefined
            ? { enabled: false }
            : { enabled: true, intervalMs: o.summaryIntervalMs },
        signing: {
          certFile: pki.proxyRsa.certFile,
          keyFile: pki.proxyRsa.keyFile,
          ...(o.encryptToCertFile ? { encryptToCertFile: o.encryptToCertFile } : {}),
        },
        broker: {
          hosts: [{ host: '127.0.0.1', port: rabbit.stompPort, tls: false }],
          destination,
          login: rabbit.login,
          passcodeFile,
          vhost: '/',
          connectTimeoutMs: 2000,
          receiptTimeoutMs: 10000,
          reconnectInitialMs: 200,
          reconnectMaxMs: 1000,
        },
      },
    };
    return { spoolDir, destination, config };
  }

  async function proxyFor(c: Case): Promise<ProxyProcess> {
    const p = await startProxyProcess(c.config);
    proxies.push(p);
    return p;
  }

  /** A receiver on the case's destination, stopped after the test. */
  async function receiverFor(c: Case, decrypt = false): Promise<ApelReceiver> {
    const r = await startReceiver(c, decrypt);
    receivers.push(r);
    return r;
  }

  /** Stops a receiver before the test ends (its records are gone afterwards: copy them first). */
  async function retire(r: ApelReceiver): Promise<void> {
    receivers.splice(receivers.indexOf(r), 1);
    await r.stop();
  }

  /** Runs `during` with the broker halted, and starts the broker again whatever happens. */
  async function whileBrokerDown<T>(during: () => Promise<T>): Promise<T> {
    await rabbit.halt();
    try {
      return await during();
    } finally {
      await rabbit.start();
    }
  }

  function startReceiver(c: Case, decrypt = false): Promise<ApelReceiver> {
    return startApelReceiver({
      port: rabbit.stompPort,
      login: rabbit.login,
      passcode: rabbit.passcode,
      destination: c.destination,
      caFile: pki.ca.certFile,
      validDns: [signerDn],
      ...(decrypt ? { decrypt: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } } : {}),
    });
  }

  /** A WS-Security-signed call by client-a that must succeed; returns the reply. */
  async function call(url: string, body: string): Promise<string> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset=utf-8' },
      body: signedEnvelope(body, { certPem: pki.client.certPem, keyPem: pki.client.keyPem }),
      signal: AbortSignal.timeout(30000),
    });
    const text = await res.text();
    expect(faultCodeOf(text), text.slice(0, 1000)).to.equal(undefined);
    expect(res.status).to.equal(200);
    return text;
  }

  async function openSession(url: string): Promise<string> {
    const c = await call(
      url,
      op(
        'connect',
        `<sym:applicationName>${APP}</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>`,
      ),
    );
    const s = await call(
      url,
      op('createSession', `<sym:connectionId>${pick(c, 'connectionId')!}</sym:connectionId>`),
    );
    return pick(s, 'sessionId')!;
  }

  /** Submits cpu tasks (milliseconds to spin, or FAILING) and waits until all have finished. */
  async function runTasks(url: string, sessionId: string, inputs: string[]): Promise<TaskRef[]> {
    const tasks = inputs
      .map(
        (i) =>
          `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
      )
      .join('');
    const sent = await call(
      url,
      op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}`),
    );
    const ids = taskIdsIn(sent);
    expect(ids).to.have.length(inputs.length);
    let status = '';
    const finished = await until(async () => {
      status = await call(url, op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`));
      return Number(pick(status, 'doneTasks')) + Number(pick(status, 'failedTasks')) >= inputs.length;
    }, WAIT_MS);
    expect(finished, `tasks did not finish: ${status.slice(0, 800)}`).to.equal(true);
    return ids.map((taskId, i) => ({ sessionId, taskId, input: inputs[i]! }));
  }

  /** fetchTaskOutput, leased or not; returns the task ids it handed out (acknowledged if leased). */
  async function fetchOutputs(
    url: string,
    sessionId: string,
    countMax: number,
    leased: boolean,
  ): Promise<string[]> {
    const reply = await call(
      url,
      op(
        'fetchTaskOutput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>${countMax}</sym:countMax>` +
          `<sym:timeoutMillis>5000</sym:timeoutMillis>${leased ? '<sym:leaseMillis>60000</sym:leaseMillis>' : ''}`,
      ),
    );
    const token = pick(reply, 'deliveryToken');
    if (leased) {
      expect(token, 'a leased fetch carries a delivery token').to.be.a('string');
      await call(
        url,
        op(
          'acknowledgeTaskOutput',
          `<sym:sessionId>${sessionId}</sym:sessionId><sym:deliveryToken>${token!}</sym:deliveryToken>`,
        ),
      );
    }
    return taskIdsIn(reply);
  }

  /** Enumerate over the session's outputs, then one Pull; returns the task ids of that page. */
  async function pullOutputs(url: string, sessionId: string): Promise<string[]> {
    const resource = `${url}/sessions/${sessionId}`;
    const e = await call(
      resource,
      `<wsen:Enumerate xmlns:wsen="${WSEN}"><wsen:Expires>PT5M</wsen:Expires></wsen:Enumerate>`,
    );
    const cursor = /<sym:EnumerationCursor[^>]*>([^<]+)<\/sym:EnumerationCursor>/.exec(e)?.[1];
    expect(cursor, e.slice(0, 800)).to.be.a('string');
    const p = await call(
      resource,
      `<wsen:Pull xmlns:wsen="${WSEN}"><wsen:EnumerationContext><sym:EnumerationCursor xmlns:sym="${SYM}">${cursor!}</sym:EnumerationCursor></wsen:EnumerationContext><wsen:MaxElements>10</wsen:MaxElements></wsen:Pull>`,
    );
    return taskIdsIn(p);
  }

  /** Runs the tasks and fetches every output unleased: the simplest way to make records. */
  async function recordTasks(url: string, inputs: string[]): Promise<TaskRef[]> {
    const sessionId = await openSession(url);
    const tasks = await runTasks(url, sessionId, inputs);
    const got: string[] = [];
    for (let i = 0; i < 5 && got.length < tasks.length; i++)
      got.push(...(await fetchOutputs(url, sessionId, tasks.length, false)));
    expect(got).to.have.members(tasks.map((t) => t.taskId));
    return tasks;
  }

  async function metricsOf(adminUrl: string): Promise<string> {
    return (await fetch(`${adminUrl}/metrics`)).text();
  }

  /** The fields the issue asks for, as the receiver parsed them. */
  function expectJobRecord(rec: AcceptedRecord | undefined, t: TaskRef): void {
    expect(rec, `no record for ${jobId(t)}`).not.to.equal(undefined);
    const f = rec!.fields;
    expect(rec!.signer).to.equal(signerDn);
    expect(f).to.include({
      Site: SITE,
      LocalJobId: jobId(t),
      GlobalUserName: clientDn,
      VO,
      Queue: APP,
      SubmitHost: SUBMIT_HOST,
      MachineName: MACHINE,
      Processors: 1,
      ServiceLevelType: 'HEPscore23',
      ServiceLevel: 12.5,
    });
    expect(f['StartTime'] as number).to.be.at.most(f['EndTime'] as number);
    expect(f['WallDuration']).to.be.a('number');
    expect(f['CpuDuration']).to.be.a('number');
    if (t.input === SPIN) {
      expect(f['WallDuration'] as number, 'WallDuration of a 1.5 s task').to.be.at.least(1);
      expect(f['CpuDuration'] as number, 'CpuDuration of a 1.5 s spin').to.be.at.least(1);
    }
  }

  /** Waits for exactly the tasks' records (and nothing else) at the receiver(s), no rejects, no duplicates. */
  async function expectExactlyOnce(
    all: () => AcceptedRecord[],
    tasks: TaskRef[],
    rs: ApelReceiver[],
  ): Promise<void> {
    const arrived = await until(() => all().length >= tasks.length, WAIT_MS, 100);
    expect(arrived, `records arrived: ${JSON.stringify(all().map((x) => x.fields['LocalJobId']))}`).to.equal(
      true,
    );
    expect(rs.flatMap((r) => r.rejects())).to.deep.equal([]);
    const ids = all().map((x) => x.fields['LocalJobId']);
    expect(ids).to.have.members(tasks.map(jobId));
    for (const t of tasks)
      expectJobRecord(
        all().find((x) => x.fields['LocalJobId'] === jobId(t)),
        t,
      );
  }

  /**
   * After the proxy has drained its queue, a marker sent to the same destination is consumed after
   * everything before it: then nothing else (no late duplicate) can still be on its way.
   */
  async function drainedThroughMarker(c: Case, r: ApelReceiver, adminUrl: string): Promise<void> {
    let last = '';
    const drained = await until(async () => {
      last = await metricsOf(adminUrl);
      return (
        plainSample(last, 'ssp_accounting_queue_messages') === 0 &&
        plainSample(last, 'ssp_accounting_staged_elements') === 0
      );
    }, WAIT_MS);
    expect(
      drained,
      last
        .split('\n')
        .filter((l) => l.startsWith('ssp_accounting'))
        .join('\n'),
    ).to.equal(true);
    const marker = `marker-${Date.now()}`;
    const sent = await rawStomp(rabbit.stompPort, {
      login: rabbit.login,
      passcode: rabbit.passcode,
      send: { destination: c.destination, headers: { 'empa-id': marker }, body: 'unsigned marker' },
    });
    expect(sent, 'the marker was not receipted').to.equal(true);
    expect(await until(() => r.rejects().some((x) => x.empa_id === marker), WAIT_MS, 100)).to.equal(true);
  }

  describe('one proxy, APEL format', () => {
    let c: Case;
    let proxy: ProxyProcess;
    let receiver: ApelReceiver;
    let tasks: TaskRef[] = [];

    before(async () => {
      c = newCase({ summaryIntervalMs: 1000 });
      // Shared by the cases below: not in the lists that afterEach empties.
      receiver = await startReceiver(c);
      proxy = await startProxyProcess(c.config);
    });

    after(async () => {
      await proxy?.stop('SIGKILL');
      await receiver?.stop();
    });

    it('leased, unleased and enumerated fetches each give exactly one record, failed tasks too', async () => {
      const sessionId = await openSession(proxy.url);
      tasks = await runTasks(proxy.url, sessionId, [SPIN, '50', '50', FAILING]);
      const leased = await fetchOutputs(proxy.url, sessionId, 1, true);
      const unleased = await fetchOutputs(proxy.url, sessionId, 1, false);
      const pulled = await pullOutputs(proxy.url, sessionId);
      expect(leased, 'leased fetch').to.have.length(1);
      expect(unleased, 'unleased fetch').to.have.length(1);
      expect(pulled, 'enumeration Pull').to.have.length(2);
      expect([...leased, ...unleased, ...pulled]).to.have.members(tasks.map((t) => t.taskId));

      await expectExactlyOnce(() => jobs(receiver), tasks, [receiver]);
      expect(jobs(receiver).every((x) => x.kind === 'job')).to.equal(true);
      await drainedThroughMarker(c, receiver, proxy.adminUrl!);
      expect(jobs(receiver)).to.have.length(tasks.length);
      expect(receiver.duplicates().filter((x) => x.kind === 'job')).to.deep.equal([]);
    });

    it('a summary per consumer × application equals the sums of its job records', async () => {
      expect(tasks, 'runs after the records case').to.have.length(4);
      const records = jobs(receiver);
      const sum = (k: string): number => records.reduce((n, x) => n + (x.fields[k] as number), 0);
      const ends = records.map((x) => x.fields['EndTime'] as number);
      let latest: AcceptedRecord | undefined;
      const found = await until(
        () => {
          latest = receiver
            .records()
            .filter((x) => x.kind === 'summary' && x.fields['GlobalUserName'] === clientDn)
            .pop();
          return latest?.fields['NumberOfJobs'] === records.length;
        },
        WAIT_MS,
        200,
      );
      expect(found, `latest summary: ${JSON.stringify(latest?.fields)}`).to.equal(true);
      const now = new Date();
      expect(latest!.fields).to.include({
        Site: SITE,
        Month: now.getUTCMonth() + 1,
        Year: now.getUTCFullYear(),
        VO,
        SubmitHost: `${SUBMIT_HOST}/${APP}`,
        NumberOfJobs: records.length,
        WallDuration: sum('WallDuration'),
        CpuDuration: sum('CpuDuration'),
        EarliestEndTime: Math.min(...ends),
        LatestEndTime: Math.max(...ends),
        ServiceLevelType: 'HEPscore23',
      });
      expect(latest!.signer).to.equal(signerDn);
    });

    it('a second proxy on the same spool directory refuses to start, naming the spool', async () => {
      const file = join(dir, 'second-proxy.json');
      writeFileSync(file, JSON.stringify({ ...c.config, audit: { enabled: false } }));
      const r = await cli(['serve', '--config', file]);
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.include(`the accounting spool ${c.spoolDir} is in use by another proxy`);
      expect(r.stdout).not.to.match(/listening on/);
      // The first proxy still owns it and goes on accounting.
      const more = await recordTasks(proxy.url, ['50']);
      expect(
        await until(() => jobs(receiver).some((x) => x.fields['LocalJobId'] === jobId(more[0]!)), WAIT_MS),
      ).to.equal(true);
    });
  });

  it('format car: the receiver accepts CAR records with the same fields', async () => {
    const c = newCase({ format: 'car' });
    const r = await receiverFor(c);
    const p = await proxyFor(c);
    const tasks = await recordTasks(p.url, [SPIN, FAILING]);
    await expectExactlyOnce(() => r.records(), tasks, [r]);
    expect(r.records().every((x) => x.kind === 'car')).to.equal(true);
  });

  it('encryptToCertFile: messages are encrypted; the receiver with the key decrypts and verifies them', async () => {
    const c = newCase({ encryptToCertFile: pki.server.certFile });
    const p = await proxyFor(c);
    // A receiver without the key proves that what travels is encrypted.
    const blind = await receiverFor(c, false);
    await recordTasks(p.url, ['50']);
    expect(await until(() => blind.rejects().length > 0, WAIT_MS, 100)).to.equal(true);
    expect(blind.rejects()[0]!.reason).to.match(/encrypted message, but this receiver has no decryption key/);
    await retire(blind);

    const r = await receiverFor(c, true);
    const tasks = await recordTasks(p.url, [SPIN]);
    await expectExactlyOnce(() => r.records(), tasks, [r]);
  });

  it('broker down: ready and serving, records wait on disk; broker back: all arrive once, metrics follow', async () => {
    const c = newCase();
    const before = await receiverFor(c);
    const p = await proxyFor(c);
    const first = await recordTasks(p.url, ['50']);
    expect(await before.waitFor(1, WAIT_MS)).to.equal(true);
    const sentBefore = sample(await metricsOf(p.adminUrl!), 'ssp_accounting_messages_total', 'result="sent"');
    expect(sentBefore).to.be.at.least(1);
    const delivered = [...before.records()];
    await retire(before);

    const during = await whileBrokerDown(async () => {
      let ready = { status: 0, text: '' };
      const unreachable = await until(async () => {
        const res = await fetch(`${p.adminUrl!}/readyz`);
        ready = { status: res.status, text: await res.text() };
        return /^accounting: broker unreachable/m.test(ready.text);
      }, WAIT_MS);
      expect(unreachable, ready.text).to.equal(true);
      expect(ready.status).to.equal(200);
      expect(ready.text).to.match(/^ready\n/);

      const tasks = await recordTasks(p.url, [SPIN, '50', FAILING]);
      let metrics = '';
      const waiting = await until(async () => {
        metrics = await metricsOf(p.adminUrl!);
        return plainSample(metrics, 'ssp_accounting_queue_messages') >= 1;
      }, WAIT_MS);
      expect(waiting, 'records are batched into messages that wait on disk').to.equal(true);
      expect(elementsIn(join(c.spoolDir, 'outgoing'))).to.be.at.least(1);
      expect(sample(metrics, 'ssp_accounting_messages_total', 'result="sent"')).to.equal(sentBefore);
      return tasks;
    });
    const after = await receiverFor(c);
    await expectExactlyOnce(() => [...delivered, ...after.records()], [...first, ...during], [after]);
    await drainedThroughMarker(c, after, p.adminUrl!);
    expect(after.records()).to.have.length(during.length);
    const metrics = await metricsOf(p.adminUrl!);
    expect(plainSample(metrics, 'ssp_accounting_queue_messages')).to.equal(0);
    expect(sample(metrics, 'ssp_accounting_messages_total', 'result="sent"')).to.be.above(sentBefore);
    expect(plainSample(metrics, 'ssp_accounting_broker_connected')).to.equal(1);
  });

  it('SIGKILL with messages on disk, broker down: after both restart, every record arrives exactly once', async () => {
    const c = newCase();
    const p = await proxyFor(c);
    const tasks = await whileBrokerDown(async () => {
      const made = await recordTasks(p.url, [SPIN, '50', FAILING]);
      const queued = await until(() => elementsIn(join(c.spoolDir, 'outgoing')) >= 1, WAIT_MS);
      expect(queued, 'a message was written to outgoing/').to.equal(true);
      await p.stop('SIGKILL');
      return made;
    });
    const r = await receiverFor(c);
    const again = await proxyFor(c);
    await expectExactlyOnce(() => r.records(), tasks, [r]);
    await drainedThroughMarker(c, r, again.adminUrl!);
    expect(r.records()).to.have.length(tasks.length);
    expect(r.duplicates()).to.deep.equal([]);
  });

  describe('a corrupt element in outgoing/ (proxy in this process, to read its log)', () => {
    let c: Case;
    let proxy: RunningProxy | undefined;
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
    const consoles = (): winston.transport[] =>
      log.transports.filter((t) => t instanceof winston.transports.Console);
    let level = '';

    before(async () => {
      c = newCase();
      level = log.level;
      log.level = 'error';
      consoles().forEach((t) => (t.silent = true));
      log.add(sink);
      proxy = await startProxy(parseConfig({ ...c.config, audit: { enabled: false } }));
    });

    after(async () => {
      await proxy?.close();
      log.remove(sink);
      consoles().forEach((t) => (t.silent = false));
      if (level) log.level = level;
    });

    it('is set aside in rejected/ with a log line and a metric; the CLI lists, resends and purges it', async () => {
      const spool = ['--spool', c.spoolDir];
      const rejectedCount = async (): Promise<number> =>
        sample(await metricsOf(proxy!.adminUrl!), 'ssp_accounting_messages_total', 'result="rejected"');
      const cut = 'APEL-individual-job-message: v0.3\nSite: TEST-SITE-LON\nLocalJobId: grid-a:s1:t1\nWallDu';
      const id = dropElement(join(c.spoolDir, 'outgoing'), cut);

      expect(await until(async () => (await rejectedCount()) === 1, WAIT_MS)).to.equal(true);
      const line = entries.find(
        (e) => e['message'] === 'accounting: a queued element is corrupt and was set aside',
      );
      expect(line, JSON.stringify(entries)).not.to.equal(undefined);
      expect(line!['element']).to.equal(id);
      expect(line!['why']).to.match(/cut short/);
      expect(line!['hint']).to.match(/accounting resend/);
      expect(plainSample(await metricsOf(proxy!.adminUrl!), 'ssp_accounting_rejected_messages')).to.equal(1);
      expect(elementsIn(join(c.spoolDir, 'outgoing'))).to.equal(0);

      const listed = await cli(['accounting', 'list', '--rejected', ...spool]);
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout).to.match(/^1 rejected messages/m);
      const rejectedId = /^([0-9a-f]{8}\/[0-9a-f]{14})\t/m.exec(listed.stdout)?.[1];
      expect(rejectedId, listed.stdout).to.be.a('string');

      // Back to outgoing/: still corrupt, so the proxy sets it aside a second time.
      const resent = await cli(['accounting', 'resend', '--rejected', ...spool]);
      expect(resent.code, resent.stderr).to.equal(0);
      expect(resent.stdout).to.include(`${rejectedId!} → outgoing`);
      expect(resent.stdout).to.include('1 put back for sending');
      expect(await until(async () => (await rejectedCount()) === 2, WAIT_MS)).to.equal(true);

      const unconfirmed = await cli(['accounting', 'purge', '--rejected', ...spool]);
      expect(unconfirmed.code).to.equal(1);
      expect(unconfirmed.stdout).to.match(/add --yes/);
      const purged = await cli(['accounting', 'purge', '--rejected', '--yes', ...spool]);
      expect(purged.code, purged.stderr).to.equal(0);
      expect(purged.stdout).to.include('1 deleted');
      const empty = await cli(['accounting', 'list', '--rejected', ...spool]);
      expect(empty.stdout).to.match(/^0 rejected messages/m);
      expect(elementsIn(join(c.spoolDir, 'rejected'))).to.equal(0);
    });
  });
});
