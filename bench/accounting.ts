/**
 * Accounting (issue 15), in two parts, one run, one table each.
 *
 * 1. Records signed and sent: a spool pre-filled with BENCH_ACCT_MESSAGES APEL messages of 1,000
 *    job records (made by RecordMaker, written by writeApelJobs) is drained by an AccountingOutbox
 *    (lock → read → sign → STOMP SEND → RECEIPT → remove, BENCH_ACCT_IN_FLIGHT at once) into a
 *    private RabbitMQ, with the forge signer (one worker thread, as the proxy runs it) and with the
 *    openssl signer (a child per message). Signing alone and sending alone (pre-signed bodies)
 *    show where the time goes.
 *
 * 2. The proxy's throughput with accounting on and off: one grid process, one proxy process per
 *    configuration, the same workload for each: BENCH_ACCT_TASKS small text tasks submitted
 *    through the proxy while their outputs are drained through it (leased fetchTaskOutput pages
 *    of 100), end to end. "On" means a live broker with nobody consuming (messages pile up in
 *    RabbitMQ), so signing and sending run during the measurement; "on, no broker" isolates the
 *    cost of recording (fsync per fetched page) and batching.
 *
 * Rounds alternate (rotate) the order of the workloads; the tables give medians.
 */
import { UsageJournal } from '../src/accounting/journal';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { writeApelJobs } from '../src/accounting/apel';
import { AccountingMetrics } from '../src/accounting/metrics';
import { AccountingOutbox } from '../src/accounting/outbox';
import { MAX_RECORDS_PER_MESSAGE } from '../src/accounting/records';
import { forgeSigner, opensslSigner, type SmimeSigner } from '../src/accounting/smime';
import { DirQueue } from '../src/accounting/spool';
import { StompSender, type SenderLog } from '../src/accounting/stomp-sender';
import { RecordMaker, type SessionFacts } from '../src/accounting/usage';
import { parseConfig } from '../src/config';
import { MemoryStore } from '../src/store/memory-store';
import { makeTestPki, type TestPki } from '../test/helpers/pki';
import { until } from '../test/helpers/poll';
import { spawnGrid, startProxyProcess, proxyConfig, type ProxyProcess } from '../test/helpers/processes';
import { hasRabbitmq, startRabbitmq, type RabbitProcess } from '../test/helpers/rabbitmq';
import { call, fetchPage, median, openSession, SYM } from './sessions';

const MESSAGES = Number(process.env.BENCH_ACCT_MESSAGES ?? 20);
const TASKS = Number(process.env.BENCH_ACCT_TASKS ?? 20_000);
const RUNS = Number(process.env.BENCH_ACCT_RUNS ?? process.env.BENCH_RUNS ?? 3);
/** As accounting.broker.inFlight's default. */
const IN_FLIGHT = Number(process.env.BENCH_ACCT_IN_FLIGHT ?? 4);
const SUBMIT_BATCH = Number(process.env.BENCH_ACCT_SUBMIT_BATCH ?? 100);
const WARMUP_TASKS = Math.min(TASKS, 2000);
const PAGE = 100;
const RECORDS = MAX_RECORDS_PER_MESSAGE;
const PAYLOAD = 'x'.repeat(64);
const SITE = 'BENCH-SITE';
const DESTINATION = '/queue/bench.accounting';
/** Longest wait for a proxy's accounting to catch up after a round (batch delay 10 s + sending). */
const SETTLE_MS = 180_000;
/** forge's first signs run cold (250 ms against 60-100 ms once warm): a few go before timing. */
const WARMUP_SIGNS = 3;

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const elapsedS = (t0: number): number => (performance.now() - t0) / 1000;

// ---------------------------------------------------------------------------------------------
// shared

/** Quiet: the bench prints a table; only trouble goes to stderr (no bodies, no credentials). */
const quietLog: SenderLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: (m, meta) => console.error(`warn: ${m}`, meta ?? ''),
  error: (m, meta) => console.error(`error: ${m}`, meta ?? ''),
};

