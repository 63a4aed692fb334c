/**
 * TCP client for the grid wire protocol (docs/protocol.md).
 * A pool of sockets per cluster; each socket pipelines many requests, matched by id. Socket
 * loss fails in-flight calls with a retryable error and reconnects with capped, jittered
 * backoff, trying the cluster's session-manager addresses in order. Nothing waits forever:
 * every call has a deadline, enforced by one coarse sweep per pool rather than a timer per call.
 */
import { createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { gridTlsConnectOptions, type GridTlsClientOptions } from './grid-tls';
import {
  BatchedWriter,
  bodyKind,
  decodeGridFrame,
  encodeClientFrame,
  ErrorCode,
  FrameReader,
  PROTOCOL_VERSION,
  REPLY_FIELD,
  type ClientFrame,
  type GridFeature,
  type GridFrame,
  type Operation,
  type ReplyBodies,
  type RequestBodies,
} from './protocol';

export interface GridClientOptions {
  /** Cluster name, for messages and metrics. */
  name: string;
  /** host:port of each session manager, tried in order. */
  addresses: string[];
  sharedSecret: string;
  poolSize: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** Calls that may wait for a free slot or a connection, beyond which they fail at once. */
  maxQueued: number;
  clientName: string;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** TLS on the link (mutual: the grid verifies our certificate too); plain TCP when absent. */
  tls?: GridTlsClientOptions;
}

export const GRID_CLIENT_DEFAULTS: Omit<GridClientOptions, 'name' | 'addresses'> = {
  sharedSecret: '',
  poolSize: 2,
  connectTimeoutMs: 3000,
  requestTimeoutMs: 30000,
  maxQueued: 20000,
  clientName: 'symphony-soap-proxy',
  backoffMinMs: 100,
  backoffMaxMs: 5000,
};

/** Why a grid call failed. `transport` errors never reached a grid decision. */
export class GridCallError extends Error {
  constructor(
    readonly kind: 'grid' | 'unavailable' | 'timeout' | 'busy',
    readonly gridCode: ErrorCode,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'GridCallError';
  }
}

/** Errors of the TLS layer itself (certificate, protocol), as opposed to TCP reachability. */
function isTlsFailure(e: Error & { code?: string }): boolean {
  const code = e.code ?? '';
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ALTNAME/.test(code) ||
    /certificate|pinned/i.test(e.message)
  );
}

