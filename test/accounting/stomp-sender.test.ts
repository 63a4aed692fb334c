/**
 * The STOMP sender against a real RabbitMQ (rabbitmq_stomp) and an independent APEL-side
 * receiver (test/accounting/receiver.py): receipts, persistence across a broker restart, broker
 * outages, failover, mutual TLS, and a lost RECEIPT (docs/design/accounting.md 6.4, 6.6).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import {
  StompSendError,
  StompSender,
  type BrokerAddress,
  type SendFailureReason,
  type SenderLog,
  type StompSenderOptions,
} from '../../src/accounting/stomp-sender';
import { hasApelReceiverPeers, startApelReceiver, type ApelReceiver } from '../helpers/apel-receiver';
import { freePort } from '../helpers/peer-process';
import { hasCommand, requirePeer } from '../helpers/peers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import { until } from '../helpers/poll';
import { hasRabbitmq, rawStomp, startRabbitmq, type RabbitProcess } from '../helpers/rabbitmq';

interface LogEntry {
  level: string;
  message: string;
  meta: Record<string, unknown> | undefined;
}

function memoryLog(): SenderLog & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      entries.push({ level, message, meta });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Slash-form subject, as SSM compares signers (openssl's legacy `compat` name format). */
function slashDn(certFile: string): string {
  const out = execFileSync('openssl', ['x509', '-noout', '-subject', '-nameopt', 'compat', '-in', certFile]);
  return out
    .toString('ascii')
    .trim()
    .replace(/^subject=\s*/, '');
}

/** The oracle signer: exactly what SSM runs (`openssl smime -sign -text`). */
function smimeSign(body: string, signer: { certFile: string; keyFile: string }): string {
  return execFileSync(
    'openssl',
    ['smime', '-sign', '-text', '-signer', signer.certFile, '-inkey', signer.keyFile],
    { input: body },
  ).toString('ascii');
}

let jobSeq = 0;
function jobMessage(n: number, extraLine = ''): { text: string; ids: string[] } {
  const ids: string[] = [];
  const records = Array.from({ length: n }, (_, i) => {
    jobSeq += 1;
    const id = `grid-a:session-${jobSeq}:task-${i}`;
    ids.push(id);
    const end = 1767225724 + jobSeq;
    return [
      'Site: BANK-GRID-LON',
      'SubmitHost: grid-a',
      'Queue: pricing-app',
      `LocalJobId: ${id}`,
      'GlobalUserName: /O=Bank/CN=svc-pricing',
      'VO: rates',
      'WallDuration: 124',
      'CpuDuration: 117',
      'Processors: 1',
      `StartTime: ${end - 124}`,
      `EndTime: ${end}`,
      'ServiceLevelType: HEPscore23',
      'ServiceLevel: 12.5',
      ...(i === n - 1 && extraLine ? [extraLine] : []),
    ].join('\n');
  });
  return { text: `APEL-individual-job-message: v0.3\n${records.join('\n%%\n')}\n%%\n`, ids };
}

let empaSeq = 0;
function empaId(): string {
  empaSeq += 1;
  const sec = Math.floor(Date.now() / 1000);
  return `${(sec - (sec % 60)).toString(16)}/${sec.toString(16)}${empaSeq.toString(16).padStart(6, '0')}`;
}

let destSeq = 0;
function freshQueue(): string {
  destSeq += 1;
  return `/queue/acct-test-${process.pid}-${destSeq}`;
}

async function failure(p: Promise<unknown>): Promise<SendFailureReason> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(StompSendError);
    return (e as StompSendError).reason;
  }
  throw new Error('expected the send to fail');
}

/**
 * A TCP relay between the sender and the broker that can drop the broker's RECEIPT frames and
 * cut every connection: the lost-RECEIPT and mid-flight-disconnect cases, made deterministic.
 */
interface Relay {
  port: number;
  dropReceipts: boolean;
  cutAll(): void;
  close(): Promise<void>;
}

function dropReceiptFrames(buffered: string): { out: string; rest: string } {
  let out = '';
  let rest = buffered;
  for (let nul = rest.indexOf('\0'); nul >= 0; nul = rest.indexOf('\0')) {
    const frame = rest.slice(0, nul + 1);
    rest = rest.slice(nul + 1);
    // Frames the sender gets have no body with a NUL in it (CONNECTED, RECEIPT, ERROR).
    if (!frame.replace(/^[\r\n]+/, '').startsWith('RECEIPT\n')) out += frame;
  }
  return { out, rest };
}

