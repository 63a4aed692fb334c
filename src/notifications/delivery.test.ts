import { expect } from 'chai';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { makeTestPki } from '../../test/helpers/pki';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditRecord } from '../observability/audit-log';
import { envelope } from '../soap/envelope';
import { MemoryStore } from '../store/memory-store';
import type { StateStore } from '../store/store';
import { backoffMs, NotificationDispatcher, type DeliveryConfig, type NotifyWriter } from './delivery';
import { Destinations } from './destinations';
import { sessionStateEvent } from './messages';
import { Notifier } from './notifier';

const CONFIG: DeliveryConfig = {
  senders: 8,
  perHost: 2,
  batchMax: 100,
  timeoutMs: 400,
  retryBaseMs: 10,
  retryCapMs: 50,
  maxAttempts: 3,
  clientErrorAttempts: 2,
  maxAgeMs: 60_000,
  claimLeaseMs: 5_000,
  pollMs: 10,
};

const plain: NotifyWriter = (version, body, header, signed) =>
  envelope(
    version,
    body,
    signed
      .map(
        (h) =>
          `<${h.qname} xmlns:${h.qname.split(':')[0]}="${h.ns}"${h.attrs ?? ''}>${h.content}</${h.qname}>`,
      )
      .join('') + header,
  );

interface Received {
  seqs: number[];
  subscription: string;
  headers: http.IncomingHttpHeaders;
}

