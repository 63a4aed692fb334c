/**
 * The SOAP listener. Plain node:http rather than express on this path: the pipeline owns
 * routing, body reading and error rendering, and the bench shows the difference (README).
 */
import { endpointUrl } from './endpoint-url';
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { newCall } from '../pipeline/context';
import type { Pipeline } from '../pipeline/phases';
import type { WsdlDocuments } from './wsdl-serving';

export interface SoapServerOptions {
  path: string;
  publicUrl?: string;
  keepAliveTimeoutMs: number;
  requestTimeoutMs: number;
  /** HTTPS (optionally mutual TLS) instead of plain HTTP. */
  tls?: https.ServerOptions;
  /**
   * Whether a path serves the WSDL documents. Without it only `path` does; with an SLA control
   * file every ServiceVersion uri does, and the answer may change on reload.
   */
  isServicePath?: (path: string) => boolean;
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
  pipeline: Pipeline,
  docs: WsdlDocuments,
): http.Server | https.Server {
  const isServicePath = opts.isServicePath ?? ((p: string) => p === opts.path);
  const gate = opts.drain;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (gate) {
      gate.inFlight++;
      res.once('close', () => gate.inFlight--);
      // A keep-alive connection would otherwise bring the next call to a proxy that is leaving.
      if (gate.draining) res.setHeader('connection', 'close');
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    // Every POST is a SOAP call: the pipeline decides whether its path serves one (and answers
    // a SOAP fault if not). Other methods are document requests or mistakes.
    if (req.method !== 'POST') {
      if (!isServicePath(path)) {
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
    }
    void handle(req, res, path, pipeline);
  };
  const server = opts.tls ? https.createServer(opts.tls, listener) : http.createServer(listener);
  server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  server.requestTimeout = opts.requestTimeoutMs;
  return server;
}

/** The address written into a served WSDL: the path it was fetched from, so each version's WSDL points at itself. */
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
      .end(
        docs.wsdl(
          endpointUrl(req, path, { publicUrl: opts.publicUrl, path: opts.path, tls: opts.tls !== undefined }),
        ),
      );
    return;
  }
  const xsd = params.get('xsd');
  const text = xsd
    ? docs.xsd(
        xsd,
        endpointUrl(req, path, { publicUrl: opts.publicUrl, path: opts.path, tls: opts.tls !== undefined }),
      )
    : undefined;
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
  path: string,
  pipeline: Pipeline,
): Promise<void> {
  const ctx = newCall(req, path, nextCorrelationId());
  const answer = await pipeline.handle(ctx);
  // A body we stopped reading must not be parsed as the next request on this socket.
  if (answer.fault && (answer.fault.code === 'SSP_BODY_TOO_LARGE' || !req.complete)) {
    answer.headers['connection'] = 'close';
  }
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
  pipeline.complete(ctx, answer);
}
