/**
 * Notifications pushed to a local consumer, next to fetchTaskOutput, from one proxy process
 * whose Notify messages are signed (RSA-2048, as its responses) and one reference grid.
 *
 * Throughput: a session's BENCH_NOTIFY_OUTPUTS finished outputs (submitted straight to the grid
 * and run before anything is measured) are drained once by a Subscribe (the watcher collects
 * them, the dispatcher pushes them to an HTTP consumer in this process) and once by leased
 * fetchTaskOutput calls of 100; rounds alternate and the table gives medians.
 *
 * Latency: with a subscription (or a fetchTaskOutput long poll) waiting, one task at a time is
 * submitted straight to the grid; the time from that submit to the consumer receiving the output
 * (the Notify, or the long poll's answer) includes the task's own run on the grid, the same for
 * both, so the difference between the two is the cost of the push path.
 */
import { once } from 'node:events';
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GridClient } from '../src/backend/client';
import { makeTestPki } from '../test/helpers/pki';
import { spawnGrid, startProxyProcess, proxyConfig, type ProxyProcess } from '../test/helpers/processes';
import { call, fetchPage, filledSession, median, openSession, pick, SYM } from './sessions';

const OUTPUTS = Number(process.env.BENCH_NOTIFY_OUTPUTS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LATENCY_SAMPLES = Number(process.env.BENCH_NOTIFY_SAMPLES ?? 300);
const PAGE = 100;
const PAYLOAD = 'x'.repeat(1024);
const WSNT = 'http://docs.oasis-open.org/wsn/b-2';
const WSA = 'http://www.w3.org/2005/08/addressing';

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** The consumer: counts TaskOutputAvailable messages and notes when each task's arrived. */
class Consumer {
  received = 0;
  readonly arrivals = new Map<string, number>();
  private waiters: { n: number; resolve: () => void }[] = [];
  private server!: http.Server;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const now = performance.now();
        const xml = Buffer.concat(chunks).toString('utf8');
        // Task ids are per session: the arrivals are keyed by both.
        for (const m of xml.matchAll(
          /<sym:SessionId>([^<]+)<\/sym:SessionId><sym:Output[^>]*><sym:taskId>([^<]+)</g,
        )) {
          this.received++;
          const key = `${m[1]!}/${m[2]!}`;
          if (!this.arrivals.has(key)) this.arrivals.set(key, now);
        }
        res.writeHead(202).end();
        this.waiters = this.waiters.filter((w) => (this.received >= w.n ? (w.resolve(), false) : true));
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/consumer`;
  }

  waitFor(n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function subscribe(proxy: ProxyProcess, sessionId: string, consumer: string): Promise<string> {
  const r = await call(
    `${proxy.url}/sessions/${sessionId}`,
    `<wsnt:Subscribe xmlns:wsnt="${WSNT}" xmlns:wsa="${WSA}" xmlns:s="${SYM}"><wsnt:ConsumerReference><wsa:Address>${consumer}</wsa:Address></wsnt:ConsumerReference>` +
      `<wsnt:Filter><wsnt:TopicExpression Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">s:TaskOutputAvailable</wsnt:TopicExpression></wsnt:Filter></wsnt:Subscribe>`,
  );
  return new URL(pick(r, 'Address')!).pathname;
}

async function unsubscribe(proxy: ProxyProcess, path: string): Promise<void> {
  await call(new URL(path, proxy.url).toString(), `<wsnt:Unsubscribe xmlns:wsnt="${WSNT}"/>`);
}

async function drainByNotify(proxy: ProxyProcess, sessionId: string, consumer: Consumer): Promise<number> {
  const start = performance.now();
  const target = consumer.received + OUTPUTS;
  const sub = await subscribe(proxy, sessionId, consumer.url);
  await consumer.waitFor(target);
  const rate = OUTPUTS / ((performance.now() - start) / 1000);
  await unsubscribe(proxy, sub);
  return rate;
}

async function drainByFetch(proxy: ProxyProcess, sessionId: string): Promise<number> {
  const start = performance.now();
  let got = 0;
  let token: string | undefined;
  for (let calls = 0; got < OUTPUTS; calls++) {
    if (calls > (OUTPUTS / PAGE) * 20) throw new Error(`drained only ${got} of ${OUTPUTS}`);
    const p = await fetchPage(proxy, sessionId, PAGE, token);
    token = p.token;
    got += p.outputs;
  }
  return OUTPUTS / ((performance.now() - start) / 1000);
}

/** Submit → Notify received, one task at a time. */
async function latencyByNotify(proxy: ProxyProcess, grid: GridClient, consumer: Consumer): Promise<number[]> {
  const sessionId = await openSession(proxy);
  const sub = await subscribe(proxy, sessionId, consumer.url);
  await new Promise((r) => setTimeout(r, 500));
  const out: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const before = consumer.received;
    const sent = performance.now();
    const reply = await grid.call('sendTasks', {
      sessionId,
      tasks: [{ tag: '', priority: 1, payload: { text: 'x' } }],
    });
    await consumer.waitFor(before + 1);
    out.push(consumer.arrivals.get(`${sessionId}/${reply.taskIds[0]!}`)! - sent);
  }
  await unsubscribe(proxy, sub);
  return out;
}