async function startRelay(targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const relay: Relay = {
    port: 0,
    dropReceipts: false,
    cutAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      relay.cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (d) => upstream.write(d));
    let pending = '';
    upstream.on('data', (d: Buffer) => {
      if (!relay.dropReceipts) {
        client.write(d);
        return;
      }
      const { out, rest } = dropReceiptFrames(pending + d.toString('latin1'));
      pending = rest;
      if (out) client.write(Buffer.from(out, 'latin1'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.address();
  relay.port = typeof addr === 'object' && addr ? addr.port : 0;
  return relay;
}

describe('accounting STOMP sender with RabbitMQ and an APEL-side receiver', function () {
  this.timeout(180000);
  let pki: TestPki;
  let rabbit: RabbitProcess;
  let signerDn: string;
  const senders: StompSender[] = [];
  const receivers: ApelReceiver[] = [];

  before(async function () {
    requirePeer(this, 'rabbitmq-server', hasRabbitmq(), 'apt-get install rabbitmq-server');
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install openssl');
    requirePeer(this, 'python3-stomp', hasApelReceiverPeers(), 'apt-get install python3-stomp');
    pki = await makeTestPki();
    signerDn = slashDn(pki.client.certFile);
    rabbit = await startRabbitmq({ tls: { ca: pki.ca, server: pki.server, requireClientCert: true } });
    console.log(`      (rabbitmq-server started in ${rabbit.startMs} ms)`);
  });

  afterEach(async () => {
    await Promise.all(senders.splice(0).map((s) => s.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.stop()));
  });

  after(async () => {
    await rabbit?.stop();
  });

  function plain(): BrokerAddress {
    return { host: '127.0.0.1', port: rabbit.stompPort };
  }

  function sender(brokers: BrokerAddress[], destination: string, over: Partial<StompSenderOptions> = {}) {
    const log = memoryLog();
    const s = new StompSender(
      {
        brokers,
        destination,
        login: rabbit.login,
        passcode: rabbit.passcode,
        vhost: '/',
        receiptTimeoutMs: 10000,
        connectTimeoutMs: 5000,
        heartbeatMs: 0,
        reconnect: { initialMs: 100, maxMs: 1000 },
        ...over,
      },
      log,
    );
    senders.push(s);
    s.start();
    return { s, log };
  }

  async function connected(s: StompSender): Promise<void> {
    expect(await until(() => s.connected, 60000), `not connected: ${JSON.stringify(s.status())}`).to.equal(
      true,
    );
  }

  async function receiver(destination: string): Promise<ApelReceiver> {
    const r = await startApelReceiver({
      port: rabbit.stompPort,
      login: rabbit.login,
      passcode: rabbit.passcode,
      destination,
      caFile: pki.ca.certFile,
      validDns: [signerDn],
    });
    receivers.push(r);
    return r;
  }

  it('sends a signed APEL message, resolves on its RECEIPT, and the receiver accepts every record', async () => {
    const queue = freshQueue();
    const r = await receiver(queue);
    const { s } = sender([plain()], queue);
    await connected(s);
    expect(s.broker).to.equal(`127.0.0.1:${rabbit.stompPort}`);
    const msg = jobMessage(3);
    const id = empaId();
    await s.send(smimeSign(msg.text, pki.client), id);
    expect(await r.waitFor(3, 30000)).to.equal(true);
    expect(r.rejects()).to.deep.equal([]);
    const got = r.records();
    expect(got.map((x) => x.fields['LocalJobId'])).to.deep.equal(msg.ids);
    expect(got.every((x) => x.empa_id === id && x.kind === 'job' && x.signer === signerDn)).to.equal(true);
    expect(got[0]!.fields['WallDuration']).to.equal(124);
    expect(r.duplicates()).to.deep.equal([]);
    expect(s.status()).to.include({ connected: true, broker: `127.0.0.1:${rabbit.stompPort}` });
  });

  it('has several sends in flight at once, each settled by its own receipt', async () => {
    const queue = freshQueue();
    const r = await receiver(queue);
    const { s } = sender([plain()], queue);
    await connected(s);
    const msgs = Array.from({ length: 5 }, () => jobMessage(1));
    await Promise.all(msgs.map((m) => s.send(smimeSign(m.text, pki.client), empaId())));
    expect(await r.waitFor(5, 30000)).to.equal(true);
    expect(r.records().map((x) => x.fields['LocalJobId'])).to.have.members(msgs.flatMap((m) => m.ids));
  });

  it('the receiver rejects a whole message for one bad record, and an unlisted signer', async () => {
    const queue = freshQueue();
    const r = await receiver(queue);
    const { s } = sender([plain()], queue);
    await connected(s);
    await s.send(smimeSign(jobMessage(2, 'Colour: blue').text, pki.client), empaId());
    await s.send(smimeSign(jobMessage(1).text, pki.otherClient), empaId());
    await s.send(jobMessage(1).text, empaId()); // unsigned
    expect(await r.waitFor(3, 30000)).to.equal(true);
    expect(r.records()).to.deep.equal([]);
    const reasons = r.rejects().map((x) => x.reason);
    expect(reasons[0]).to.match(/Unknown field/);
    expect(reasons[1]).to.match(/not in the valid DN list/);
    expect(reasons[2]).to.match(/verification failed/);
  });

  it('keeps persistent messages across a broker restart; a control without persistent is lost', async () => {
    const queue = freshQueue();
    const { s } = sender([plain()], queue);
    await connected(s);
    const kept = empaId();
    await s.send(smimeSign(jobMessage(1).text, pki.client), kept);
    const lost = empaId();
    const control = await rawStomp(rabbit.stompPort, {
      login: rabbit.login,
      passcode: rabbit.passcode,
      send: {
        destination: queue,
        headers: { 'empa-id': lost },
        body: smimeSign(jobMessage(1).text, pki.client),
      },
    });
    expect(control, 'the control message was not receipted').to.equal(true);
    await s.stop();

    await rabbit.restart();
    const r = await receiver(queue);
    // A marker sent after subscribing arrives after anything that survived: no timed wait needed.
    const after = sender([plain()], queue).s;
    await connected(after);
    const marker = empaId();
    await after.send(smimeSign(jobMessage(1).text, pki.client), marker);
    expect(await until(() => r.records().some((x) => x.empa_id === marker), 30000)).to.equal(true);
    const ids = r.records().map((x) => x.empa_id);
    expect(ids).to.include(kept);
    expect(ids).not.to.include(lost);
  });

  it('rejects sends while the broker is down and reconnects when it is back', async () => {
    const queue = freshQueue();
    const { s, log } = sender([plain()], queue);
    await connected(s);
    await rabbit.halt();
    try {
      expect(await until(() => !s.connected, 30000)).to.equal(true);
      expect(await failure(s.send('x', empaId()))).to.equal('not-connected');
      expect(s.status().lastError).to.be.a('string');
      expect(
        await until(
          () => log.entries.some((e) => e.level === 'warn' && /could not connect/.test(e.message)),
          30000,
        ),
      ).to.equal(true);
    } finally {
      await rabbit.start();
    }
    await connected(s);
    const r = await receiver(queue);
    await s.send(smimeSign(jobMessage(1).text, pki.client), empaId());
    expect(await r.waitFor(1, 30000)).to.equal(true);
    expect(JSON.stringify(log.entries)).not.to.include(rabbit.passcode);
  });

  it('fails over from a dead first broker to a live second one', async () => {
    const dead: BrokerAddress = { host: '127.0.0.1', port: await freePort() };
    const queue = freshQueue();
    const { s, log } = sender([dead, plain()], queue);
    await connected(s);
    expect(s.broker).to.equal(`127.0.0.1:${rabbit.stompPort}`);
    const warned = log.entries.find(
      (e) => e.level === 'warn' && e.meta?.['broker'] === `127.0.0.1:${dead.port}`,
    );
    expect(warned?.message).to.match(/check that the broker is up/);
    await s.send(smimeSign(jobMessage(1).text, pki.client), empaId());
  });

  it('connects over mutual TLS, and is refused without a client certificate', async () => {
    const tlsPort = rabbit.stompTlsPort!;
    const ca = readFileSync(pki.ca.certFile, 'utf8');
    const queue = freshQueue();
    const r = await receiver(queue);
    const { s } = sender(
      [
        {
          host: '127.0.0.1',
          port: tlsPort,
          tls: {
            ca,
            cert: readFileSync(pki.client.certFile, 'utf8'),
            key: readFileSync(pki.client.keyFile, 'utf8'),
          },
        },
      ],
      queue,
    );
    await connected(s);
    await s.send(smimeSign(jobMessage(1).text, pki.client), empaId());
    expect(await r.waitFor(1, 30000)).to.equal(true);

    const { s: anonymous } = sender([{ host: '127.0.0.1', port: tlsPort, tls: { ca } }], queue);
    expect(await until(() => anonymous.status().lastError !== undefined, 30000)).to.equal(true);
    expect(anonymous.connected).to.equal(false);
  });

  it('rejects with timeout when the RECEIPT is lost, and with disconnected when the link drops', async () => {
    const relay = await startRelay(rabbit.stompPort);
    try {
      const queue = freshQueue();
      const { s, log } = sender([{ host: '127.0.0.1', port: relay.port }], queue, { receiptTimeoutMs: 1500 });
      await connected(s);
      relay.dropReceipts = true;
      expect(await failure(s.send(smimeSign(jobMessage(1).text, pki.client), empaId()))).to.equal('timeout');

      // The timeout forces a reconnect: wait for the second CONNECTED, not the dying first link.
      const connects = (): number =>
        log.entries.filter((e) => e.message === 'connected to accounting broker').length;
      expect(await until(() => connects() === 2 && s.connected, 30000)).to.equal(true);
      const inFlight = s.send(smimeSign(jobMessage(1).text, pki.client), empaId());
      relay.cutAll();
      expect(await failure(inFlight)).to.equal('disconnected');
    } finally {
      await relay.close();
    }
  });
});
