import { expect } from 'chai';
import { ErrorCode, PROTOCOL_VERSION, encodeClientFrame } from '../../src/backend/protocol';
import type { Grid } from '../../src/grid/server';
import { startTestGrid } from './helpers';
import { GridCallError, RawClient } from './raw-client';

const SECRET = 'test-secret';

describe('grid handshake', () => {
  let grid: Grid;
  let port: number;

  before(async () => {
    grid = await startTestGrid({
      sharedSecret: SECRET,
      gridName: 'hs-grid',
      maxInFlight: 7,
      heartbeatMs: 1000,
    });
    port = grid.address.port;
  });
  after(() => grid.close());

  it('sends ServerHello at once and accepts a correct proof', async () => {
    const client = await RawClient.open(port);
    const hello = await client.serverHello;
    expect(hello.protocolVersion).to.equal(PROTOCOL_VERSION);
    expect(hello.nonce).to.have.length(32);
    expect(hello.gridName).to.equal('hs-grid');
    expect(hello.maxInFlight).to.equal(7);
    expect(hello.maxFrameBytes).to.equal(64 * 1024 * 1024);
    const ok = await client.hello({ secret: SECRET });
    expect(ok).to.include({ gridName: 'hs-grid', heartbeatMs: 1000 });
    expect(await client.call('ping', { seq: 42 })).to.include({ seq: 42 });
    await client.close();
  });

  it('uses a fresh nonce for every socket', async () => {
    const a = await RawClient.open(port);
    const b = await RawClient.open(port);
    const [ha, hb] = await Promise.all([a.serverHello, b.serverHello]);
    expect(Buffer.from(ha.nonce).equals(Buffer.from(hb.nonce))).to.equal(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a bad proof with PROTOCOL and closes the socket', async () => {
    const client = await RawClient.open(port);
    const err = await client.hello({ secret: 'wrong' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(GridCallError);
    expect((err as GridCallError).code).to.equal(ErrorCode.PROTOCOL);
    expect((err as GridCallError).message).to.match(/proof/);
    expect((err as GridCallError).retryable).to.equal(false);
    await client.closed;
    expect(client.socket.destroyed).to.equal(true);
  });

  it('refuses a wrong protocol version', async () => {
    const client = await RawClient.open(port);
    const err = await client.hello({ secret: SECRET, protocolVersion: 2 }).catch((e: unknown) => e);
    expect((err as GridCallError).code).to.equal(ErrorCode.PROTOCOL);
    expect((err as GridCallError).message).to.match(/version 2/);
    await client.closed;
  });

  it('refuses any request before hello', async () => {
    const client = await RawClient.open(port);
    const err = await client.callError('connect', { applicationName: 'echo', username: 'u', password: 'p' });
    expect(err.code).to.equal(ErrorCode.PROTOCOL);
    expect(err.message).to.match(/hello/);
    await client.closed;
  });

  it('answers a malformed frame with PROTOCOL, closes that socket and keeps serving others', async () => {
    const other = await RawClient.connect(port, { secret: SECRET });
    const bad = await RawClient.connect(port, { secret: SECRET });
    // Length 3 followed by bytes that are not a valid protobuf message (truncated varint field).
    bad.sendRaw(Buffer.from([0, 0, 0, 3, 0x08, 0xff, 0xff]));
    await bad.closed;
    const errors = bad.frames.filter((f) => f.error);
    expect(errors).to.have.length(1);
    expect(errors[0]!.error!.code).to.equal(ErrorCode.PROTOCOL);
    expect(await other.call('ping', { seq: 1 })).to.include({ seq: 1 });
    await other.close();
  });

  it('refuses a frame over maxFrameBytes', async () => {
    const client = await RawClient.connect(port, { secret: SECRET });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 * 1024 + 1);
    client.sendRaw(header);
    await client.closed;
    const error = client.frames.find((f) => f.error)?.error;
    expect(error?.code).to.equal(ErrorCode.PROTOCOL);
    expect(error?.message).to.match(/exceeds/);
  });

  it('refuses a second hello', async () => {
    const client = await RawClient.connect(port, { secret: SECRET });
    const err = await client.hello({ secret: SECRET }).catch((e: unknown) => e);
    expect((err as GridCallError).code).to.equal(ErrorCode.PROTOCOL);
    await client.closed;
  });

  it('answers a keepalive ping with id 0, so idle sockets carry traffic both ways', async () => {
    const client = await RawClient.connect(port, { secret: SECRET });
    client.sendRaw(encodeClientFrame({ id: 0, ping: { seq: 9 } }));
    expect(await client.call('ping', { seq: 10 })).to.include({ seq: 10 });
    expect(client.frames.filter((f) => f.pong).map((f) => f.pong!.seq)).to.deep.equal([9, 10]);
    await client.close();
  });

  it('drops a socket that stays silent for three heartbeat periods', async () => {
    const quiet = await startTestGrid({ heartbeatMs: 100 });
    try {
      const client = await RawClient.connect(quiet.address.port);
      const t0 = Date.now();
      await client.closed;
      const elapsed = Date.now() - t0;
      expect(elapsed).to.be.within(250, 2000);
    } finally {
      await quiet.close();
    }
  });

  it('keeps a socket that pings', async () => {
    const lively = await startTestGrid({ heartbeatMs: 100 });
    try {
      const client = await RawClient.connect(lively.address.port);
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 80));
        await client.call('ping', { seq: i });
      }
      expect(client.socket.destroyed).to.equal(false);
      await client.close();
    } finally {
      await lively.close();
    }
  });

  it('accepts any proof when the shared secret is empty, but still checks the version', async () => {
    const dev = await startTestGrid({ sharedSecret: '' });
    try {
      const ok = await RawClient.connect(dev.address.port, { proof: new Uint8Array([1, 2, 3]) });
      expect(await ok.call('ping', { seq: 3 })).to.include({ seq: 3 });
      await ok.close();
      const old = await RawClient.open(dev.address.port);
      const err = await old.hello({ protocolVersion: 0 }).catch((e: unknown) => e);
      expect((err as GridCallError).code).to.equal(ErrorCode.PROTOCOL);
      await old.closed;
    } finally {
      await dev.close();
    }
  });
});