/** Submit → long-poll fetchTaskOutput answered, one task at a time. */
async function latencyByFetch(proxy: ProxyProcess, grid: GridClient): Promise<number[]> {
  const sessionId = await openSession(proxy);
  const out: number[] = [];
  let token: string | undefined;
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const poll = call(
      proxy.url,
      `<sym:fetchTaskOutput xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>10</sym:countMax>` +
        `<sym:timeoutMillis>30000</sym:timeoutMillis><sym:leaseMillis>60000</sym:leaseMillis>` +
        (token ? `<sym:acknowledge>${token}</sym:acknowledge>` : '') +
        `</sym:fetchTaskOutput>`,
    );
    // The long poll is waiting on the grid before the task is sent.
    await new Promise((r) => setTimeout(r, 5));
    const sent = performance.now();
    await grid.call('sendTasks', { sessionId, tasks: [{ tag: '', priority: 1, payload: { text: 'x' } }] });
    const r = await poll;
    out.push(performance.now() - sent);
    token = pick(r, 'deliveryToken');
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-notify-'));
  const gridConfig = join(dir, 'grid.json');
  writeFileSync(
    gridConfig,
    JSON.stringify({ applications: [{ name: 'echo', service: 'echo', workers: 1 }] }),
  );
  const pki = await makeTestPki();
  const grid = await spawnGrid(['--port', '0', '--config', gridConfig]);
  const proxy = await startProxyProcess(
    proxyConfig([grid.address], '', {
      admin: { enabled: false },
      security: {
        mode: 'off',
        responseSigning: { enabled: true, certFile: pki.proxyRsa.certFile, keyFile: pki.proxyRsa.keyFile },
      },
      notifications: {
        destinations: [{ consumer: '*', hosts: ['127.0.0.1'], allowHttp: true }],
        delivery: { pollMs: 20, batchMax: Number(process.env.BENCH_NOTIFY_BATCH ?? 100) },
        watch: { batch: Number(process.env.BENCH_NOTIFY_COLLECT ?? 100) },
      },
    }),
  );
  const gridClient = new GridClient({ name: 'bench', addresses: [grid.address], poolSize: 2 });
  await gridClient.call('connect', {
    applicationName: 'echo',
    username: 'bench',
    password: 'pw',
    clusterUrl: '',
  });
  const consumer = new Consumer();
  await consumer.start();
  const rates: Record<'notify' | 'fetch', number[]> = { notify: [], fetch: [] };

  const latency: Record<'notify' | 'fetch', number[]> = { notify: [], fetch: [] };
  try {
    for (let round = 0; round < RUNS; round++) {
      const order: ('notify' | 'fetch')[] = round % 2 === 0 ? ['notify', 'fetch'] : ['fetch', 'notify'];
      for (const method of order) {
        const sessionId = await filledSession(proxy, gridClient, OUTPUTS, PAYLOAD);
        rates[method].push(
          method === 'notify'
            ? await drainByNotify(proxy, sessionId, consumer)
            : await drainByFetch(proxy, sessionId),
        );
      }
    }
    latency.notify = await latencyByNotify(proxy, gridClient, consumer);
    latency.fetch = await latencyByFetch(proxy, gridClient);
  } finally {
    consumer.close();
    gridClient.close();
    await proxy.stop();
    await grid.stop();
  }
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const ms = (n: number): string => n.toFixed(1);
  const notifyLatency = latency.notify;
  const fetchLatency = latency.fetch;
  const notifyRate = median(rates.notify);
  const fetchRate = median(rates.fetch);
  console.log(
    `\nNotifications: ${fmt(OUTPUTS)} outputs of 1 KB per drain, ${RUNS} alternating rounds per method (medians); latency over ${LATENCY_SAMPLES} single tasks; Notify signed RSA-SHA256; ${new Date().toISOString()}\n`,
  );
  console.log('| workload | outputs/s | latency p50 | latency p99 |');
  console.log('|---|---:|---:|---:|');
  console.log(
    `| Subscribe + signed Notify to a local consumer (batches of up to 100) | ${fmt(notifyRate)} | ${ms(percentile(notifyLatency, 50))} ms | ${ms(percentile(notifyLatency, 99))} ms |`,
  );
  console.log(
    `| fetchTaskOutput, leased, ${PAGE} per call / one long poll per task | ${fmt(fetchRate)} | ${ms(percentile(fetchLatency, 50))} ms | ${ms(percentile(fetchLatency, 99))} ms |`,
  );
  console.log('\n| ratio | value |');
  console.log('|---|---:|');
  console.log(`| Notify ÷ fetchTaskOutput (outputs/s) | ${(notifyRate / fetchRate).toFixed(2)}× |`);
  console.log(
    `| Notify p50 latency − long-poll p50 latency (cost of the push path) | ${ms(percentile(notifyLatency, 50) - percentile(fetchLatency, 50))} ms |`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
