/**
 * Nothing lost, nothing twice, through real proxies: idempotent submits by clientKey and by
 * WS-Addressing MessageID, leased fetches that come back when not acknowledged, and the same
 * guarantees when the retry lands on another proxy sharing a real redis-server.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasRedis, startRedis, type RedisProcess } from '../helpers/redis';
import { requirePeer } from '../helpers/peers';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { envelope11, op, openSessionAt, pick, postSoap } from '../helpers/soap-http';

const WSA = 'http://www.w3.org/2005/08/addressing';

function withMessageId(body: string, id: string): string {
  return envelope11(body).replace(
    '<s:Body>',
    `<s:Header><wsa:MessageID xmlns:wsa="${WSA}">${id}</wsa:MessageID></s:Header><s:Body>`,
  );
}

function all(xml: string, local: string): string[] {
  const re = new RegExp(`<(?:\\w+:)?${local}>([^<]*)</(?:\\w+:)?${local}>`, 'g');
  return [...xml.matchAll(re)].map((m) => m[1]!);
}

function batch(sessionId: string, texts: string[], clientKey?: string): string {
  const tasks = texts
    .map(
      (t) =>
        `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${t}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
    )
    .join('');
  return op(
    'sendTaskInputBatch',
    `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}${clientKey ? `<sym:clientKey>${clientKey}</sym:clientKey>` : ''}`,
  );
}

function fetchBody(sessionId: string, opts: { lease?: number; ack?: string; wait?: number } = {}): string {
  return op(
    'fetchTaskOutput',
    `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>100</sym:countMax>` +
      `<sym:timeoutMillis>${opts.wait ?? 1000}</sym:timeoutMillis>` +
      (opts.lease ? `<sym:leaseMillis>${opts.lease}</sym:leaseMillis>` : '') +
      (opts.ack ? `<sym:acknowledge>${opts.ack}</sym:acknowledge>` : ''),
  );
}

async function call(url: string, xml: string): Promise<string> {
  const r = await postSoap(url, xml);
  expect(r.status, r.text.slice(0, 600)).to.equal(200);
  return r.text;
}

async function openSession(url: string): Promise<string> {
  return (await openSessionAt(url)).sessionId;
}

async function status(url: string, sessionId: string): Promise<{ tasks: number; ready: number }> {
  const text = await call(
    url,
    envelope11(op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`)),
  );
  const n = (f: string): number => Number(pick(text, f));
  return {
    tasks: n('pendingTasks') + n('runningTasks') + n('doneTasks') + n('failedTasks'),
    ready: n('outputsReady'),
  };
}

/** Leased fetches until `want` distinct outputs arrived (bounded by 40 long-polls), then acknowledged unless keepLast. */
async function drain(
  url: string,
  sessionId: string,
  want: number,
  lease = 30000,
  keepLast = false,
): Promise<{ ids: Set<string>; token: string }> {
  const ids = new Set<string>();
  let token: string | undefined;
  for (let i = 0; i < 40 && ids.size < want; i++) {
    const text = await call(
      url,
      envelope11(fetchBody(sessionId, { lease, ...(token ? { ack: token } : {}) })),
    );
    for (const id of all(text, 'taskId')) ids.add(id);
    token = pick(text, 'deliveryToken');
    expect(token, text.slice(0, 600)).to.be.a('string');
  }
  if (!keepLast) {
    const body = `<sym:sessionId>${sessionId}</sym:sessionId><sym:deliveryToken>${token}</sym:deliveryToken>`;
    await call(url, envelope11(op('acknowledgeTaskOutput', body)));
  }
  return { ids, token: token! };
}

