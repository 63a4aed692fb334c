/** Fast checks of the STOMP socket and sender against in-process peers (no broker). */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { until } from '../../test/helpers/poll';
import { StompSendError, StompSender, roundDelayMs, type SenderLog } from './stomp-sender';
import { StompSocket, type StompCloseEvent } from './stomp-socket';

const quiet: SenderLog = { debug: () => 0, info: () => 0, warn: () => 0, error: () => 0 };

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A minimal STOMP peer: CONNECTED for CONNECT, and `onSend` decides the reply to each SEND. */
function fakeBroker(onSend: (headers: Map<string, string>) => string): Server {
  return createServer((sock: Socket) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let nul = buf.indexOf('\0'); nul >= 0; nul = buf.indexOf('\0')) {
        const [head = ''] = buf.slice(0, nul).replace(/^\n+/, '').split('\n\n');
        buf = buf.slice(nul + 1);
        const [command, ...lines] = head.split('\n');
        const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
        if (command === 'CONNECT') sock.write('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
        else if (command === 'SEND') sock.write(onSend(headers));
        else if (command === 'DISCONNECT') sock.end(`RECEIPT\nreceipt-id:${headers.get('receipt')}\n\n\0`);
      }
    });
    sock.on('error', () => undefined);
  });
}

function senderFor(port: number, receiptTimeoutMs = 5000): StompSender {
  return new StompSender(
    {
      brokers: [{ host: '127.0.0.1', port }],
      destination: '/queue/test',
      receiptTimeoutMs,
      connectTimeoutMs: 2000,
      heartbeatMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
    },
    quiet,
  );
}

describe('accounting STOMP transport (in-process peers)', () => {
  let pki: TestPki;

  before(async () => {
    pki = await makeTestPki();
  });

  it('spaces full rounds by initialMs doubling up to maxMs, at least half of it fixed', () => {
    expect(roundDelayMs(0, 1000, 60000, () => 0)).to.equal(500);
    expect(roundDelayMs(0, 1000, 60000, () => 1)).to.equal(1000);
    expect(roundDelayMs(3, 1000, 60000, () => 1)).to.equal(8000);
    expect(roundDelayMs(20, 1000, 60000, () => 0)).to.equal(30000);
  });

  it('rejects a send with not-connected before any connection', async () => {
    const s = senderFor(1);
    const err = await s.send('x', 'a/b').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StompSendError);
    expect((err as StompSendError).reason).to.equal('not-connected');
  });

  it('sends the APEL headers and resolves on the matching RECEIPT only', async () => {
    const seen: Map<string, string>[] = [];
    const server = fakeBroker((h) => {
      seen.push(h);
      return `RECEIPT\nreceipt-id:${h.get('receipt')}\n\n\0`;
    });
    const s = senderFor(await listen(server));
    try {
      s.start();
      expect(await until(() => s.connected, 5000)).to.equal(true);
      await Promise.all([s.send('one', '6a1f2c40/6a1f2c4b0a3f21'), s.send('two', '6a1f2c40/6a1f2c4b0a3f22')]);
      expect(seen[0]!.get('empa-id')).to.equal('6a1f2c40/6a1f2c4b0a3f21');
      expect(seen[0]!.get('receipt')).to.match(/^6a1f2c40\/6a1f2c4b0a3f21#\d+$/);
      expect(seen[0]!.get('persistent')).to.equal('true');
      expect(seen[0]!.get('content-type')).to.equal('text/plain');
      expect(seen[1]!.get('receipt')).not.to.equal(seen[0]!.get('receipt'));
    } finally {
      await s.stop();
      await close(server);
    }
  });

  it("rejects with 'error' when the broker answers a SEND with an ERROR frame", async () => {
    const server = fakeBroker((h) => `ERROR\nreceipt-id:${h.get('receipt')}\nmessage:not allowed\n\n\0`);
    const s = senderFor(await listen(server));
    try {
      s.start();
      expect(await until(() => s.connected, 5000)).to.equal(true);
      const err = await s.send('x', 'a/b').then(
        () => undefined,
        (e: unknown) => e as StompSendError,
      );
      expect(err?.reason).to.equal('error');
      expect(err?.message).to.include('not allowed');
    } finally {
      await s.stop();
      await close(server);
    }
  });

  it('opens a TLS socket only after the handshake has verified the broker', async () => {
    const server = createTlsServer(
      { cert: readFileSync(pki.server.certFile), key: readFileSync(pki.server.keyFile) },
      (sock) => sock.end('CONNECTED\n\n\0'),
    );
    server.on('tlsClientError', () => undefined);
    const port = await listen(server);
    try {
      const good = new StompSocket({
        host: '127.0.0.1',
        port,
        tls: { ca: readFileSync(pki.ca.certFile, 'utf8') },
      });
      const data: string[] = [];
      let opened = false;
      good.onopen = () => (opened = true);
      good.onmessage = (ev) => data.push(Buffer.from(ev.data).toString('latin1'));
      expect(await until(() => data.join('').includes('CONNECTED'), 5000)).to.equal(true);
      expect(opened).to.equal(true);

      // Trusting another CA: TCP connects, the handshake fails, and the socket must never open.
      const bad = new StompSocket({
        host: '127.0.0.1',
        port,
        tls: { ca: readFileSync(pki.selfSigned.certFile, 'utf8') },
      });
      let badOpened = false;
      let closed: StompCloseEvent | undefined;
      bad.onopen = () => (badOpened = true);
      bad.onclose = (ev) => (closed = ev);
      expect(await until(() => closed !== undefined, 5000)).to.equal(true);
      expect(badOpened).to.equal(false);
      expect(closed!.wasClean).to.equal(false);
      expect(bad.lastError).to.match(/certificate/i);
    } finally {
      await close(server);
    }
  });
});
