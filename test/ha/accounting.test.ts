/**
 * Accounting across a farm, the acceptance test: three proxy processes behind HAProxy
 * (docs/haproxy.cfg as shipped) share one redis-server and one grid; each has accounting on with
 * its own spool, signs with an RSA certificate and sends to one private RabbitMQ, where the
 * independent APEL-side receiver (test/accounting/receiver.py) verifies and parses every message.
 *
 * 5,000 tasks go in and their outputs come out through HAProxy (leased fetches, each page
 * acknowledged by the next fetch) while the broker is halted for 30 s and, during that outage,
 * the proxy with the most unsent records is SIGKILLed, then restarted on the same spool. In the
 * end the receiver must hold exactly one record per task (after APEL's dedupe by Site, LocalJobId
 * and EndTime), a copy only ever from one message sent again under its own empa-id, every spool
 * must be empty, and the month's summary must count 5,000 jobs.
 */
import { decodeStaged } from '../../src/accounting/staged';
import { localJobId } from '../../src/accounting/usage';
import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { spoolQueues } from '../../src/components/accounting';
import {
  hasApelReceiverPeers,
  startApelReceiver,
  type AcceptedRecord,
  type ApelReceiver,
} from '../helpers/apel-receiver';
import { freePort, hasHaproxy, startHaproxy, type HaproxyProcess } from '../helpers/haproxy';
import { hasCommand, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { sample, until } from '../helpers/poll';
import { spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from '../helpers/processes';
import { hasRabbitmq, startRabbitmq, type RabbitProcess } from '../helpers/rabbitmq';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';
import { envelope11, op, openSessionAt, pick, postSoap } from '../helpers/soap-http';

const run = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
const WSA = 'http://www.w3.org/2005/08/addressing';

const NAMES = ['proxy1', 'proxy2', 'proxy3'];
const SITE = 'TEST-SITE';
const CLUSTER = 'default';
const SESSIONS = 5;
const PER_SESSION = 1000;
const TASKS = SESSIONS * PER_SESSION;
const BATCH = 100;
const OUTAGE_MS = 30_000;
const LEASE_MS = 10_000;
/** Backstop for the whole grid side (submits and fetches); the run takes about a minute. */
const GRID_BOUND_MS = 240_000;
/** Attempts per SOAP call when HAProxy itself could not reach a proxy (a kill in progress). */
const CALL_ATTEMPTS = 10;

/** One client session: what went in, what came out. */
interface SessionRun {
  sessionId: string;
  submitted: string[];
  received: Set<string>;
}

interface CallTrouble {
  at: number;
  operation: string;
  what: string;
}

/** Slash-form subject, as SSM and the receiver compare signers. */
function slashDn(certFile: string): string {
  const out = execFileSync('openssl', ['x509', '-noout', '-subject', '-nameopt', 'compat', '-in', certFile]);
  return out
    .toString('ascii')
    .trim()
    .replace(/^subject=\s*/, '');
}

function all(xml: string, local: string): string[] {
  const re = new RegExp(`<(?:[\\w.-]+:)?${local}>([^<]*)</(?:[\\w.-]+:)?${local}>`, 'g');
  return [...xml.matchAll(re)].map((m) => m[1]!);
}

/** A MessageID makes a replayed fetch (HAProxy retry, or ours) get the same outputs and token. */
function withMessageId(body: string): string {
  return envelope11(body).replace(
    '<s:Body>',
    `<s:Header><wsa:MessageID xmlns:wsa="${WSA}">urn:uuid:${randomUUID()}</wsa:MessageID></s:Header><s:Body>`,
  );
}

/**
 * SOAP calls through HAProxy. A SOAP fault (HTTP 500) is an answer and is kept as a failure; a
 * refused or cut connection, 502 or 503 is HAProxy failing to reach a proxy, which only a kill
 * explains here, and is retried with the same request (idempotent by clientKey or MessageID).
 */
class FarmClient {
  readonly faults: CallTrouble[] = [];
  readonly retries: CallTrouble[] = [];

  constructor(private readonly front: () => string) {}

  async call(operation: string, envelope: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      let what: string;
      try {
        const r = await postSoap(this.front(), envelope);
        if (r.status === 200) return r.text;
        what = `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
        if (r.status === 500) {
          this.faults.push({ at: Date.now(), operation, what });
          throw new Error(`SOAP fault from ${operation}: ${what}`);
        }
      } catch (e) {
        if (e instanceof Error && e.message.startsWith('SOAP fault')) throw e;
        what = e instanceof Error ? e.message : String(e);
      }
      this.retries.push({ at: Date.now(), operation, what });
      if (attempt >= CALL_ATTEMPTS) throw new Error(`${operation} failed ${attempt} times; last: ${what}`);
      await sleep(250);
    }
  }
}

/** Job records waiting in a spool: in outgoing messages (by element id) and in staged files. */
interface SpoolHolding {
  jobMessages: string[];
  summaryMessages: string[];
  outgoingJobIds: string[];
  stagedJobIds: string[];
}

async function spoolHolding(dir: string): Promise<SpoolHolding> {
  const q = spoolQueues(dir);
  const read = async (queue: typeof q.outgoing, id: string): Promise<string | undefined> => {
    // Lock like the CLI does, so that a running proxy never sends what is being read.
    if (!(await queue.lock(id))) return undefined;
    try {
      return (await queue.get(id)).toString('utf8');
    } finally {
      await queue.unlock(id);
    }
  };
  const held: SpoolHolding = { jobMessages: [], summaryMessages: [], outgoingJobIds: [], stagedJobIds: [] };
  for (const id of await q.outgoing.list()) {
    const text = await read(q.outgoing, id);
    if (text?.startsWith('APEL-summary-job-message')) held.summaryMessages.push(id);
    if (!text?.startsWith('APEL-individual-job-message')) continue;
    held.jobMessages.push(id);
    held.outgoingJobIds.push(...[...text.matchAll(/^LocalJobId: (.*)$/gm)].map((m) => m[1]!));
  }
  // The killed proxy's open segment counts too: its appends reached the file.
  await q.journal.init();
  const segments = [...(await q.journal.sealed())];
  for (const segment of segments) {
    for (const element of (await q.journal.read(segment)).elements) {
      const { session, tasks } = decodeStaged(element);
      for (const t of tasks) held.stagedJobIds.push(localJobId(session.cluster, session.sessionId, t.taskId));
    }
  }
  return held;
}

/** The last line of `accounting list`: "N outgoing messages; M staged record segments in DIR". */
async function cliList(dir: string, rejected = false): Promise<string> {
  const args = [CLI, 'accounting', 'list', '--spool', dir, ...(rejected ? ['--rejected'] : [])];
  const { stdout } = await run(process.execPath, args, { timeout: 30_000 });
  return stdout.trim().split('\n').at(-1) ?? '';
}

function jobKey(r: AcceptedRecord): string {
  return JSON.stringify([r.fields['Site'], r.fields['LocalJobId'], r.fields['EndTime']]);
}

/** Copies of one key: identical records from one message received again, or a failure. */
function duplicateReport(jobs: AcceptedRecord[]): {
  extraCopies: number;
  resentMessages: number;
  differentRecords: string[];
  differentMessages: string[];
} {
  const byKey = new Map<string, AcceptedRecord[]>();
  for (const r of jobs) byKey.set(jobKey(r), [...(byKey.get(jobKey(r)) ?? []), r]);
  const resent = new Set<string>();
  const differentRecords: string[] = [];
  const differentMessages: string[] = [];
  let extraCopies = 0;
  for (const [key, copies] of byKey) {
    if (copies.length < 2) continue;
    extraCopies += copies.length - 1;
    if (new Set(copies.map((c) => JSON.stringify(c.fields))).size > 1) differentRecords.push(key);
    const empaIds = new Set(copies.map((c) => c.empa_id));
    if (empaIds.size > 1) differentMessages.push(`${key} from ${[...empaIds].join(', ')}`);
    else resent.add(copies[0]!.empa_id ?? '(none)');
  }
  return { extraCopies, resentMessages: resent.size, differentRecords, differentMessages };
}

/**
 * A summary replaces the one before it for its group and month, so what counts is the last one
 * received per group; `stale` names the messages (empa-ids) of summaries that arrived after one
 * with more jobs, i.e. that replaced a newer total with an older one.
 */
function lastSummaries(records: AcceptedRecord[]): { jobs: number; groups: number; stale: string[] } {
  const last = new Map<string, number>();
  const stale: string[] = [];
  for (const r of records) {
    if (r.kind !== 'summary') continue;
    const f = r.fields;
    const group = JSON.stringify([
      f['Site'],
      f['Year'],
      f['Month'],
      f['SubmitHost'],
      f['GlobalUserName'],
      f['VO'],
      f['VOGroup'],
      f['VORole'],
      f['ServiceLevelType'],
      f['ServiceLevel'],
      f['Processors'],
      f['NodeCount'],
    ]);
    const jobs = Number(f['NumberOfJobs']);
    if (jobs < (last.get(group) ?? 0)) stale.push(r.empa_id ?? '(none)');
    last.set(group, jobs);
  }
  return { jobs: [...last.values()].reduce((a, b) => a + b, 0), groups: last.size, stale };
}

interface ReadyzSample {
  name: string;
  at: number;
  status: number;
  unreachable: boolean;
}

describe('ha: accounting across three proxies behind HAProxy, broker down 30 s, one proxy killed', function () {
  this.timeout(480_000);
  let pki: TestPki;
  let redis: RedisProcess | undefined;
  let rabbit: RabbitProcess | undefined;
  let grid: GridProcess | undefined;
  let haproxy: HaproxyProcess | undefined;
  let receiver: ApelReceiver | undefined;
  let signerDn = '';
  let passcodeFile = '';
  const destination = `/queue/ha-accounting-${process.pid}`;
  const ports: { port: number; adminPort: number }[] = [];
  const spools: string[] = [];
  const proxies: (ProxyProcess | undefined)[] = [];
  const front = (): string => `${haproxy!.url}/symphony`;
  const client = new FarmClient(front);

  function config(i: number): Record<string, unknown> {
    return {
      server: { host: '127.0.0.1', port: ports[i]!.port },
      admin: { enabled: true, host: '127.0.0.1', port: ports[i]!.adminPort },
      security: { mode: 'off' },
      store: { kind: 'redis', redis: { url: redis!.url, keyPrefix: 'haacct:' } },
      log: { level: 'error' },
      // A killed proxy's unacknowledged grid outputs come back to the others within seconds.
      reliability: { gridHoldMs: 5000 },
      grid: {
        defaultCluster: CLUSTER,
        clusters: [{ name: CLUSTER, urls: ['grid-a'], addresses: [grid!.address], requestTimeoutMs: 5000 }],
      },
      accounting: {
        enabled: true,
        site: SITE,
        format: 'apel',
        spoolDir: spools[i],
        recordsPerMessage: 1000,
        batchDelayMs: 500,
        clusters: [
          { name: CLUSTER, submitHost: 'grid-a.test', serviceLevelType: 'HEPscore23', serviceLevel: 12.5 },
        ],
        // Security is off: every session belongs to the anonymous consumer.
        consumers: [{ consumer: 'anonymous', vo: 'rates', localUserId: 'svc-rates' }],
        summaries: { intervalMs: 2000 },
        signing: { signer: 'forge', certFile: pki.proxyRsa.certFile, keyFile: pki.proxyRsa.keyFile },
        broker: {
          hosts: [{ host: '127.0.0.1', port: rabbit!.stompPort, tls: false }],
          destination,
          login: rabbit!.login,
          passcodeFile,
          vhost: '/',
          receiptTimeoutMs: 3000,
          reconnectInitialMs: 200,
          reconnectMaxMs: 2000,
        },
      },
    };
  }

  before(async function () {
    requirePeer(this, 'haproxy', hasHaproxy(), 'apt-get install haproxy');
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    requirePeer(this, 'rabbitmq-server', hasRabbitmq(), 'apt-get install rabbitmq-server');
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install openssl');
    requirePeer(this, 'python3-stomp', hasApelReceiverPeers(), 'apt-get install python3-stomp');
    pki = await makeTestPki();
    signerDn = slashDn(pki.proxyRsa.certFile);
    const dir = mkdtempSync(join(tmpdir(), 'ssp-ha-accounting-'));
    rabbit = await startRabbitmq();
    console.log(`      (rabbitmq-server started in ${rabbit.startMs} ms)`);
    passcodeFile = join(dir, 'broker-passcode');
    writeFileSync(passcodeFile, rabbit.passcode, { mode: 0o600 });
    receiver = await startApelReceiver({
      port: rabbit.stompPort,
      login: rabbit.login,
      passcode: rabbit.passcode,
      destination,
      caFile: pki.ca.certFile,
      validDns: [signerDn],
    });
    redis = await startRedis();
    grid = await spawnGrid(['--port', '0']);
    for (let i = 0; i < 3; i++) {
      ports.push({ port: await freePort(), adminPort: await freePort() });
      spools.push(join(dir, `spool-${NAMES[i]}`));
    }
    haproxy = await startHaproxy({ backends: NAMES.map((name, i) => ({ name, ...ports[i]! })) });
    for (let i = 0; i < 3; i++) proxies.push(await startProxyProcess(config(i)));
    for (const name of NAMES) await haproxy.waitForState(name, 'UP', 20_000);
  });

  after(async () => {
    await haproxy?.stop();
    for (const p of proxies) await p?.stop('SIGKILL');
    await grid?.stop();
    await receiver?.stop();
    await rabbit?.stop();
    await redis?.stop();
  });

  async function submit(s: SessionRun, count: number): Promise<void> {
    for (let done = 0; done < count; done += BATCH) {
      const n = Math.min(BATCH, count - done);
      let tasks = '';
      for (let i = 0; i < n; i++)
        tasks += `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>t-${s.submitted.length + i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
      const body = `<sym:sessionId>${s.sessionId}</sym:sessionId>${tasks}<sym:clientKey>${randomUUID()}</sym:clientKey>`;
      const text = await client.call('sendTaskInputBatch', envelope11(op('sendTaskInputBatch', body)));
      const ids = all(text, 'taskId');
      expect(ids, text.slice(0, 600)).to.have.length(n);
      s.submitted.push(...ids);
    }
  }

  /** `count` more tasks per session, the sessions side by side. */
  async function submitPhase(runs: SessionRun[], count: number): Promise<void> {
    await Promise.all(runs.map((s) => submit(s, count)));
  }

  /** Leased pages until every task of the session came back; the last page acknowledged on its own. */
  async function fetchAll(s: SessionRun, deadline: number): Promise<void> {
    let token: string | undefined;
    while (s.received.size < PER_SESSION && Date.now() < deadline) {
      const body =
        `<sym:sessionId>${s.sessionId}</sym:sessionId><sym:countMax>${BATCH}</sym:countMax>` +
        `<sym:timeoutMillis>1000</sym:timeoutMillis><sym:leaseMillis>${LEASE_MS}</sym:leaseMillis>` +
        (token ? `<sym:acknowledge>${token}</sym:acknowledge>` : '');
      const text = await client.call('fetchTaskOutput', withMessageId(op('fetchTaskOutput', body)));
      for (const id of all(text, 'taskId')) s.received.add(id);
      token = pick(text, 'deliveryToken');
      expect(token, text.slice(0, 600)).to.be.a('string');
    }
    const ack = `<sym:sessionId>${s.sessionId}</sym:sessionId><sym:deliveryToken>${token}</sym:deliveryToken>`;
    await client.call('acknowledgeTaskOutput', withMessageId(op('acknowledgeTaskOutput', ack)));
  }

  /** Polls /readyz of every live proxy until stopped; a proxy being killed drops out first. */
  function sampleReadyz(): { samples: ReadyzSample[]; stop: () => Promise<void> } {
    const samples: ReadyzSample[] = [];
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await Promise.all(
          proxies.map(async (p, i) => {
            if (!p?.adminUrl) return;
            let status = 0;
            let body = '';
            try {
              const r = await fetch(`${p.adminUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
              status = r.status;
              body = await r.text();
            } catch {
              /* status 0: counted below, unless this proxy was being killed */
            }
            if (proxies[i] !== p) return;
            samples.push({
              name: NAMES[i]!,
              at: Date.now(),
              status,
              unreachable: /^accounting: broker unreachable/m.test(body),
            });
          }),
        );
        await sleep(500);
      }
    })();
    return {
      samples,
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  /**
   * The victim: a proxy whose spool holds job records not yet sent (waits until one does). The
   * summary writer (it queues summaries too) is preferred, so that its lease must move as well.
   */
  async function pickVictim(): Promise<{ index: number; summaryWriter: boolean }> {
    let chosen: { index: number; summaryWriter: boolean } | undefined;
    const preferWriterUntil = Date.now() + 10_000;
    const found = await until(
      async () => {
        const held: SpoolHolding[] = [];
        for (const dir of spools) held.push(await spoolHolding(dir));
        const candidates = [0, 1, 2].filter((i) => held[i]!.outgoingJobIds.length > 0);
        if (candidates.length === 0) return false;
        const writer = candidates.find((i) => held[i]!.summaryMessages.length > 0);
        if (writer === undefined && Date.now() < preferWriterUntil) return false;
        const most = candidates.reduce((a, b) =>
          held[b]!.outgoingJobIds.length > held[a]!.outgoingJobIds.length ? b : a,
        );
        chosen = { index: writer ?? most, summaryWriter: writer !== undefined };
        return true;
      },
      30_000,
      250,
    );
    expect(found, 'no proxy queued job records while the broker was down').to.equal(true);
    return chosen!;
  }

  /** Records that a live proxy found already claimed by another (the grid handed an output out twice). */
  async function claimedElsewhere(): Promise<number> {
    let n = 0;
    for (const p of proxies) {
      if (!p?.adminUrl) continue;
      const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
      n += sample(text, 'ssp_accounting_records_total', 'result="duplicate"');
    }
    return n;
  }

  it(`${TASKS} tasks while the broker is down 30 s and a proxy is SIGKILLed: one valid record per task`, async () => {
    const runs: SessionRun[] = [];
    for (let i = 0; i < SESSIONS; i++)
      runs.push({ sessionId: (await openSessionAt(front())).sessionId, submitted: [], received: new Set() });
    const received = (): number => runs.reduce((n, s) => n + s.received.size, 0);
    const fetching = Promise.all(runs.map((s) => fetchAll(s, Date.now() + GRID_BOUND_MS)));
    fetching.catch(() => undefined); // awaited below; a failure before then must not go unhandled

    // 1. Broker up: records flow.
    await submitPhase(runs, 300);
    expect(await until(() => received() >= 1000, 60_000), `outputs fetched: ${received()}`).to.equal(true);
    expect(
      await until(() => receiver!.records().length >= 500, 60_000),
      'records before the outage',
    ).to.equal(true);

    // 2. Broker halted for 30 s (data kept); the grid path goes on; a proxy holding records dies.
    await rabbit!.halt();
    const downAt = Date.now();
    const readyz = sampleReadyz();
    await submitPhase(runs, 300);
    const { index: victim, summaryWriter } = await pickVictim();
    const victimName = NAMES[victim]!;
    const dying = proxies[victim]!;
    proxies[victim] = undefined;
    await dying.stop('SIGKILL');
    const killedAt = Date.now();
    const held = await spoolHolding(spools[victim]!);
    expect(held.jobMessages.length, `${victimName} left no job message in its spool`).to.be.greaterThan(0);
    await haproxy!.waitForState(victimName, 'DOWN', 15_000);
    await submitPhase(runs, 100);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
    await readyz.stop();
    const outageMs = Date.now() - downAt;

    // 3. Broker back, then the killed proxy, on the same spool: it must send what it held.
    await rabbit!.start();
    const upAt = Date.now();
    await receiver!.restart();
    proxies[victim] = await startProxyProcess(config(victim));
    await haproxy!.waitForState(victimName, 'UP', 20_000);
    await submitPhase(runs, 300);
    await fetching;

    // The grid path: every output, and no SOAP fault at any time.
    expect(client.faults, JSON.stringify(client.faults.slice(0, 5))).to.deep.equal([]);
    for (const s of runs) {
      expect(s.submitted, s.sessionId).to.have.length(PER_SESSION);
      const missing = s.submitted.filter((id) => !s.received.has(id));
      expect(
        missing.length,
        `${s.sessionId} missing outputs, e.g. ${missing.slice(0, 5).join(', ')}`,
      ).to.equal(0);
    }
    // HAProxy replays a call cut by the kill; anything it could not replay shows here.
    const unexplained = client.retries.filter((r) => r.at < killedAt - 2000 || r.at > killedAt + 20_000);
    expect(unexplained, JSON.stringify(unexplained.slice(0, 5))).to.deep.equal([]);

    // Every task's record at the receiver.
    const expected = new Set(runs.flatMap((s) => s.submitted.map((t) => `${CLUSTER}:${s.sessionId}:${t}`)));
    const jobs = (): AcceptedRecord[] => receiver!.records().filter((r) => r.kind === 'job');
    const haveAll = (): boolean => {
      const ids = new Set(jobs().map((r) => String(r.fields['LocalJobId'])));
      for (const id of expected) if (!ids.has(id)) return false;
      return true;
    };
    const arrived = await until(haveAll, 180_000, 500);
    const drainMs = Date.now() - upAt;
    const gotIds = new Set(jobs().map((r) => String(r.fields['LocalJobId'])));
    expect(
      arrived,
      `records for ${[...expected].filter((id) => gotIds.has(id)).length} of ${TASKS} tasks`,
    ).to.equal(true);

    // Every spool drained, nothing set aside.
    for (let i = 0; i < 3; i++) {
      let line = '';
      const empty = await until(
        async () => /^0 outgoing messages; 0 staged record segments/.test((line = await cliList(spools[i]!))),
        60_000,
        500,
      );
      expect(empty, `${NAMES[i]}: ${line}`).to.equal(true);
      expect(await cliList(spools[i]!, true), NAMES[i]).to.match(/^0 rejected messages/);
    }

    // The month's summary: the last one received per group counts every task once.
    let summary = lastSummaries(receiver!.records());
    const summed = await until(
      () => (summary = lastSummaries(receiver!.records())).jobs === TASKS,
      30_000,
      500,
    );
    expect(summed, `NumberOfJobs of the last summaries: ${JSON.stringify(summary)}`).to.equal(true);

    // What the receiver holds: valid, signed by us, one key per task, copies only from a resend.
    const records = receiver!.records();
    expect(receiver!.rejects(), JSON.stringify(receiver!.rejects().slice(0, 3))).to.deep.equal([]);
    const final = records.filter((r) => r.kind === 'job');
    expect(final.every((r) => r.signer === signerDn && r.fields['Site'] === SITE)).to.equal(true);
    const keys = new Set(final.map(jobKey));
    expect(keys.size, 'distinct (Site, LocalJobId, EndTime)').to.equal(TASKS);
    expect(new Set(final.map((r) => String(r.fields['LocalJobId'])))).to.deep.equal(expected);
    const dup = duplicateReport(final);
    expect(dup.differentRecords, 'copies of a key that differ').to.deep.equal([]);
    expect(dup.differentMessages, 'copies of a key from different messages').to.deep.equal([]);
    // The killed proxy sent what it held, under the element ids it had queued them as.
    const empaIds = new Set(final.map((r) => r.empa_id));
    expect(held.jobMessages.filter((id) => !empaIds.has(id))).to.deep.equal([]);

    // /readyz stayed 200 on the live proxies during the outage and said the broker was unreachable.
    const bad = readyz.samples.filter((s) => s.status !== 200);
    expect(bad, JSON.stringify(bad.slice(0, 5))).to.deep.equal([]);
    for (const name of NAMES) {
      const mine = readyz.samples.filter((s) => s.name === name);
      expect(mine.length, `${name}: /readyz samples`).to.be.greaterThan(0);
      expect(
        mine.some((s) => s.unreachable),
        `${name}: /readyz never said the broker was unreachable`,
      ).to.equal(true);
    }

    // Known issue, shown rather than asserted: a summary queued before a kill (or an outage) is
    // sent as written, later, and then replaces the newer total at the receiver until the next one.
    const summaries = lastSummaries(records);
    if (summaries.stale.length > 0) {
      const fromVictim = summaries.stale.filter((id) => held.summaryMessages.includes(id)).length;
      console.warn(
        `      !!! ${summaries.stale.length} summary messages replaced a newer total with an older one at the receiver; ` +
          `${fromVictim} of them were queued by ${victimName} before it was killed (src/accounting/outbox.ts sends queued summaries as written)`,
      );
    }
    const claimed = await claimedElsewhere();
    console.log(
      `      broker down ${Math.round(outageMs / 1000)} s; killed ${victimName}${summaryWriter ? ' (the summary writer)' : ''} holding ${held.outgoingJobIds.length} records in ${held.jobMessages.length} messages + ${held.stagedJobIds.length} staged; ` +
        `${final.length} job records received, ${claimed} records dropped as claimed by another proxy, ${dup.extraCopies} duplicate copies from ${dup.resentMessages} resent messages; ` +
        `${summaries.groups} summary groups, last NumberOfJobs ${summaries.jobs}; ` +
        `${client.retries.length} calls retried; all records in ${Math.round(drainMs / 1000)} s after the broker came back`,
    );
  });
});