describe('relay: idempotent submits and leased fetches', function () {
  this.timeout(120000);
  let grid: GridProcess;
  let proxy: ProxyProcess;
  let sessionId: string;

  before(async () => {
    grid = await spawnGrid(['--port', '0']);
    proxy = await startProxyProcess(proxyConfig([grid.address]));
    sessionId = await openSession(proxy.url);
  });
  after(async () => {
    await proxy?.stop();
    await grid?.stop();
  });

  it('a batch retried with the same clientKey gets the same ids and is submitted once', async () => {
    const first = all(
      await call(proxy.url, envelope11(batch(sessionId, ['a', 'b', 'c'], 'key-1'))),
      'taskId',
    );
    const again = all(
      await call(proxy.url, envelope11(batch(sessionId, ['a', 'b', 'c'], 'key-1'))),
      'taskId',
    );
    expect(first).to.have.length(3);
    expect(again).to.deep.equal(first);
    expect((await status(proxy.url, sessionId)).tasks).to.equal(3);
    await drain(proxy.url, sessionId, 3);
  });

  it('the WS-Addressing MessageID is the key when there is no clientKey', async () => {
    const xml = withMessageId(
      batch(sessionId, ['m1', 'm2']),
      'urn:uuid:11111111-2222-3333-4444-555555555555',
    );
    const first = all(await call(proxy.url, xml), 'taskId');
    const again = all(await call(proxy.url, xml), 'taskId');
    expect(again).to.deep.equal(first);
    expect((await status(proxy.url, sessionId)).tasks).to.equal(5);
    await drain(proxy.url, sessionId, 2);
  });

  it('a key reused for a different request is refused with SSP_CLIENT_KEY_REUSED', async () => {
    await call(proxy.url, envelope11(batch(sessionId, ['x'], 'key-2')));
    const r = await postSoap(proxy.url, envelope11(batch(sessionId, ['y'], 'key-2')));
    expect(pick(r.text, 'code'), r.text.slice(0, 600)).to.equal('SSP_CLIENT_KEY_REUSED');
    expect(r.text).to.contain('InvalidArgumentFault');
    await drain(proxy.url, sessionId, 1);
  });

  it('unacknowledged leased outputs come back after the lease; acknowledged ones never do', async () => {
    await call(proxy.url, envelope11(batch(sessionId, ['l1', 'l2', 'l3'])));
    const got = await drain(proxy.url, sessionId, 3, 1500, true);
    expect(got.ids.size).to.equal(3);
    // The last fetch's token is not acknowledged: after 1.5 s its outputs return.
    await sleep(1700);
    const back = await call(proxy.url, envelope11(fetchBody(sessionId, { lease: 30000, wait: 0 })));
    const again = all(back, 'taskId');
    expect(again.length, back.slice(0, 600)).to.be.greaterThan(0);
    for (const id of again) expect(got.ids.has(id)).to.equal(true);
    // Acknowledged explicitly: gone for good, even for a fetch that takes back everything.
    await call(
      proxy.url,
      envelope11(
        op(
          'acknowledgeTaskOutput',
          `<sym:sessionId>${sessionId}</sym:sessionId><sym:deliveryToken>${pick(back, 'deliveryToken')}</sym:deliveryToken>`,
        ),
      ),
    );
    const none = await call(proxy.url, envelope11(fetchBody(sessionId, { lease: 30000, wait: 0 })));
    expect(all(none, 'taskId')).to.deep.equal([]);
  });

  it('a leased fetch without acknowledge takes back what an earlier fetch left unacknowledged', async () => {
    await call(proxy.url, envelope11(batch(sessionId, ['r1', 'r2'])));
    const got = await drain(proxy.url, sessionId, 2, 30000, true);
    const back = all(
      await call(proxy.url, envelope11(fetchBody(sessionId, { lease: 30000, wait: 0 }))),
      'taskId',
    );
    expect(new Set(back)).to.deep.equal(got.ids);
    // Fetches without leaseMillis keep Symphony's at-most-once: what they return is gone.
    const plain = await call(proxy.url, envelope11(fetchBody(sessionId, { wait: 0 })));
    expect(pick(plain, 'deliveryToken')).to.equal(undefined);
  });

  it('a repeated leased fetch (same MessageID) answers the same outputs and token', async () => {
    await call(proxy.url, envelope11(batch(sessionId, ['p1', 'p2'])));
    await sleep(300);
    const xml = withMessageId(fetchBody(sessionId, { lease: 30000 }), 'urn:uuid:fetch-repeat-1');
    const first = await call(proxy.url, xml);
    const again = await call(proxy.url, xml);
    expect(pick(again, 'deliveryToken')).to.equal(pick(first, 'deliveryToken'));
    expect(all(again, 'taskId')).to.deep.equal(all(first, 'taskId'));
    expect(all(first, 'taskId').length).to.be.greaterThan(0);
    await call(
      proxy.url,
      envelope11(fetchBody(sessionId, { lease: 30000, ack: pick(first, 'deliveryToken')!, wait: 0 })),
    );
  });
});

describe('relay: a retry on another proxy sharing Redis', function () {
  this.timeout(120000);
  let redis: RedisProcess | undefined;
  let grid: GridProcess;
  const proxies: ProxyProcess[] = [];

  before(async function () {
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    redis = await startRedis();
    grid = await spawnGrid(['--port', '0']);
    for (let i = 0; i < 2; i++) {
      proxies.push(
        await startProxyProcess(
          proxyConfig([grid.address], '', {
            store: { kind: 'redis', redis: { url: redis.url, keyPrefix: 'rel:' } },
          }),
        ),
      );
    }
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await grid?.stop();
    await redis?.stop();
  });

  it("the same clientKey on the second proxy returns the first proxy's ids; leases follow too", async () => {
    const [a, b] = [proxies[0]!.url, proxies[1]!.url];
    const sessionId = await openSession(a);
    const first = all(await call(a, envelope11(batch(sessionId, ['h1', 'h2', 'h3'], 'ha-key'))), 'taskId');
    const again = all(await call(b, envelope11(batch(sessionId, ['h1', 'h2', 'h3'], 'ha-key'))), 'taskId');
    expect(again).to.deep.equal(first);
    expect((await status(b, sessionId)).tasks).to.equal(3);

    // Leased on A, never acknowledged; B hands them out again to a fetch that takes back everything.
    const got = await drain(a, sessionId, 3, 30000, true);
    const back = all(await call(b, envelope11(fetchBody(sessionId, { lease: 30000, wait: 0 }))), 'taskId');
    expect(new Set(back)).to.deep.equal(got.ids);
  });
});
