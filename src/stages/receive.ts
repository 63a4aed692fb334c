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
    if (declared > opts.maxBodyBytes) throw tooLarge(opts.maxBodyBytes);
    ctx.raw = await readBody(req, opts.maxBodyBytes);
  };
}

function tooLarge(max: number): GatewayError {
  return new GatewayError('SSP_BODY_TOO_LARGE', `the request body exceeds ${max} bytes`);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        req.off('data', onData);
        // Stop reading; the fault is sent and the connection closed after it.
        req.pause();
        reject(tooLarge(max));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
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
