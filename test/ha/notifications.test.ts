/**
 * Notifications across a farm: three proxy processes behind HAProxy (docs/haproxy.cfg as shipped)
 * share one redis-server and one grid. Subscriptions, their queues and the delivery claims live in
 * the shared store, so when the proxy that is delivering dies, another one takes the
 * subscription over after its claim lapses and goes on from the last acknowledged message.
 *
 * The consumer is an HTTP server in this test: it records every NotificationMessage it is sent
 * (duplicates included) so that the cases can check "every output, in order per subscription".
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { SYM, WSA, WSNT } from '../../src/soap/ws-namespaces';
import { freePort, hasHaproxy, startHaproxy, type HaproxyProcess } from '../helpers/haproxy';
import { requirePeer } from '../helpers/peers';
import { sample, until } from '../helpers/poll';
import { spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from '../helpers/processes';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';
import { callOk, op, openSessionAt, pick } from '../helpers/soap-http';

const NAMES = ['proxy1', 'proxy2', 'proxy3'];
const OUTPUTS = 2000;
const BATCH = 100;
/** A message older than this goes to the dead letters: longer than the consumer's 30 s absence. */
const MAX_AGE_MS = 40_000;
const TOKEN = 'notifications-admin-token';

interface Seen {
  subscription: string;
  seq: number;
  text: string | undefined;
}