/** A consumer on loopback that records each Notify and answers with `status(n)` (n counts from 1). */
async function consumer(status: (n: number) => number | 'hang' = () => 202): Promise<{
  url: string;
  server: http.Server;
  got: Received[];
  close(): Promise<void>;
}> {
  const got: Received[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = status(++n);
      if (s === 'hang') return;
      const xml = Buffer.concat(chunks).toString('utf8');
      if (s >= 200 && s < 300) {
        got.push({
          seqs: [...xml.matchAll(/ seq="(\d+)"/g)].map((m) => Number(m[1])),
          subscription: /<sym:Sequence [^>]*subscription="([^"]+)"/.exec(xml)![1]!,
          headers: req.headers,
        });
      }
      res.writeHead(s).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/consumer`,
    server,
    got,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(10);
  }
}

describe('notifications: push delivery (ordered, retried, dead-lettered, bounded)', () => {
  let store: StateStore;
  let notifier: Notifier;
  const dispatchers: NotificationDispatcher[] = [];
  const loopback = new Destinations([{ consumer: '*', hosts: ['127.0.0.1', 'localhost'], allowHttp: true }]);

  function dispatcher(
    cfg: Partial<DeliveryConfig> = {},
    audit?: (r: AuditRecord) => void,
    d = loopback,
  ): NotificationDispatcher {
    const x = new NotificationDispatcher(store, d, plain, { ...CONFIG, ...cfg }, null, audit ?? null);
    x.start();
    dispatchers.push(x);
    return x;
  }

  async function subscription(id: string, address: string, session = id): Promise<void> {
    await store.putSubscription(id, {
      consumer: 'client-a',
      resource: `session:${session}`,
      topics: [],
      sink: { kind: 'http', address, parameters: '' },
      soapVersion: '1.1',
      created: Date.now(),
      terminationAt: Date.now() + 3_600_000,
      base: 'http://proxy.example/soap',
    });
  }

  async function publish(session: string, n: number): Promise<void> {
    const events = Array.from({ length: n }, () => sessionStateEvent(session, 'Open', Date.now()));
    await notifier.publish([`session:${session}`], events);
  }

  beforeEach(() => {
    store = new MemoryStore();
    notifier = new Notifier(store, { maxMessages: 10_000 });
  });
  afterEach(async () => {
    await Promise.all(dispatchers.splice(0).map((d) => d.stop()));
    await store.close();
  });

  it('delivers every message once, in order, in batches of at most batchMax, with the sequence header', async () => {
    const c = await consumer();
    await subscription('sub-1', c.url);
    dispatcher();
    await publish('sub-1', 120);
    await publish('sub-1', 130);
    await until(() => c.got.flatMap((g) => g.seqs).length >= 250);
    const seqs = c.got.flatMap((g) => g.seqs);
    expect(seqs).to.deep.equal(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(Math.max(...c.got.map((g) => g.seqs.length))).to.be.at.most(100);
    expect(c.got[0]!.subscription).to.equal('sub-1');
    expect(c.got[0]!.headers['soapaction']).to.equal(
      '"http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify"',
    );
    // Acknowledged in the store once the consumer's answer is back.
    await until(async () => (await store.getSubscription('sub-1'))?.acked === 250);
    await c.close();
  });

  it('retries a failing consumer with backoff, in order, and honours Retry-After bounds', async () => {
    const c = await consumer((n) => (n <= 2 ? 503 : 202));
    await subscription('sub-2', c.url);
    dispatcher();
    await publish('sub-2', 5);
    await until(() => c.got.flatMap((g) => g.seqs).length >= 5);
    expect(c.got.flatMap((g) => g.seqs)).to.deep.equal([1, 2, 3, 4, 5]);
    await until(async () => (await store.getSubscription('sub-2'))?.attempts === 0);
    await c.close();
  });

  it('moves messages to the dead letters after maxAttempts, audits it, and goes on with the next', async () => {
    let fail = true;
    const c = await consumer(() => (fail ? 500 : 202));
    await subscription('sub-3', c.url);
    const audited: AuditRecord[] = [];
    dispatcher({}, (r) => audited.push(r));
    await publish('sub-3', 3);
    await until(async () => (await store.listDeadLetters(10)).length === 3);
    const dead = await store.listDeadLetters(10);
    expect(dead.map((d) => d.seq).sort()).to.deep.equal([1, 2, 3]);
    expect(dead[0]).to.include({
      subscription: 'sub-3',
      consumer: 'client-a',
      reason: 'HTTP 500',
      attempts: 3,
    });
    expect(audited).to.have.length(1);
    expect(audited[0]).to.include({
      operation: 'Notify',
      outcome: 'fault',
      faultCode: 'SSP_NOTIFY_DEAD_LETTER',
    });
    fail = false;
    await publish('sub-3', 1);
    await until(() => c.got.length === 1);
    expect(c.got[0]!.seqs).to.deep.equal([4]);
    await c.close();
  });

  it('gives up sooner on a consumer that refuses the message (4xx)', async () => {
    const c = await consumer(() => 400);
    await subscription('sub-4', c.url);
    dispatcher();
    await publish('sub-4', 1);
    await until(async () => (await store.listDeadLetters(10)).length === 1);
    expect((await store.listDeadLetters(10))[0]).to.include({ attempts: 2, reason: 'HTTP 400' });
    await c.close();
  });

  it('a consumer that never answers holds up only its own subscription', async () => {
    const slow = await consumer(() => 'hang');
    const fast = await consumer();
    await subscription('slow', slow.url);
    await subscription('fast', fast.url.replace('127.0.0.1', 'localhost'));
    dispatcher({ maxAttempts: 100 });
    await publish('slow', 1);
    await sleep(50);
    const started = Date.now();
    await publish('fast', 20);
    await until(() => fast.got.flatMap((g) => g.seqs).length >= 20);
    expect(Date.now() - started).to.be.below(CONFIG.timeoutMs);
    await slow.close();
    await fast.close();
  });

  it('never connects to a name that resolves to loopback unless an address rule allows it', async () => {
    const c = await consumer();
    await subscription('sub-5', c.url.replace('127.0.0.1', 'localhost'));
    dispatcher({}, undefined, new Destinations([{ consumer: '*', hosts: ['localhost'], allowHttp: true }]));
    await publish('sub-5', 1);
    await until(async () => (await store.listDeadLetters(10)).length === 1);
    expect((await store.listDeadLetters(10))[0]!.reason).to.match(/may not reach/);
    expect(c.got).to.have.length(0);
    await c.close();
  });

  it('two proxies on one store deliver each message once, in order', async () => {
    const c = await consumer();
    for (const s of ['a', 'b', 'c']) await subscription(`two-${s}`, c.url, s);
    dispatcher();
    dispatcher();
    for (let i = 0; i < 10; i++) for (const s of ['a', 'b', 'c']) await publish(s, 5);
    await until(() => c.got.flatMap((g) => g.seqs).length >= 150);
    for (const s of ['a', 'b', 'c']) {
      const seqs = c.got.filter((g) => g.subscription === `two-${s}`).flatMap((g) => g.seqs);
      expect(seqs, s).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    }
    await c.close();
  });

  it('reuses one keep-alive connection per consumer for successive Notify calls', async () => {
    const c = await consumer();
    let connections = 0;
    c.server.on('connection', () => connections++);
    await subscription('ka', c.url);
    dispatcher();
    for (let i = 1; i <= 5; i++) {
      await publish('ka', 1);
      await until(() => c.got.length === i);
    }
    expect(connections).to.equal(1);
    await c.close();
  });

  it('reaches an https consumer that requires a client certificate (mutual TLS)', async () => {
    const pki = await makeTestPki();
    const seen: string[] = [];
    const server = https.createServer(
      {
        key: readFileSync(pki.server.keyFile),
        cert: readFileSync(pki.server.certFile),
        ca: readFileSync(pki.ca.certFile),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        seen.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
        req.resume();
        req.on('end', () => res.writeHead(202).end());
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/consumer`;
    await subscription('tls', url);
    await subscription('tls-anonymous', url, 'tls');
    dispatcher({ caFile: pki.ca.certFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile });
    await publish('tls', 1);
    await until(() => seen.length >= 2);
    expect(seen).to.deep.equal(['client-a', 'client-a']);
    // Without the client certificate the consumer refuses the handshake: retried, then dead letters.
    await Promise.all(dispatchers.splice(0).map((d) => d.stop()));
    await store.putSubscription('tls-2', {
      ...(await store.getSubscription('tls'))!,
      resource: 'session:tls-2',
    });
    dispatcher({ caFile: pki.ca.certFile, maxAttempts: 2 });
    await publish('tls-2', 1);
    await until(async () => (await store.listDeadLetters(10)).some((d) => d.subscription === 'tls-2'));
    expect(seen).to.have.length(2);
    server.closeAllConnections();
    server.close();
  });

  it('backs off with full jitter under a cap', () => {
    expect(backoffMs(0, 1000, 300_000, () => 0.5)).to.equal(500);
    expect(backoffMs(3, 1000, 300_000, () => 0.999)).to.equal(7992);
    expect(backoffMs(40, 1000, 300_000, () => 1)).to.equal(300_000);
  });
});
