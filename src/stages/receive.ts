/** Reads the HTTP request: POST only, a SOAP content type, and a bounded body. */
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors/catalogue';
import type { CallContext } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import { versionFromContentType } from '../soap/envelope';

export function receive(opts: { maxBodyBytes: number }): Hook<CallContext> {
  return async (ctx) => {
    const { req } = ctx;
    const version = versionFromContentType(req.headers['content-type']);
    if (version) ctx.soapVersion = version;
    if (req.method !== 'POST')
      throw new GatewayError('SSP_METHOD_NOT_ALLOWED', `method ${req.method} is not allowed`);
    if (!version) {
      throw new GatewayError(
        'SSP_UNSUPPORTED_MEDIA_TYPE',
        `content type '${req.headers['content-type'] ?? ''}' is not a SOAP content type`,
      );
    }
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > opts.maxBodyBytes) {
      // Within bounds, the rest is read and dropped before the answer, so the client (still
      // uploading) reads our 413 instead of a reset. Far beyond them, it is refused at once.
      if (declared <= opts.maxBodyBytes * DISCARD_FACTOR) await discard(req, declared);
      throw tooLarge(opts.maxBodyBytes);
    }
    ctx.raw = await readBody(req, opts.maxBodyBytes);
  };
}

/** How much more than the limit is read and dropped to answer cleanly (like nginx's lingering close). */
const DISCARD_FACTOR = 4;
/** Longest wait for the dropped rest of a body; a slow client is then cut off. */
const DISCARD_MS = 10_000;

/** Reads and drops up to `limit` bytes until the body ends, the limit is passed or time is up. */
function discard(req: IncomingMessage, limit: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const done = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.pause();
      resolve();
    };
    const onData = (c: Buffer): void => {
      seen += c.length;
      if (seen > limit) done();
    };
    const timer = setTimeout(done, DISCARD_MS);
    timer.unref();
    req.on('data', onData);
    req.once('end', done);
    req.once('error', done);
    if (req.readableEnded) done();
  });
}

function tooLarge(max: number): GatewayError {
  return new GatewayError('SSP_BODY_TOO_LARGE', `the request body exceeds ${max} bytes`);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        req.off('data', onData);
        // Drop what follows, within bounds, then answer; the connection is closed after it.
        void discard(req, max * (DISCARD_FACTOR - 1)).then(() => reject(tooLarge(max)));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (!over) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    // A client that goes away mid-body is a coded refusal, not an internal failure.
    req.on('error', (e) =>
      reject(
        new GatewayError(
          'SSP_INCOMPLETE_REQUEST',
          'the connection closed before the request body was complete',
          {
            cause: e,
          },
        ),
      ),
    );
  });
}
