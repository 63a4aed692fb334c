/**
 * The reference grid's TCP front end: framing, handshake, heartbeats and per-socket flow
 * control, in front of the SessionManager.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { TlsMaterial, type TlsReload } from '../backend/grid-tls';
import {
  BatchedWriter,
  ErrorCode,
  FrameReader,
  PROTOCOL_VERSION,
  bodyKind,
  decodeClientFrame,
  encodeGridFrame,
  type ClientFrame,
  type GridFrame,
  type RequestBodies,
  GRID_FEATURES,
} from '../backend/protocol';
import type { GridConfig } from './config';
import { GridError } from './errors';
import type { Logger } from './scheduler';
import { DeliveryOwner, PendingFetch, SessionManager } from './session-manager';

/** Gauges describe now; the other numbers count since the grid started. */
export interface GridStats {
  sockets: number;
  connections: number;
  sessions: number;
  pendingTasks: number;
  runningTasks: number;
  outputsReady: number;
  /** Gauge: outputs fetched with hold_ms and not yet acknowledged. */
  outputsHeld: number;
  /** Tasks queued by sendTasks; a duplicate submit suppressed by its submit key adds nothing. */
  tasksAccepted: number;
  /** sendTasks requests answered from a remembered submit key, queueing nothing. */
  duplicateSubmits: number;
  /** connect and createSession answered from a remembered request key, opening nothing. */
  duplicateRequests: number;
  /** Held outputs put back for another fetch: hold expired, or the fetching socket closed. */
  outputsRequeued: number;
  tasksCompleted: number;
  tasksFailed: number;
  workers: number;
  workerRestarts: number;
}

export interface Grid {
  address: { host: string; port: number };
  /** Stops listening, drops every socket, kills the workers; resolves once all are gone. */
  close(): Promise<void>;
  stats(): GridStats;
  /** 'tls' or 'plain', as configured. */
  transport: 'tls' | 'plain';
  /** TLS files to watch (empty without TLS). */
  tlsFiles: string[];
  /** Reads the TLS certificate, key and CAs again; new sockets use them, open ones carry on. */
  reloadTls(): TlsReload | null;
}

export interface StartGridOptions {
  /** Operational messages (worker crashes, dropped sockets). Never given payloads or passwords. */
  log?: Logger;
}

/** A silent socket is dropped after this many heartbeat periods. */
const HEARTBEAT_MISSES = 3;
/** After a PROTOCOL error the grid half-closes; a client that does not close is destroyed. */
const CLOSE_GRACE_MS = 1000;

