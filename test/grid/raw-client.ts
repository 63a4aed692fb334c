/**
 * Minimal grid protocol client for the grid's own tests: raw TCP, handshake, and requests
 * matched to replies by id. Deliberately independent of src/backend/client.ts.
 */
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import {
  FrameReader,
  PROTOCOL_VERSION,
  REPLY_FIELD,
  decodeGridFrame,
  encodeClientFrame,
  type ClientFrame,
  type ErrorCode,
  type GridFrame,
  type Operation,
  type ReplyBodies,
  type RequestBodies,
  type ServerHello,
} from '../../src/backend/protocol';

export type RequestBody = { [K in Operation]: { [P in K]: RequestBodies[K] } }[Operation];

/** A GridError reply, thrown by RawClient.call. */
export class GridCallError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface HandshakeOptions {
  secret?: string;
  clientName?: string;
  protocolVersion?: number;
  /** Replaces the computed proof. */
  proof?: Uint8Array;
}

export function helloProof(secret: string, nonce: Uint8Array, clientName: string): Buffer {
  return createHmac('sha256', secret).update(nonce).update(clientName, 'utf8').digest();
}

export class RawClient {
  /** Every frame received, in order (including replies already handed to a caller). */
  readonly frames: GridFrame[] = [];
  readonly serverHello: Promise<ServerHello>;
  readonly closed: Promise<void>;
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, (frame: GridFrame) => void>();
  private readonly rejecters = new Map<number, (err: Error) => void>();
  private nextId = 1;

  private constructor(readonly socket: Socket) {
    this.serverHello = new Promise((resolve, reject) => {
      socket.once('close', () => reject(new Error('socket closed before ServerHello')));
      this.pending.set(0, (f) =>
        f.serverHello ? resolve(f.serverHello) : reject(new Error('no ServerHello')),
      );
    });
    this.serverHello.catch(() => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        for (const [id, reject] of this.rejecters)
          reject(new Error(`socket closed before the reply to request ${id}`));
        this.rejecters.clear();
        this.pending.clear();
        resolve();
      }),
    );
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.reader.push(chunk)) {
        const frame = decodeGridFrame(bytes);
        this.frames.push(frame);
        const waiter = this.pending.get(frame.id);
        if (waiter) {
          this.pending.delete(frame.id);
          this.rejecters.delete(frame.id);
          waiter(frame);
        }
      }
    });
  }

  /** Opens a TCP connection and waits for ServerHello, without saying hello. */
  static async open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = connect({ port, host, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    await client.serverHello;
    return client;
  }

  /** Opens a connection and completes the handshake; throws GridCallError if it is refused. */
  static async connect(port: number, options: HandshakeOptions = {}): Promise<RawClient> {
    const client = await RawClient.open(port);
    await client.hello(options);
    return client;
  }

  async hello(options: HandshakeOptions = {}): Promise<ReplyBodies['hello']> {
    const hello = await this.serverHello;
    const clientName = options.clientName ?? 'grid-test';
    const proof = options.proof ?? helloProof(options.secret ?? '', hello.nonce, clientName);
    return this.call('hello', {
      protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
      clientName,
      proof,
    });
  }

  /** Sends one request and resolves with the reply frame, whatever it is. */
  request(body: RequestBody): Promise<GridFrame> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error('socket closed'));
        return;
      }
      this.pending.set(id, resolve);
      this.rejecters.set(id, reject);
      this.socket.write(encodeClientFrame({ id, ...body } as ClientFrame));
    });
  }

  /** Sends one request and resolves with its reply body; a GridError reply is thrown. */
  async call<K extends Operation>(op: K, body: RequestBodies[K]): Promise<ReplyBodies[K]> {
    const frame = await this.request({ [op]: body } as unknown as RequestBody);
    if (frame.error)
      throw new GridCallError(frame.error.code, frame.error.message, frame.error.retryable ?? false);
    const reply = (frame as unknown as Record<string, unknown>)[REPLY_FIELD[op]];
    if (reply === undefined || reply === null) throw new Error(`reply to ${op} lacks ${REPLY_FIELD[op]}`);
    return reply as ReplyBodies[K];
  }

  /** Calls and expects a GridError; resolves with it. */
  async callError<K extends Operation>(op: K, body: RequestBodies[K]): Promise<GridCallError> {
    try {
      await this.call(op, body);
    } catch (err) {
      if (err instanceof GridCallError) return err;
      throw err;
    }
    throw new Error(`${op} unexpectedly succeeded`);
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}