interface Pending {
  op: Operation;
  deadline: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

interface Queued extends Pending {
  body: unknown;
}

/** One socket to one session manager. */
class GridConnection extends EventEmitter {
  ready = false;
  maxInFlight = 1024;
  /** What the grid announced in its ServerHello (empty for a grid that announces nothing). */
  features: ReadonlySet<string> = new Set();
  private socket: net.Socket | null = null;
  private writer: BatchedWriter | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private addressIndex = 0;
  private attempt = 0;
  private closed = false;
  private lastHeard = 0;
  private heartbeatMs = 5000;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: GridClientOptions) {
    super();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const address = this.opts.addresses[this.addressIndex % this.opts.addresses.length]!;
    const sep = address.lastIndexOf(':');
    const host = address.slice(0, sep);
    const port = Number(address.slice(sep + 1));
    const socket = this.opts.tls
      ? tls.connect(gridTlsConnectOptions(this.opts.tls, host, port))
      : net.connect({ host, port });
    socket.setNoDelay(true);
    this.socket = socket;
    const reader = new FrameReader();
    let handshaken = false;
    const connectTimer = setTimeout(
      () => socket.destroy(new Error('connect timeout')),
      this.opts.connectTimeoutMs,
    );

    socket.on('data', (chunk: Buffer) => {
      this.lastHeard = Date.now();
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        socket.destroy(e as Error);
        return;
      }
      for (const bytes of frames) {
        let frame: GridFrame;
        try {
          frame = decodeGridFrame(bytes);
        } catch (e) {
          // A frame we cannot decode means the stream is out of step: drop this socket only.
          socket.destroy(e as Error);
          return;
        }
        if (!handshaken) {
          if (frame.serverHello) {
            this.maxInFlight = frame.serverHello.maxInFlight || 1024;
            this.features = new Set(frame.serverHello.features ?? []);
            const proof = createHmac('sha256', this.opts.sharedSecret)
              .update(Buffer.from(frame.serverHello.nonce))
              .update(this.opts.clientName, 'utf8')
              .digest();
            socket.write(
              encodeClientFrame({
                id: 1,
                hello: { protocolVersion: PROTOCOL_VERSION, clientName: this.opts.clientName, proof },
              }),
            );
          } else if (frame.helloOk) {
            clearTimeout(connectTimer);
            handshaken = true;
            this.heartbeatMs = frame.helloOk.heartbeatMs || 5000;
            this.onReady(socket);
          } else if (frame.error) {
            // A refused handshake will not fix itself by retrying quickly; back off fully.
            this.emit('refused', frame.error.message);
            this.attempt = 10;
            socket.destroy(new Error(`grid refused the handshake: ${frame.error.message}`));
          }
          continue;
        }
        this.onFrame(frame);
      }
    });
    socket.on('error', (e: Error & { code?: string }) => {
      // 'close' follows and does the work; a failed TLS handshake is worth telling the operator.
      if (!handshaken && this.opts.tls && isTlsFailure(e)) this.emit('linkError', `TLS: ${e.message}`);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      this.onClose(handshaken);
    });
  }

  private onReady(socket: net.Socket): void {
    this.ready = true;
    this.attempt = 0;
    this.nextId = 2;
    this.writer = new BatchedWriter((d) => socket.write(d));
    let seq = 0;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > 3 * this.heartbeatMs) {
        socket.destroy(new Error('grid stopped answering heartbeats'));
        return;
      }
      this.writer?.send(encodeClientFrame({ id: 0, ping: { seq: ++seq } }));
    }, this.heartbeatMs);
    this.heartbeat.unref();
    this.emit('ready');
  }

  private onFrame(frame: GridFrame): void {
    if (frame.id === 0) return; // pong to a heartbeat
    const p = this.pending.get(frame.id);
    if (!p) return; // answer to a call that already timed out
    this.pending.delete(frame.id);
    if (frame.error) {
      const e = frame.error;
      const kind = e.code === ErrorCode.BUSY ? 'busy' : 'grid';
      p.reject(new GridCallError(kind, e.code, e.message, !!e.retryable));
    } else {
      const field = REPLY_FIELD[p.op];
      const kind = bodyKind(frame);
      if (kind !== field) {
        p.reject(
          new GridCallError('grid', ErrorCode.PROTOCOL, `expected ${field} reply, got ${kind}`, false),
        );
      } else {
        p.resolve((frame as unknown as Record<string, unknown>)[field] ?? {});
      }
    }
    this.emit('slot');
  }

  private onClose(wasReady: boolean): void {
    this.ready = false;
    this.writer = null;
    this.socket = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const lost = [...this.pending.values()];
    this.pending.clear();
    for (const p of lost) {
      p.reject(
        new GridCallError(
          'unavailable',
          ErrorCode.ERROR_UNSPECIFIED,
          `connection to grid ${this.opts.name} was lost before it answered`,
          true,
        ),
      );
    }
    if (this.closed) return;
    if (!wasReady) this.addressIndex++; // fail over to the next session manager
    const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** this.attempt++);
    const delay = base / 2 + Math.random() * (base / 2);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
    this.emit('down');
  }

  /** Sends at once; the caller has checked `ready` and the in-flight bound. */
  send(q: Queued): void {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 2 : this.nextId + 1;
    this.pending.set(id, q);
    this.writer!.send(encodeClientFrame({ id, [q.op]: q.body } as ClientFrame));
  }

  sweep(now: number): void {
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(
          new GridCallError(
            'timeout',
            ErrorCode.ERROR_UNSPECIFIED,
            `grid ${this.opts.name} did not answer in time`,
            true,
          ),
        );
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.destroy();
  }
}