export async function startGrid(config: GridConfig, options: StartGridOptions = {}): Promise<Grid> {
  const log = options.log ?? (() => {});
  const manager = new SessionManager(config, log);
  await manager.start();

  const peers = new Set<Peer>();
  const onSocket = (socket: Socket): void => {
    const peer = new Peer(socket, config, manager, log);
    peers.add(peer);
    socket.on('close', () => {
      peers.delete(peer);
      peer.onClose();
    });
  };
  let material: TlsMaterial | null = null;
  let server: Server;
  if (config.tls) {
    try {
      material = new TlsMaterial(config.tls);
    } catch (e) {
      await manager.close();
      throw e;
    }
    const tlsServer = tls.createServer(
      {
        ...material.options,
        requestCert: true,
        rejectUnauthorized: config.tls.requireClientCert,
        noDelay: true,
      },
      onSocket,
    );
    // A refused client certificate is the one TLS failure an operator can act on.
    tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket) => {
      // A peer that hangs up mid-handshake (a port probe) is not news.
      if (err.code === 'ECONNRESET' || /socket hang up/.test(err.message)) return;
      log(`TLS handshake with ${socket.remoteAddress ?? 'a client'} failed: ${err.message}`);
    });
    server = tlsServer;
  } else {
    server = createServer({ noDelay: true }, onSocket);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await manager.close();
    throw err;
  }
  server.on('error', (err) => log(`server error: ${err.message}`));

  // Drop sockets that have been silent for too long; checked twice per period.
  const heartbeat = setInterval(
    () => {
      const cutoff = Date.now() - HEARTBEAT_MISSES * config.heartbeatMs;
      for (const peer of peers) if (peer.lastSeen < cutoff) peer.drop('silent for too long');
    },
    Math.max(5, Math.floor(config.heartbeatMs / 2)),
  );
  heartbeat.unref();

  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    address: { host: config.host, port },
    stats: () => ({ sockets: peers.size, ...manager.stats() }),
    transport: material ? 'tls' : 'plain',
    tlsFiles: material ? material.paths : [],
    reloadTls: () => {
      if (!material) return null;
      const r = material.reload();
      // setSecureContext applies to handshakes from now on; established sockets keep theirs.
      if (r.ok) (server as tls.Server).setSecureContext(material.options);
      return r;
    },
    close: () => {
      closing ??= (async () => {
        clearInterval(heartbeat);
        const closed = closeServer(server);
        for (const peer of peers) peer.socket.destroy();
        await Promise.all([closed, manager.close()]);
      })();
      return closing;
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function errorFrame(id: number, err: GridError): Buffer {
  return encodeGridFrame({ id, error: { code: err.code, message: err.message, retryable: err.retryable } });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class Peer {
  lastSeen = Date.now();
  private readonly reader: FrameReader;
  private readonly writer: BatchedWriter;
  private readonly nonce = randomBytes(32);
  private authenticated = false;
  private closing = false;
  private paused = false;
  private inFlight = 0;
  private readonly waiting = new Set<PendingFetch>();
  /** Held fetches answered on this socket, re-queued when it closes. */
  private readonly deliveries = new DeliveryOwner();

  constructor(
    readonly socket: Socket,
    private readonly config: GridConfig,
    private readonly manager: SessionManager,
    private readonly log: Logger,
  ) {
    socket.setNoDelay(true);
    this.reader = new FrameReader(config.maxFrameBytes);
    this.writer = new BatchedWriter((data) => {
      if (socket.destroyed) return false;
      const ok = socket.write(data);
      // Stop reading from a client that does not read its replies, until it catches up.
      if (!ok && !this.paused) {
        this.paused = true;
        socket.pause();
      }
      return ok;
    });
    socket.on('drain', () => {
      if (!this.paused) return;
      this.paused = false;
      this.lastSeen = Date.now();
      if (!this.closing) socket.resume();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {}); // 'close' follows; resets by clients are routine
    this.writer.send(
      encodeGridFrame({
        id: 0,
        serverHello: {
          protocolVersion: PROTOCOL_VERSION,
          nonce: this.nonce,
          gridName: config.gridName,
          maxInFlight: config.maxInFlight,
          maxFrameBytes: config.maxFrameBytes,
          features: [...GRID_FEATURES],
        },
      }),
    );
  }

  onClose(): void {
    this.closing = true;
    for (const w of this.waiting) w.cancel();
    this.waiting.clear();
    this.deliveries.close();
  }

  drop(reason: string): void {
    this.log(
      `dropping client ${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}: ${reason}`,
    );
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.lastSeen = Date.now();
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.protocolError(0, describe(err));
      return;
    }
    for (const bytes of frames) {
      if (this.closing) return;
      let frame: ClientFrame;
      try {
        frame = decodeClientFrame(bytes);
      } catch (err) {
        this.protocolError(0, `malformed frame: ${describe(err)}`);
        return;
      }
      this.onFrame(frame);
    }
  }

  private onFrame(frame: ClientFrame): void {
    const id = frame.id;
    const kind = bodyKind(frame);
    if (!this.authenticated) {
      if (kind === 'hello') this.hello(id, frame.hello!);
      else
        this.protocolError(id, `expected hello as the first frame, got ${kind ?? 'a frame without a body'}`);
      return;
    }
    if (kind === 'ping') {
      // Always answer, id 0 included: the client's liveness check needs traffic on idle sockets.
      this.writer.send(encodeGridFrame({ id, pong: { seq: frame.ping!.seq } }));
      return;
    }
    if (kind === 'hello') {
      this.protocolError(id, 'hello was already received on this socket');
      return;
    }
    if (this.inFlight >= this.config.maxInFlight) {
      this.writer.send(
        errorFrame(
          id,
          new GridError(
            ErrorCode.BUSY,
            `more than ${this.config.maxInFlight} requests in flight on this socket`,
            true,
          ),
        ),
      );
      return;
    }
    this.inFlight++;
    try {
      this.request(id, kind, frame);
    } catch (err) {
      this.inFlight--;
      this.fail(id, err);
    }
  }

  /** Runs one request; synchronous replies are sent here, fetches may complete later. */
  private request(id: number, kind: string | undefined, frame: ClientFrame): void {
    const m = this.manager;
    switch (kind) {
      case 'connect': {
        const b = frame.connect!;
        this.reply({
          id,
          connect: { connectionId: m.connect(b.applicationName, b.username, b.password, b.requestKey ?? '') },
        });
        return;
      }
      case 'closeConnection':
        m.closeConnection(frame.closeConnection!.connectionId);
        this.reply({ id, closed: {} });
        return;
      case 'createSession': {
        const b = frame.createSession!;
        this.reply({
          id,
          session: { sessionId: m.createSession(b.connectionId, b.attributes, b.requestKey ?? '') },
        });
        return;
      }
      case 'openSession': {
        const b = frame.openSession!;
        this.reply({ id, session: { sessionId: m.openSession(b.connectionId, b.sessionId) } });
        return;
      }
      case 'closeSession': {
        const b = frame.closeSession!;
        m.closeSession(b.sessionId, b.mode);
        this.reply({ id, closed: {} });
        return;
      }
      case 'sessionStatus':
        this.reply({ id, sessionStatus: m.status(frame.sessionStatus!.sessionId) });
        return;
      case 'sendTasks': {
        const b = frame.sendTasks!;
        this.reply({ id, sendTasks: { taskIds: m.sendTasks(b.sessionId, b.tasks, b.submitKey ?? '') } });
        return;
      }
      case 'fetchOutputs':
        this.fetch(id, frame.fetchOutputs!);
        return;
      case 'ackOutputs': {
        const b = frame.ackOutputs!;
        m.ackOutputs(b.sessionId, b.deliveryId);
        this.reply({ id, closed: {} });
        return;
      }
      default:
        this.inFlight--;
        this.protocolError(id, `frame carries no known request (${kind ?? 'no body'})`);
    }
  }

  private fetch(id: number, b: RequestBodies['fetchOutputs']): void {
    const result = this.manager.fetchOutputs(
      b.sessionId,
      b.countMax,
      b.waitMs ?? 0,
      b.holdMs ?? 0,
      this.deliveries,
    );
    if (!(result instanceof PendingFetch)) {
      this.reply({ id, fetchOutputs: result });
      return;
    }
    this.waiting.add(result);
    result.promise.then(
      (fetched) => {
        this.waiting.delete(result);
        this.reply({ id, fetchOutputs: fetched });
      },
      (err: unknown) => {
        this.waiting.delete(result);
        this.inFlight--;
        this.fail(id, err);
      },
    );
  }

  /** Sends a reply and releases its in-flight slot; never throws. */
  private reply(frame: GridFrame): void {
    let bytes: Buffer;
    try {
      bytes = encodeGridFrame(frame);
    } catch (err) {
      this.log(`cannot encode a reply: ${describe(err)}`);
      bytes = errorFrame(frame.id, new GridError(ErrorCode.INTERNAL, 'the reply could not be encoded'));
    }
    this.inFlight--;
    if (!this.socket.destroyed) this.writer.send(bytes);
  }

  private fail(id: number, err: unknown): void {
    let gridError: GridError;
    if (err instanceof GridError) gridError = err;
    else {
      this.log(`internal error: ${describe(err)}`);
      gridError = new GridError(ErrorCode.INTERNAL, describe(err));
    }
    if (!this.socket.destroyed) this.writer.send(errorFrame(id, gridError));
  }

  private hello(id: number, hello: RequestBodies['hello']): void {
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.protocolError(
        id,
        `protocol version ${hello.protocolVersion} is not supported; this grid speaks version ${PROTOCOL_VERSION}`,
      );
      return;
    }
    if (this.config.sharedSecret !== '') {
      const expected = createHmac('sha256', this.config.sharedSecret)
        .update(this.nonce)
        .update(hello.clientName, 'utf8')
        .digest();
      const proof = hello.proof ?? new Uint8Array(0);
      if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
        this.protocolError(
          id,
          'bad hello proof: HMAC-SHA256(shared secret, nonce || client name) does not match',
        );
        return;
      }
    }
    this.authenticated = true;
    this.writer.send(
      encodeGridFrame({
        id,
        helloOk: { gridName: this.config.gridName, heartbeatMs: this.config.heartbeatMs },
      }),
    );
  }

  /** Reports a PROTOCOL error and closes the socket once the reply (and any before it) is written. */
  private protocolError(id: number, message: string): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.pause();
    this.writer.send(errorFrame(id, new GridError(ErrorCode.PROTOCOL, message, false)));
    // Queued after the writer's flush, which was scheduled when the first frame of this tick was sent.
    setImmediate(() => {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    });
  }
}
