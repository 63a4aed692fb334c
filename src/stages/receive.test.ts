import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { envelope11, fakeCall, op } from '../../test/helpers/in-process';
import { GatewayError } from '../errors/catalogue';
import { newCall, type CallContext } from '../pipeline/context';
import { receive } from './receive';

const MAX = 1024;
const hook = receive({ maxBodyBytes: MAX });
const BODY = envelope11(op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>'));

/** The fault a hook ended the call with; fails the test when it did not throw a GatewayError. */
async function refusal(run: Promise<unknown>): Promise<GatewayError> {
  try {
    await run;
  } catch (e) {
    expect(e).to.be.instanceOf(GatewayError);
    if (e instanceof GatewayError) return e;
  }
  throw new Error('expected the stage to refuse the call');
}

/** A POST read from the given stream (fakeRequest gives one chunk, then the end). */
function callOn(req: Readable, headers: Record<string, string> = {}): CallContext {
  Object.assign(req, {
    method: 'POST',
    url: '/soap',
    headers: { 'content-type': 'text/xml; charset=utf-8', ...headers },
    socket: { remoteAddress: '127.0.0.1', destroyed: false },
    complete: true,
  });
  return newCall(req as unknown as IncomingMessage, '/soap', 'stream-call');
}

/** A POST whose body arrives in several chunks. */
function chunkedCall(chunks: string[], headers: Record<string, string> = {}): CallContext {
  return callOn(Readable.from(chunks.map((c) => Buffer.from(c))), headers);
}

describe('stages/receive: method, content type and bounded body', () => {
  it('reads a SOAP 1.1 POST: raw holds the body bytes and the version is 1.1', async () => {
    const ctx = fakeCall({ body: BODY });
    await hook(ctx);
    expect(ctx.soapVersion).to.equal('1.1');
    expect(Buffer.isBuffer(ctx.raw)).to.equal(true);
    expect(ctx.raw?.equals(Buffer.from(BODY))).to.equal(true);
  });

  it('chooses SOAP 1.2 for application/soap+xml, whatever its case and parameters', async () => {
    for (const type of [
      'application/soap+xml',
      'application/soap+xml; charset=utf-8',
      'Application/SOAP+XML; charset=utf-8; action="http://soapproxy.symphony/v1/connect"',
    ]) {
      const ctx = fakeCall({ headers: { 'content-type': type }, body: '<x/>' });
      await hook(ctx);
      expect(ctx.soapVersion, type).to.equal('1.2');
      expect(ctx.raw?.toString(), type).to.equal('<x/>');
    }
  });

  it('chooses SOAP 1.1 for text/xml with parameters', async () => {
    const ctx = fakeCall({ headers: { 'content-type': 'TEXT/XML ; charset="utf-8"' }, body: '<x/>' });
    ctx.soapVersion = '1.2';
    await hook(ctx);
    expect(ctx.soapVersion).to.equal('1.1');
  });

  it('keeps the body bytes exactly, including non-ASCII UTF-8', async () => {
    const bytes = Buffer.from('<x>caf\u00e9 \u20ac</x>', 'utf8');
    const ctx = fakeCall({ body: bytes });
    await hook(ctx);
    expect(ctx.raw?.equals(bytes)).to.equal(true);
  });

  it('joins a body that arrives in several chunks', async () => {
    const ctx = chunkedCall(['<a>', 'hello', '</a>']);
    await hook(ctx);
    expect(ctx.raw?.toString()).to.equal('<a>hello</a>');
  });

  it('gives an empty POST an empty raw body (the envelope phase refuses it)', async () => {
    const ctx = fakeCall({});
    await hook(ctx);
    expect(ctx.raw?.length).to.equal(0);
  });

  it('refuses GET and other methods with SSP_METHOD_NOT_ALLOWED before reading the body', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'HEAD']) {
      const ctx = fakeCall({ method, body: BODY });
      const err = await refusal(hook(ctx));
      expect(err.code, method).to.equal('SSP_METHOD_NOT_ALLOWED');
      expect(err.status).to.equal(405);
      expect(ctx.raw, method).to.equal(undefined);
    }
  });

  it('sets the SOAP version from the content type even for a refused method, so the fault matches', async () => {
    const ctx = fakeCall({ method: 'GET', headers: { 'content-type': 'application/soap+xml' } });
    expect((await refusal(hook(ctx))).code).to.equal('SSP_METHOD_NOT_ALLOWED');
    expect(ctx.soapVersion).to.equal('1.2');
  });

  it('refuses a non-SOAP or missing content type with SSP_UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const type of ['application/json', 'text/plain', 'application/xml', 'text/xmlx', '']) {
      const ctx = fakeCall({ headers: { 'content-type': type }, body: BODY });
      const err = await refusal(hook(ctx));
      expect(err.code, type).to.equal('SSP_UNSUPPORTED_MEDIA_TYPE');
      expect(ctx.raw, type).to.equal(undefined);
      expect(ctx.soapVersion, type).to.equal('1.1');
    }
  });

  it('refuses a declared Content-Length over the limit with SSP_BODY_TOO_LARGE, keeping none of it', async () => {
    const ctx = fakeCall({ headers: { 'content-length': String(MAX + 1) }, body: '<x/>' });
    const err = await refusal(hook(ctx));
    expect(err.code).to.equal('SSP_BODY_TOO_LARGE');
    expect(err.status).to.equal(413);
    expect(err.message).to.contain(String(MAX));
    expect(ctx.raw).to.equal(undefined);
  });

  it('reads and drops the rest of a body a few times over the limit, so the client can read the 413', async () => {
    const chunks = Array.from({ length: 3 }, () => 'q'.repeat(MAX));
    const stream = Readable.from(chunks.map((c) => Buffer.from(c)));
    const ctx = callOn(stream, { 'content-length': String(3 * MAX) });
    expect((await refusal(hook(ctx))).code).to.equal('SSP_BODY_TOO_LARGE');
    expect(stream.readableEnded, 'the whole upload was consumed').to.equal(true);
    const streamed = Readable.from(chunks.map((c) => Buffer.from(c)));
    expect((await refusal(hook(callOn(streamed)))).code).to.equal('SSP_BODY_TOO_LARGE');
    expect(streamed.readableEnded).to.equal(true);
    expect(ctx.raw).to.equal(undefined);
  });

  it('refuses a body declared far over the limit at once, reading nothing', async () => {
    const stream = new Readable({ read() {} });
    const ctx = callOn(stream, { 'content-length': String(100 * MAX) });
    expect((await refusal(hook(ctx))).code).to.equal('SSP_BODY_TOO_LARGE');
    expect(stream.readableEnded).to.equal(false);
    stream.destroy();
  });

  it('stops dropping once the rest passes its bound, without waiting for the end', async () => {
    const stream = new Readable({ read() {} });
    const running = hook(callOn(stream));
    for (let i = 0; i < 6; i++) stream.push(Buffer.alloc(MAX, 0x41));
    expect((await refusal(running)).code).to.equal('SSP_BODY_TOO_LARGE');
    expect(stream.readableEnded).to.equal(false);
    stream.destroy();
  });

  it('accepts a declared Content-Length at the limit', async () => {
    const body = 'x'.repeat(MAX);
    const ctx = fakeCall({ headers: { 'content-length': String(MAX) }, body });
    await hook(ctx);
    expect(ctx.raw?.length).to.equal(MAX);
  });

  it('refuses a streamed body over the limit with SSP_BODY_TOO_LARGE', async () => {
    const ctx = fakeCall({ body: 'x'.repeat(MAX + 1) });
    const err = await refusal(hook(ctx));
    expect(err.code).to.equal('SSP_BODY_TOO_LARGE');
    expect(ctx.raw).to.equal(undefined);
  });

  it('counts every chunk against the limit, whatever Content-Length claims', async () => {
    const half = 'y'.repeat(MAX / 2 + 1);
    const lying = chunkedCall([half, half], { 'content-length': '10' });
    expect((await refusal(hook(lying))).code).to.equal('SSP_BODY_TOO_LARGE');
    const unparsable = fakeCall({ headers: { 'content-length': 'lots' }, body: 'z'.repeat(MAX + 1) });
    expect((await refusal(hook(unparsable))).code).to.equal('SSP_BODY_TOO_LARGE');
  });

  it('refuses a body cut short by the client with the coded SSP_INCOMPLETE_REQUEST, not an internal failure', async () => {
    const stream = new Readable({ read() {} });
    const ctx = callOn(stream);
    stream.push('<Envelope');
    const running = hook(ctx);
    const reset = new Error('aborted');
    stream.destroy(reset);
    let thrown: unknown;
    try {
      await running;
    } catch (e) {
      thrown = e;
    }
    expect(thrown).to.be.instanceOf(GatewayError);
    expect(thrown instanceof GatewayError && thrown.code).to.equal('SSP_INCOMPLETE_REQUEST');
    expect(thrown instanceof GatewayError && thrown.cause).to.equal(reset);
    expect(ctx.raw).to.equal(undefined);
  });
});
