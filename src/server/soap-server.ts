/**
 * The SOAP listener. Plain node:http rather than express on this path: the pipeline owns
 * routing, body reading and error rendering, and the bench shows the difference (README).
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { GatewayError, isGatewayError } from '../errors/catalogue';
import { log } from '../log';
import type { RequestContext } from '../pipeline/context';
import { StoreUnavailableError } from '../store/store';
import { CONTENT_TYPE, envelope, renderFault, type EnvelopeWriter } from '../soap/envelope';
import type { WsdlDocuments } from './wsdl-serving';

export interface SoapServerOptions {
  path: string;
  publicUrl?: string;
  keepAliveTimeoutMs: number;
  requestTimeoutMs: number;
  /** Writes fault envelopes too, so faults are signed like responses. */
  writeEnvelope?: EnvelopeWriter;
  /** HTTPS (optionally mutual TLS) instead of plain HTTP. */
  tls?: https.ServerOptions;
  /**
   * Whether a path serves SOAP. Without it only `path` does; with an SLA control file every
   * ServiceVersion uri does, and the answer may change on reload.
   */
  isServicePath?: (path: string) => boolean;
  /** Called once per SOAP call, success or fault, after the reply is written: audit and metrics. */
  onDone?: (ctx: RequestContext, fault: GatewayError | null, bytesOut: number) => void;
  /** Counts calls in flight and, once draining, asks clients to close their connections. */
  drain?: DrainGate;
}

/** What a graceful shutdown needs to know about the listener. */
export class DrainGate {
  inFlight = 0;
  draining = false;
}

export function createSoapServer(
  opts: SoapServerOptions,
  run: (ctx: RequestContext) => Promise<void>,
  docs: WsdlDocuments,
): http.Server | https.Server {
  const write = opts.writeEnvelope ?? envelope;
  const isServicePath = opts.isServicePath ?? ((p: string) => p === opts.path);
  const gate = opts.drain;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (gate) {
      gate.inFlight++;
      res.once('close', () => gate.inFlight--);
      // A keep-alive connection would otherwise bring the next call to a proxy that is leaving.
      if (gate.draining) res.setHeader('connection', 'close');
    }
    const q = req.url!.indexOf('?');
    const path = q < 0 ? req.url! : req.url!.slice(0, q);
    const query = q < 0 ? '' : req.url!.slice(q + 1);
    if (!isServicePath(path)) {
      if (req.method === 'POST' && opts.isServicePath) {
        // A SOAP client at a path the control file does not know gets a fault it can parse.
        const err = new GatewayError(
          'SSP_UNKNOWN_SERVICE_VERSION',
          `no service version is served at ${path}`,
        );
        void handle(req, res, () => Promise.reject(err), write, path, opts.onDone);
        return;
      }
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(
          opts.isServicePath
            ? `no service version at ${path}\n`
            : `no service here; the SOAP endpoint is ${opts.path}\n`,
        );
      return;
    }
    if (req.method === 'GET' && query !== '') {
      serveDocument(req, res, query, path, opts, docs);
      return;
    }
    void handle(req, res, run, write, path, opts.onDone);
  };
  const server = opts.tls ? https.createServer(opts.tls, listener) : http.createServer(listener);
  server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  server.requestTimeout = opts.requestTimeoutMs;
  return server;
}

/** The address written into a served WSDL: the path it was fetched from, so each version's WSDL points at itself. */
function endpointUrl(req: IncomingMessage, path: string, opts: SoapServerOptions): string {
  if (opts.publicUrl) return path === opts.path ? opts.publicUrl : new URL(path, opts.publicUrl).toString();
  const host = req.headers.host ?? 'localhost';
  return `${opts.tls ? 'https' : 'http'}://${host}${path}`;
}

function serveDocument(
  req: IncomingMessage,
  res: ServerResponse,
  query: string,
  path: string,
  opts: SoapServerOptions,
  docs: WsdlDocuments,
): void {
  const params = new URLSearchParams(query);
  if (params.has('wsdl') || params.has('WSDL')) {
    res
      .writeHead(200, { 'content-type': 'text/xml; charset=utf-8' })
      .end(docs.wsdl(endpointUrl(req, path, opts)));
    return;
  }
  const xsd = params.get('xsd');
  const text = xsd ? docs.xsd(xsd) : undefined;
  if (text) {
    res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(text);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('ask for ?wsdl or ?xsd=symphony.xsd\n');
}

// Unique per process and cheap: a random prefix once, then a counter (randomBytes per call
// showed up at 7% of proxy CPU in the profile).
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;
function nextCorrelationId(): string {
  return `${ID_PREFIX}-${(++idCounter).toString(36)}`;
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  run: (ctx: RequestContext) => Promise<void>,
  write: EnvelopeWriter,
  path: string,
  onDone: SoapServerOptions['onDone'],
): Promise<void> {
  const ctx: RequestContext = {
    correlationId: nextCorrelationId(),
    messageId: undefined,
    resend: false,
    clientKey: undefined,
    repeated: false,
    startedAt: performance.now(),
    req,
    path,
    soapVersion: '1.1',
    raw: null,
    envelope: null,
    header: null,
    payload: null,
    operation: null,
    args: null,
    signer: null,
    consumer: null,
    result: undefined,
    response: null,
    gridMs: 0,
    policy: null,
    limitVerdict: undefined,
  };
  let fault: GatewayError | null = null;
  let bytesOut: number;
  try {
    await run(ctx);
    res.writeHead(200, {
      'content-type': CONTENT_TYPE[ctx.soapVersion],
      'x-correlation-id': ctx.correlationId,
    });
    res.end(ctx.response);
    bytesOut = ctx.response ? Buffer.byteLength(ctx.response) : 0;
  } catch (e) {
    const err = isGatewayError(e)
      ? e
      : e instanceof StoreUnavailableError
        ? new GatewayError('SSP_STORE_UNAVAILABLE', 'the shared state store is unreachable', { cause: e })
        : new GatewayError('SSP_INTERNAL', 'internal error', { cause: e });
    if (err.detail === 'AuthenticationFault') {
      // Who was refused and why, never what they sent.
      log.warn('request refused', {
        correlationId: ctx.correlationId,
        code: err.code,
        reason: err.message,
        signer: ctx.signer?.subject,
        remote: req.socket.remoteAddress,
      });
    } else if (err.code === 'SSP_INTERNAL') {
      log.error('request failed', {
        correlationId: ctx.correlationId,
        operation: ctx.operation?.name,
        error: e instanceof Error ? e.stack : String(e),
      });
    }
    const rendered = renderFault(err, ctx.soapVersion, ctx.correlationId, write);
    rendered.headers['x-correlation-id'] = ctx.correlationId;
    // A body we stopped reading must not be parsed as the next request on this socket.
    if (err.code === 'SSP_BODY_TOO_LARGE' || !req.complete) rendered.headers['connection'] = 'close';
    res.writeHead(rendered.status, rendered.headers);
    res.end(rendered.body);
    fault = err;
    bytesOut = Buffer.byteLength(rendered.body);
  }
  // Outside the try: a failure in audit or metrics must not try to answer the client twice.
  try {
    onDone?.(ctx, fault, bytesOut);
  } catch (e) {
    log.error('recording a finished call failed', {
      correlationId: ctx.correlationId,
      error: e instanceof Error ? e.message : String(e),
    });
  }
}
