/**
 * The WebSocket-like socket that @stomp/stompjs drives, over plain TCP or TLS (Node has no
 * STOMP transport of its own). Same contract as @stomp/tcp-wrapper, plus TLS: a TLS socket opens
 * on `secureConnect`, after the handshake and the broker's certificate check, never on the
 * plain `connect` that fires before them (docs/design/accounting.md 5.1, pitfall 13).
 */
import { createRequire } from 'node:module';
import { isIP, Socket, createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { IStompSocket, StompSocketState } from '@stomp/stompjs' with { 'resolution-mode': 'import' };

type StompJs = typeof import('@stomp/stompjs', { with: { 'resolution-mode': 'import' } });
/** @stomp/stompjs ships a CommonJS bundle beside its ESM types, so a synchronous require works. */
export const stompjs = createRequire(__filename)('@stomp/stompjs') as StompJs;
const { CONNECTING, OPEN, CLOSING, CLOSED } = stompjs.StompSocketState;

/** PEM texts (not file names): the caller reads the files, so a bad path fails at config load. */
export interface StompTlsOptions {
  /** Trust anchors for the broker certificate; the system store when absent. */
  ca?: string;
  /** Client certificate and key, for brokers that require mutual TLS. */
  cert?: string;
  key?: string;
  /** Name the broker certificate must carry; defaults to the host unless it is an IP address. */
  servername?: string;
}

export interface StompSocketOptions {
  host: string;
  port: number;
  tls?: StompTlsOptions;
}

/** What `onclose` receives: the shape of a WebSocket CloseEvent that stompjs reads. */
export interface StompCloseEvent {
  type: 'CloseEvent';
  wasClean: boolean;
  code: number;
  reason: string;
}

export interface StompErrorEvent {
  type: 'Error';
  message: string;
}

/** Code of the close event after `terminate()`, as @stomp/tcp-wrapper reports it. */
const TERMINATED = 4001;
/** A peer that ignores our FIN must not keep the socket (and the process) alive. */
const CLOSE_GRACE_MS = 2000;

export class StompSocket implements IStompSocket {
  readonly url: string;
  onclose: ((ev: StompCloseEvent) => void) | null = null;
  onerror: ((ev: StompErrorEvent) => void) | null = null;
  onmessage: ((ev: { data: ArrayBuffer }) => void) | null = null;
  onopen: (() => void) | null = null;
  /** Set by stompjs; data is always delivered as ArrayBuffer. */
  binaryType = 'arraybuffer';
  /** The last transport error (refused, TLS verification, reset), for the sender's logs. */
  lastError: string | undefined;

  private state: StompSocketState = CONNECTING;
  private readonly socket: Socket;
  private terminated = false;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(opts: StompSocketOptions) {
    this.url = `${opts.tls ? 'ssl' : 'tcp'}://${opts.host}:${opts.port}`;
    this.socket = opts.tls ? openTls(opts.host, opts.port, opts.tls) : createConnection(opts.port, opts.host);
    this.socket.once(opts.tls ? 'secureConnect' : 'connect', () => this.opened());
    this.socket.on('data', (chunk: Buffer) => this.received(chunk));
    this.socket.on('error', (err) => this.failed(err));
    this.socket.once('close', (hadError) => this.closed(hadError));
  }

  get readyState(): number {
    return this.state;
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.state !== OPEN) return;
    this.socket.write(toBuffer(data));
  }

  /** Ends the connection politely; a socket still connecting is simply dropped. */
  close(): void {
    if (this.state === CLOSED) return;
    const connecting = this.state === CONNECTING;
    this.state = CLOSING;
    if (connecting) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  /** Drops the connection at once (stompjs calls this on heart-beat loss or a forced disconnect). */
  terminate(): void {
    if (this.state === CLOSED) return;
    this.state = CLOSING;
    this.terminated = true;
    this.socket.destroy();
  }

  private opened(): void {
    if (this.state !== CONNECTING) return;
    this.state = OPEN;
    this.onopen?.();
  }

  private received(chunk: Buffer): void {
    // stompjs' parser copies the bytes; an exact ArrayBuffer keeps the declared event type honest.
    const data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer;
    this.onmessage?.({ data });
  }

  private failed(err: Error): void {
    this.lastError = err.message;
    this.onerror?.({ type: 'Error', message: err.message });
  }

  private closed(hadError: boolean): void {
    clearTimeout(this.closeTimer);
    this.state = CLOSED;
    const clean = !hadError && !this.terminated;
    this.onclose?.({
      type: 'CloseEvent',
      wasClean: clean,
      code: this.terminated ? TERMINATED : 1000,
      reason: this.lastError ?? '',
    });
  }
}

function openTls(host: string, port: number, tls: StompTlsOptions): Socket {
  // SNI must not carry an IP address (RFC 6066); the certificate is still checked against it.
  const servername = tls.servername ?? (isIP(host) ? undefined : host);
  return tlsConnect({
    host,
    port,
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    ...(servername !== undefined ? { servername } : {}),
    rejectUnauthorized: true,
  });
}

function toBuffer(data: string | ArrayBufferLike | Blob | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return Buffer.from(data);
  // stompjs never hands us a Blob in Node; refuse rather than send something wrong.
  throw new TypeError('StompSocket cannot send a Blob; pass a string or bytes');
}