async function warmUp(signer: SmimeSigner, text: string): Promise<void> {
  for (let i = 0; i < WARMUP_SIGNS; i++) await signer.sign(text);
}

/** Runs `fn` over `items` with at most `width` calls pending. */
async function inParallel<T>(
  items: readonly T[],
  width: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

/** Rotates the order per round so no workload always runs first (or on the warmest process). */
function rotated<T>(xs: readonly T[], round: number): T[] {
  const k = round % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

// ---------------------------------------------------------------------------------------------
// part 1: records per second signed and sent

type SignerKind = 'forge' | 'openssl';

/** `messages` distinct APEL job messages of 1,000 records, as the proxy writes them. */
function apelMessages(messages: number): string[] {
  const config = parseConfig({
    security: { mode: 'off' },
    grid: { embedded: true },
    accounting: {
      enabled: true,
      site: SITE,
      defaultVo: 'bench',
      clusters: [
        {
          name: 'default',
          submitHost: 'grid-a.bench.example',
          serviceLevelType: 'HEPscore23',
          serviceLevel: 12.5,
        },
      ],
    },
  }).accounting;
  const maker = new RecordMaker(config);
  const endMs = Date.now() - 60_000;
  const out: string[] = [];
  for (let m = 0; m < messages; m++) {
    const session: SessionFacts = {
      sessionId: `bench-session-${m}`,
      cluster: 'default',
      owner: 'CN=bench,O=Bank,C=GB',
      application: 'pricing',
      subject: 'CN=bench,O=Bank,C=GB',
    };
    const records = Array.from({ length: RECORDS }, (_, i) =>
      maker.job(session, {
        taskId: String(i + 1),
        successful: true,
        usage: {
          startTimeMs: endMs - 120_000 - i,
          endTimeMs: endMs - i,
          cpuTimeMs: 117_000,
          machine: 'node7.grid.example',
          processors: 1,
          maxRssKb: 20_480,
          maxVmemKb: 0,
        },
      })!,
    );
    out.push(writeApelJobs(records));
  }
  return out;
}

function newSigner(kind: SignerKind, pki: TestPki): SmimeSigner {
  const pair = pki.proxyRsa;
  // workers: 1, as src/components/accounting.ts configures the proxy's forge signer.
  return kind === 'forge'
    ? forgeSigner({ certPem: pair.certPem, keyPem: pair.keyPem, workers: 1 })
    : opensslSigner({ certPath: pair.certFile, keyPath: pair.keyFile });
}

function newSender(rabbit: RabbitProcess): StompSender {
  return new StompSender(
    {
      brokers: [{ host: rabbit.host, port: rabbit.stompPort }],
      destination: DESTINATION,
      login: rabbit.login,
      passcode: rabbit.passcode,
      vhost: rabbit.vhost,
      receiptTimeoutMs: 30_000,
      connectTimeoutMs: 10_000,
      heartbeatMs: 10_000,
      reconnect: { initialMs: 1000, maxMs: 60_000 },
    },
    quietLog,
  );
}

async function connected(sender: StompSender): Promise<void> {
  sender.start();
  if (!(await until(() => sender.connected, 30_000)))
    throw new Error(
      `the bench could not connect to RabbitMQ: ${sender.status().lastError ?? 'no CONNECTED'}`,
    );
}

interface Rate {
  recordsPerSec: number;
  messagesPerSec: number;
}

function rateOf(messages: number, seconds: number): Rate {
  return { recordsPerSec: (messages * RECORDS) / seconds, messagesPerSec: messages / seconds };
}

/** Signing alone, IN_FLIGHT at once (as the outbox signs), after an untimed warm-up. */
async function signOnly(kind: SignerKind, pki: TestPki, texts: string[]): Promise<Rate> {
  const signer = newSigner(kind, pki);
  try {
    await warmUp(signer, texts[0]!);
    const t0 = performance.now();
    await inParallel(texts, IN_FLIGHT, async (t) => {
      await signer.sign(t);
    });
    return rateOf(texts.length, elapsedS(t0));
  } finally {
    await signer.close();
  }
}

/** Sending alone: pre-signed bodies, IN_FLIGHT SENDs awaiting their RECEIPT at once. */
async function sendOnly(rabbit: RabbitProcess, bodies: string[], round: number): Promise<Rate> {
  const sender = newSender(rabbit);
  try {
    await connected(sender);
    const t0 = performance.now();
    await inParallel(bodies, IN_FLIGHT, (b, i) => sender.send(b, `bench-send-${round}-${i}`));
    return rateOf(bodies.length, elapsedS(t0));
  } finally {
    await sender.stop();
  }
}

/** The outbox's send step over a spool of `texts`, until every message has its RECEIPT and is gone. */
async function drainSpool(
  kind: SignerKind,
  pki: TestPki,
  rabbit: RabbitProcess,
  texts: string[],
): Promise<Rate> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-acct-spool-'));
  const q = {
    journal: new UsageJournal(join(dir, 'staged')),
    outgoing: new DirQueue(join(dir, 'outgoing')),
    rejected: new DirQueue(join(dir, 'rejected')),
  };
  await q.journal.init();
  await q.outgoing.init();
  await q.rejected.init();
  for (const t of texts) await q.outgoing.add(t);
  const registry = new Registry();
  const metrics = new AccountingMetrics(registry, () => ({
    queuedMessages: 0,
    stagedElements: 0,
    rejectedMessages: 0,
    oldestAgeMs: undefined,
  }));
  const signer = newSigner(kind, pki);
  const sender = newSender(rabbit);
  const outbox = new AccountingOutbox(
    {
      site: SITE,
      format: 'apel',
      recordsPerMessage: RECORDS,
      batchDelayMs: 10_000,
      claimTtlMs: 86_400_000,
      inFlight: IN_FLIGHT,
      summaries: { enabled: false, intervalMs: 86_400_000, previousMonthDays: 3 },
    },
    new MemoryStore().accounting,
    { ...q, owner: 'bench' },
    new RecordMaker(parseConfig({ security: { mode: 'off' }, grid: { embedded: true } }).accounting),
    signer,
    sender,
    metrics,
  );
  try {
    // Untimed: the worker's start and key parse, the broker connection.
    await warmUp(signer, texts[0]!);
    await connected(sender);
    const t0 = performance.now();
    // What the outbox's send loop does while busy, without its idle poll timer in the way.
    for (let step = 0; step <= texts.length && (await outbox.sendOnce()); step++);
    const seconds = elapsedS(t0);
    const left = await q.outgoing.count();
    const sent =
      (await registry.getSingleMetric('ssp_accounting_records_sent_total')!.get()).values[0]?.value ?? 0;
    if (left > 0 || sent !== texts.length * RECORDS)
      throw new Error(
        `the ${kind} drain left ${left} messages and sent ${sent} records: see the warnings above`,
      );
    return rateOf(texts.length, seconds);
  } finally {
    await outbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

type Part1Row = 'sign-forge' | 'sign-openssl' | 'send' | 'drain-forge' | 'drain-openssl';

async function part1(pki: TestPki, rabbit: RabbitProcess): Promise<Record<Part1Row, Rate[]>> {
  const texts = apelMessages(MESSAGES);
  const presigner = newSigner('forge', pki);
  const bodies = await Promise.all(texts.map((t) => presigner.sign(t)));
  await presigner.close();
  const results: Record<Part1Row, Rate[]> = {
    'sign-forge': [],
    'sign-openssl': [],
    send: [],
    'drain-forge': [],
    'drain-openssl': [],
  };
  const rows = Object.keys(results) as Part1Row[];
  for (let round = 0; round < RUNS; round++) {
    for (const row of rotated(rows, round)) {
      let r: Rate;
      if (row === 'sign-forge' || row === 'sign-openssl')
        r = await signOnly(row === 'sign-forge' ? 'forge' : 'openssl', pki, texts);
      else if (row === 'send') r = await sendOnly(rabbit, bodies, round);
      else r = await drainSpool(row === 'drain-forge' ? 'forge' : 'openssl', pki, rabbit, texts);
      results[row].push(r);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// part 2: the proxy's throughput with accounting on and off

type Part2Row = 'off' | 'on-spool' | 'on-broker';

interface Part2Proxy {
  row: Part2Row;
  proxy: ProxyProcess;
  /** Tasks run through it so far (their records are what its accounting must catch up with). */
  tasks: number;
}

interface EndToEnd {
  tasksPerSec: number;
  /** From the last output acknowledged to the last record acknowledged by the broker (or batched). */
  settleSeconds: number | undefined;
}

function accountingConfig(
  dir: string,
  pki: TestPki,
  rabbit: RabbitProcess | undefined,
): Record<string, unknown> {
  mkdirSync(dir, { recursive: true });
  let broker = {};
  if (rabbit) {
    const passcodeFile = join(dir, 'passcode');
    writeFileSync(passcodeFile, rabbit.passcode, { mode: 0o600 });
    broker = {
      hosts: [{ host: rabbit.host, port: rabbit.stompPort, tls: false }],
      destination: DESTINATION,
      login: rabbit.login,
      passcodeFile,
      vhost: rabbit.vhost,
    };
  }
  return {
    enabled: true,
    site: SITE,
    spoolDir: join(dir, 'spool'),
    defaultVo: 'bench',
    signing: { signer: 'forge', certFile: pki.proxyRsa.certFile, keyFile: pki.proxyRsa.keyFile },
    broker,
  };
}

async function metricsOf(proxy: ProxyProcess): Promise<string> {
  const res = await fetch(`${proxy.adminUrl!}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${proxy.adminUrl!}/metrics answered ${res.status}`);
  return res.text();
}

/** One sample of a Prometheus exposition by its exact series text (`name` or `name{labels}`). */
function value(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Waits until the proxy's accounting holds nothing unsent (or, with no broker, nothing unbatched). */
async function settle(p: Part2Proxy): Promise<number | undefined> {
  if (p.row === 'off') return undefined;
  const t0 = performance.now();
  let text = '';
  const done = async (): Promise<boolean> => {
    text = await metricsOf(p.proxy);
    const queued = value(text, 'ssp_accounting_records_total{result="queued"}');
    const staged = value(text, 'ssp_accounting_staged_elements');
    if (p.row === 'on-spool') return queued >= p.tasks && staged === 0;
    return value(text, 'ssp_accounting_records_sent_total') >= p.tasks;
  };
  if (!(await until(done, SETTLE_MS, 100))) {
    const got = value(text, 'ssp_accounting_records_total{result="queued"}');
    const sent = value(text, 'ssp_accounting_records_sent_total');
    throw new Error(
      `proxy '${p.row}': ${got} records queued and ${sent} sent for ${p.tasks} tasks after ${SETTLE_MS / 1000} s; ` +
        `check its stderr above and GET ${p.proxy.adminUrl!}/readyz`,
    );
  }
  return elapsedS(t0);
}

function taskInput(i: number): string {
  return `<sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:text>${PAYLOAD}-${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
}

async function submitAll(proxy: ProxyProcess, sessionId: string, tasks: number): Promise<void> {
  for (let sent = 0; sent < tasks; sent += SUBMIT_BATCH) {
    const n = Math.min(SUBMIT_BATCH, tasks - sent);
    const batch = Array.from({ length: n }, (_, i) => taskInput(sent + i)).join('');
    await call(
      proxy.url,
      `<sym:sendTaskInputBatch xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId>${batch}</sym:sendTaskInputBatch>`,
    );
  }
}

/** Leased pages of 100, each acknowledged by the next fetch and the last one explicitly. */
async function drainAll(proxy: ProxyProcess, sessionId: string, tasks: number): Promise<void> {
  let got = 0;
  let token: string | undefined;
  // Bounded: a page may come back short or empty (1 s long poll) while the grid catches up.
  for (let calls = 0; got < tasks; calls++) {
    if (calls > (tasks / PAGE) * 20 + 100) throw new Error(`drained only ${got} of ${tasks} outputs`);
    const p = await fetchPage(proxy, sessionId, PAGE, token);
    token = p.token ?? token;
    got += p.outputs;
  }
  if (token)
    await call(
      proxy.url,
      `<sym:acknowledgeTaskOutput xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId><sym:deliveryToken>${token}</sym:deliveryToken></sym:acknowledgeTaskOutput>`,
    );
}

/** Submit and drain `tasks` through the proxy at the same time; tasks/s end to end. */
async function endToEnd(p: Part2Proxy, tasks: number): Promise<EndToEnd> {
  const sessionId = await openSession(p.proxy);
  const t0 = performance.now();
  await Promise.all([submitAll(p.proxy, sessionId, tasks), drainAll(p.proxy, sessionId, tasks)]);
  const tasksPerSec = tasks / elapsedS(t0);
  p.tasks += tasks;
  // Untimed: the next measurement must not share the CPU with this proxy's leftover sending.
  const settleSeconds = await settle(p);
  await call(
    p.proxy.url,
    `<sym:closeSession xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId></sym:closeSession>`,
  );
  return { tasksPerSec, settleSeconds };
}

async function part2(
  pki: TestPki,
  rabbit: RabbitProcess | undefined,
): Promise<Partial<Record<Part2Row, EndToEnd[]>>> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-acct-'));
  const gridConfig = join(dir, 'grid.json');
  writeFileSync(
    gridConfig,
    JSON.stringify({ applications: [{ name: 'echo', service: 'echo', workers: 1 }] }),
  );
  const grid = await spawnGrid(['--port', '0', '--config', gridConfig]);
  const proxies: Part2Proxy[] = [];
  const start = async (row: Part2Row, accounting: Record<string, unknown>): Promise<void> => {
    const proxy = await startProxyProcess(proxyConfig([grid.address], '', { accounting }));
    proxies.push({ row, proxy, tasks: 0 });
  };
  const results: Partial<Record<Part2Row, EndToEnd[]>> = {};
  try {
    await start('off', { enabled: false });
    await start('on-spool', accountingConfig(join(dir, 'on-spool'), pki, undefined));
    if (rabbit) await start('on-broker', accountingConfig(join(dir, 'on-broker'), pki, rabbit));
    for (const p of proxies) await endToEnd(p, WARMUP_TASKS);
    for (let round = 0; round < RUNS; round++) {
      for (const p of rotated(proxies, round)) (results[p.row] ??= []).push(await endToEnd(p, TASKS));
    }
  } finally {
    for (const p of proxies) await p.proxy.stop();
    await grid.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// report

function printPart1(r: Record<Part1Row, Rate[]>): number {
  const med = (row: Part1Row): Rate => ({
    recordsPerSec: median(r[row].map((x) => x.recordsPerSec)),
    messagesPerSec: median(r[row].map((x) => x.messagesPerSec)),
  });
  console.log(
    `\nAccounting, part 1: ${fmt(MESSAGES)} APEL job messages of ${fmt(RECORDS)} records per run, ${RUNS} rotating rounds (medians), ` +
      `${IN_FLIGHT} in flight, S/MIME RSA-2048 SHA-256, private RabbitMQ on loopback (persistent SEND, RECEIPT awaited); ${new Date().toISOString()}\n`,
  );
  console.log('| workload | records/s | messages/s |');
  console.log('|---|---:|---:|');
  const line = (name: string, row: Part1Row): void => {
    const m = med(row);
    console.log(`| ${name} | ${fmt(m.recordsPerSec)} | ${m.messagesPerSec.toFixed(1)} |`);
  };
  line('sign only, forge (1 worker thread, as the proxy runs it)', 'sign-forge');
  line('sign only, openssl smime -sign -text (a child per message)', 'sign-openssl');
  line('send only, pre-signed, StompSender SEND → RECEIPT', 'send');
  line('spool → sign → SEND → RECEIPT → remove (AccountingOutbox), forge', 'drain-forge');
  line('spool → sign → SEND → RECEIPT → remove (AccountingOutbox), openssl', 'drain-openssl');
  console.log('\n| ratio | value |');
  console.log('|---|---:|');
  const share = (drain: Part1Row, sign: Part1Row): string =>
    `${((100 * med(drain).recordsPerSec) / med(sign).recordsPerSec).toFixed(0)} %`;
  console.log(
    `| share of the forge drain spent signing (drain ÷ sign-only records/s) | ${share('drain-forge', 'sign-forge')} |`,
  );
  console.log(`| share of the openssl drain spent signing | ${share('drain-openssl', 'sign-openssl')} |`);
  return med('drain-forge').recordsPerSec;
}

function printPart2(
  r: Partial<Record<Part2Row, EndToEnd[]>>,
  forgeDrain: number | undefined,
  rabbit: boolean,
): void {
  const rate = (row: Part2Row): number | undefined =>
    r[row] ? median(r[row].map((x) => x.tasksPerSec)) : undefined;
  const settleOf = (row: Part2Row): string => {
    const xs = r[row]?.map((x) => x.settleSeconds).filter((x): x is number => x !== undefined) ?? [];
    return xs.length > 0 ? `${median(xs).toFixed(1)} s` : '–';
  };
  console.log(
    `\nAccounting, part 2: ${fmt(TASKS)} text tasks per round submitted through the proxy (sendTaskInputBatch of ${SUBMIT_BATCH}) while ` +
      `drained through it (leased fetchTaskOutput pages of ${PAGE}), end to end; ${RUNS} rotating rounds (medians) after a ` +
      `${fmt(WARMUP_TASKS)}-task warm-up; one grid process, one proxy process per row; security mode off (unsigned requests); ${new Date().toISOString()}\n`,
  );
  console.log('| proxy | tasks/s | accounting caught up after the last output (untimed) |');
  console.log('|---|---:|---:|');
  const line = (name: string, row: Part2Row): void => {
    const x = rate(row);
    if (x !== undefined) console.log(`| ${name} | ${fmt(x)} | ${settleOf(row)} |`);
  };
  line('accounting off', 'off');
  line('accounting on, no broker (records staged and batched to disk only)', 'on-spool');
  line('accounting on, RabbitMQ, nobody consuming (forge signer, sending during the run)', 'on-broker');
  if (!rabbit) console.log('| accounting on, RabbitMQ | skipped: no RabbitMQ | |');
  const off = rate('off')!;
  console.log('\n| ratio | value | target |');
  console.log('|---|---:|---:|');
  const onBroker = rate('on-broker');
  if (onBroker !== undefined)
    console.log(`| on (RabbitMQ) ÷ off (tasks/s) | ${(onBroker / off).toFixed(2)}× | ≥ 0.95× |`);
  console.log(`| on (no broker) ÷ off (tasks/s) | ${(rate('on-spool')! / off).toFixed(2)}× | ≥ 0.95× |`);
  if (forgeDrain !== undefined)
    console.log(
      `| forge drain records/s ÷ proxy tasks/s (off): sending keeps up | ${(forgeDrain / off).toFixed(2)}× | ≥ 1× |`,
    );
}

async function main(): Promise<void> {
  const pki = await makeTestPki();
  let rabbit: RabbitProcess | undefined;
  if (hasRabbitmq()) rabbit = await startRabbitmq();
  else
    console.log(
      '\nRabbitMQ is missing (/usr/lib/rabbitmq/bin/rabbitmq-server and /usr/bin/epmd): skipping part 1 and the ' +
        'accounting-on-with-broker row. Install it with: apt-get install rabbitmq-server',
    );
  try {
    const p1 = rabbit ? await part1(pki, rabbit) : undefined;
    const p2 = await part2(pki, rabbit);
    const forgeDrain = p1 ? printPart1(p1) : undefined;
    printPart2(p2, forgeDrain, rabbit !== undefined);
  } finally {
    await rabbit?.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