/** A pool of connections to one cluster, with a bounded wait queue. */
export class GridClient extends EventEmitter {
  readonly opts: GridClientOptions;
  private readonly conns: GridConnection[] = [];
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private rr = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: Partial<GridClientOptions> & Pick<GridClientOptions, 'name' | 'addresses'>) {
    super();
    this.opts = { ...GRID_CLIENT_DEFAULTS, ...opts };
    if (this.opts.addresses.length === 0) throw new Error(`grid ${this.opts.name} has no addresses`);
    for (let i = 0; i < this.opts.poolSize; i++) {
      const c = new GridConnection(this.opts);
      c.on('ready', () => {
        this.emit('up');
        this.drain();
      });
      c.on('slot', () => this.drain());
      c.on('down', () => this.emit('down'));
      c.on('refused', (m: string) => this.emit('refused', m));
      c.on('linkError', (m: string) => this.emit('linkError', m));
      this.conns.push(c);
      c.start();
    }
    this.sweeper = setInterval(() => this.sweep(), 200);
    this.sweeper.unref();
  }

  /** Whether every live socket's grid announced this feature (false with none live). */
  supports(feature: GridFeature): boolean {
    const live = this.conns.filter((c) => c.ready);
    return live.length > 0 && live.every((c) => c.features.has(feature));
  }

  /** Number of sockets with a completed handshake. */
  get connectedCount(): number {
    return this.conns.filter((c) => c.ready).length;
  }

  call<K extends Operation>(op: K, body: RequestBodies[K], timeoutMs?: number): Promise<ReplyBodies[K]> {
    return new Promise<ReplyBodies[K]>((resolve, reject) => {
      const q: Queued = {
        op,
        body,
        deadline: Date.now() + (timeoutMs ?? this.opts.requestTimeoutMs),
        resolve: resolve as (v: unknown) => void,
        reject,
      };
      const conn = this.pick();
      if (conn && this.queue.length === this.queueHead) conn.send(q);
      else if (this.queue.length - this.queueHead >= this.opts.maxQueued) {
        reject(
          new GridCallError(
            'busy',
            ErrorCode.BUSY,
            `too many calls waiting for grid ${this.opts.name}`,
            true,
          ),
        );
      } else this.queue.push(q);
    });
  }

  /** Round-robin over ready sockets that have a free in-flight slot. */
  private pick(): GridConnection | null {
    const n = this.conns.length;
    for (let k = 0; k < n; k++) {
      const c = this.conns[(this.rr + k) % n]!;
      if (c.ready && c.inFlight < c.maxInFlight) {
        this.rr = (this.rr + k + 1) % n;
        return c;
      }
    }
    return null;
  }

  private drain(): void {
    while (this.queueHead < this.queue.length) {
      const conn = this.pick();
      if (!conn) break;
      conn.send(this.queue[this.queueHead++]!);
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) c.sweep(now);
    if (this.queueHead < this.queue.length) {
      const keep: Queued[] = [];
      for (let i = this.queueHead; i < this.queue.length; i++) {
        const q = this.queue[i]!;
        if (q.deadline > now) keep.push(q);
        else {
          q.reject(
            new GridCallError(
              'unavailable',
              ErrorCode.ERROR_UNSPECIFIED,
              `no connection to grid ${this.opts.name} could be made in time`,
              true,
            ),
          );
        }
      }
      this.queue.length = 0;
      this.queue.push(...keep);
      this.queueHead = 0;
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const c of this.conns) c.close();
    for (let i = this.queueHead; i < this.queue.length; i++) {
      this.queue[i]!.reject(
        new GridCallError('unavailable', ErrorCode.ERROR_UNSPECIFIED, 'client closed', true),
      );
    }
    this.queue.length = 0;
    this.queueHead = 0;
  }
}