/** A consumer on a fixed loopback port that can go away and come back. */
class Consumer {
  readonly seen: Seen[] = [];
  notifies = 0;
  private server: http.Server | null = null;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/consumer`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const xml = Buffer.concat(chunks).toString('utf8');
        this.notifies++;
        const subscription = /<sym:Sequence [^>]*subscription="([^"]+)"/.exec(xml)?.[1] ?? '?';
        for (const m of xml.matchAll(/<wsnt:NotificationMessage>(.*?)<\/wsnt:NotificationMessage>/gs)) {
          this.seen.push({
            subscription,
            seq: Number(/ seq="(\d+)"/.exec(m[1]!)?.[1]),
            text: /<sym:text>([^<]*)<\/sym:text>/.exec(m[1]!)?.[1],
          });
        }
        res.writeHead(202).end();
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  of(subscription: string): Seen[] {
    return this.seen.filter((s) => s.subscription === subscription);
  }
}

/**
 * Each subscription's messages in the order first received: the sequence numbers rise by one
 * from 1 (nothing lost, nothing out of order). Repeats are counted, not refused: a Notify sent
 * again after a takeover repeats sequence numbers, and an output the grid handed out again
 * (collected by a proxy killed before it acknowledged the grid) comes again under a new number.
 */
function checkOrder(seen: Seen[]): { resent: number; recollected: number } {
  const first = new Set<number>();
  const order: number[] = [];
  let resent = 0;
  for (const s of seen) {
    if (first.has(s.seq)) resent++;
    else {
      first.add(s.seq);
      order.push(s.seq);
    }
  }
  const wrong = order.findIndex((seq, i) => seq !== i + 1);
  expect(
    wrong,
    `sequence numbers in the order first received, from the first out of place: ${order.slice(Math.max(0, wrong - 3), wrong + 8).join(',')}`,
  ).to.equal(-1);
  const texts = seen.filter((s, i) => seen.findIndex((t) => t.seq === s.seq) === i).map((s) => s.text);
  return { resent, recollected: texts.length - new Set(texts).size };
}

/** Whether every output out-{from}..out-{to - 1} was received. */
function allOutputs(seen: Seen[], from: number, to: number): boolean {
  const texts = new Set(seen.map((s) => s.text));
  for (let i = from; i < to; i++) if (!texts.has(`out-${i}`)) return false;
  return true;
}

describe('ha: notifications across three proxies behind HAProxy on one Redis', function () {
  this.timeout(300_000);
  let redis: RedisProcess | undefined;
  let grid: GridProcess | undefined;
  let haproxy: HaproxyProcess | undefined;
  const ports: { port: number; adminPort: number }[] = [];
  const proxies: (ProxyProcess | undefined)[] = [];
  const consumers: Consumer[] = [];
  let tokenFile = '';

  function config(i: number): Record<string, unknown> {
    return {
      server: {
        host: '127.0.0.1',
        port: ports[i]!.port,
        publicUrl: `${haproxy ? haproxy.url : 'http://127.0.0.1'}/symphony`,
      },
      admin: { enabled: true, host: '127.0.0.1', port: ports[i]!.adminPort, tokenFile },
      security: { mode: 'off' },
      store: { kind: 'redis', redis: { url: redis!.url, keyPrefix: 'hanotify:' } },
      log: { level: 'error' },
      grid: {
        defaultCluster: 'default',
        clusters: [{ name: 'default', urls: ['grid-a'], addresses: [grid!.address], requestTimeoutMs: 5000 }],
      },
      notifications: {
        destinations: [{ consumer: '*', hosts: ['127.0.0.1'], allowHttp: true }],
        delivery: {
          pollMs: 20,
          // Takeover after a SIGKILL within a few seconds.
          claimLeaseMs: 2000,
          timeoutMs: 1000,
          retryBaseMs: 100,
          retryCapMs: 1000,
          maxAttempts: 10_000,
          maxAgeMs: MAX_AGE_MS,
        },
        watch: { waitMs: 500, leaseMs: 2000 },
      },
    };
  }

  const front = (): string => `${haproxy!.url}/symphony`;

  async function subscribe(sessionId: string, consumerUrl: string): Promise<string> {
    const body =
      `<wsnt:Subscribe xmlns:wsnt="${WSNT}" xmlns:wsa="${WSA}" xmlns:s="${SYM}">` +
      `<wsnt:ConsumerReference><wsa:Address>${consumerUrl}</wsa:Address></wsnt:ConsumerReference>` +
      `<wsnt:Filter><wsnt:TopicExpression Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">s:TaskOutputAvailable</wsnt:TopicExpression></wsnt:Filter>` +
      `</wsnt:Subscribe>`;
    const r = await callOk(`${front()}/sessions/${sessionId}`, body);
    const id = pick(r, 'SubscriptionId');
    expect(id, r.slice(0, 600)).to.be.a('string');
    return id!;
  }

  async function submit(sessionId: string, from: number, count: number, paceMs = 0): Promise<void> {
    for (let start = from; start < from + count; start += BATCH) {
      let tasks = '';
      for (let i = start; i < Math.min(start + BATCH, from + count); i++)
        tasks += `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>out-${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;
      await callOk(front(), op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}`));
      if (paceMs > 0) await sleep(paceMs);
    }
  }

  async function delivered(i: number): Promise<number> {
    const p = proxies[i];
    if (!p?.adminUrl) return 0;
    try {
      const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
      return sample(text, 'ssp_notifications_sent_total', 'outcome="delivered"');
    } catch {
      return 0;
    }
  }

  before(async function () {
    requirePeer(this, 'haproxy', hasHaproxy(), 'apt-get install haproxy');
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    tokenFile = join(mkdtempSync(join(tmpdir(), 'ssp-notify-')), 'admin-token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    redis = await startRedis();
    grid = await spawnGrid(['--port', '0']);
    for (let i = 0; i < 3; i++) ports.push({ port: await freePort(), adminPort: await freePort() });
    haproxy = await startHaproxy({ backends: NAMES.map((name, i) => ({ name, ...ports[i]! })) });
    for (let i = 0; i < 3; i++) proxies.push(await startProxyProcess(config(i)));
    for (const name of NAMES) await haproxy.waitForState(name, 'UP', 20_000);
  });

  after(async () => {
    for (const c of consumers) await c.stop();
    await haproxy?.stop();
    for (const p of proxies) await p?.stop('SIGKILL');
    await grid?.stop();
    await redis?.stop();
  });

  it(`${OUTPUTS} task outputs notified while the delivering proxy is SIGKILLed: every one, in order`, async () => {
    const consumer = new Consumer(await freePort());
    consumers.push(consumer);
    await consumer.start();
    const { sessionId } = await openSessionAt(front());
    const subscription = await subscribe(sessionId, consumer.url);
    const sending = submit(sessionId, 0, OUTPUTS, 50);

    // Find who is delivering now: the proxy whose delivered count moves.
    expect(await until(() => consumer.seen.length >= OUTPUTS / 4, 60_000), 'deliveries started').to.equal(
      true,
    );
    const before = await Promise.all([0, 1, 2].map(delivered));
    await sleep(300);
    const after = await Promise.all([0, 1, 2].map(delivered));
    const victim = [0, 1, 2].reduce(
      (best, i) => (after[i]! - before[i]! > after[best]! - before[best]! ? i : best),
      0,
    );
    const killedAt = consumer.seen.length;
    await proxies[victim]!.stop('SIGKILL');
    proxies[victim] = undefined;
    await haproxy!.waitForState(NAMES[victim]!, 'DOWN', 15_000);
    await sending;

    const all = await until(() => allOutputs(consumer.of(subscription), 0, OUTPUTS), 120_000);
    const got = new Set(consumer.of(subscription).map((s) => s.text)).size;
    expect(all, `received ${got} of ${OUTPUTS} outputs`).to.equal(true);
    const { resent, recollected } = checkOrder(consumer.of(subscription));
    console.log(
      `      killed ${NAMES[victim]} after ${killedAt} messages; ${consumer.notifies} Notify calls; ${resent} messages resent (same sequence number), ${recollected} outputs collected again (new number, same task)`,
    );
    // Nothing left over for the survivors: the grid has no output of the session waiting.
    const status = await callOk(
      front(),
      op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`),
    );
    expect(Number(pick(status, 'outputsReady'))).to.equal(0);

    // The killed proxy comes back for the next cases.
    proxies[victim] = await startProxyProcess(config(victim));
    await haproxy!.waitForState(NAMES[victim]!, 'UP', 20_000);
  });

  it('a consumer away for 30 s receives everything once it is back, in order', async () => {
    const consumer = new Consumer(await freePort());
    consumers.push(consumer);
    await consumer.start();
    const { sessionId } = await openSessionAt(front());
    const subscription = await subscribe(sessionId, consumer.url);
    await submit(sessionId, 0, 50);
    expect(await until(() => consumer.of(subscription).length >= 50, 30_000)).to.equal(true);
    await consumer.stop();
    await submit(sessionId, 50, 150);
    await sleep(30_000);
    expect(consumer.of(subscription).length, 'nothing arrives while it is away').to.be.at.most(50 + 50);
    await consumer.start();
    const all = await until(() => allOutputs(consumer.of(subscription), 0, 200), 30_000);
    const got = new Set(consumer.of(subscription).map((s) => s.text)).size;
    expect(all, `received ${got} of 200 outputs`).to.equal(true);
    const { recollected } = checkOrder(consumer.of(subscription));
    expect(recollected, 'no proxy died: no output collected twice').to.equal(0);
  });

  it('a consumer that never comes back ends in the dead-letter list', async () => {
    const gone = `http://127.0.0.1:${await freePort()}/never`;
    const { sessionId } = await openSessionAt(front());
    const subscription = await subscribe(sessionId, gone);
    await submit(sessionId, 0, 5);
    // Retried until the messages are older than delivery.maxAgeMs, then given up on. The list is
    // the farm's: any proxy's admin API shows it.
    let letters: { subscription: string; seq: number; reason: string }[] = [];
    const dead = await until(
      async () => {
        const p = proxies.find((x) => x?.adminUrl);
        const r = await fetch(`${p!.adminUrl}/notifications/dead-letters?max=100`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        expect(r.status).to.equal(200);
        const body = (await r.json()) as { deadLetters: typeof letters };
        letters = body.deadLetters.filter((d) => d.subscription === subscription);
        return letters.length >= 5;
      },
      MAX_AGE_MS + 30_000,
      500,
    );
    expect(dead, `dead letters: ${JSON.stringify(letters)}`).to.equal(true);
    expect(letters.map((d) => d.seq).sort((a, b) => a - b)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(letters[0]!.reason).to.include('maxAgeMs');
    const unauthorised = await fetch(
      `${proxies.find((x) => x?.adminUrl)!.adminUrl}/notifications/dead-letters`,
    );
    expect(unauthorised.status).to.equal(401);
  });
});
