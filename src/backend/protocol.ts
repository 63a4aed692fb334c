/**
 * Grid wire protocol v1 (docs/protocol.md): 4-byte big-endian length + one protobuf message.
 * The message types are declared in schemas/grid.proto; the TypeScript shapes below mirror it
 * so that both the proxy's client and the reference grid are type-checked against one contract.
 */
import { join } from 'node:path';
import protobuf from 'protobufjs';
import type { TaskUsage } from '../accounting/records';
import { SCHEMA_DIR } from '../paths';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export enum ErrorCode {
  ERROR_UNSPECIFIED = 0,
  UNKNOWN_CONNECTION = 1,
  UNKNOWN_SESSION = 2,
  INVALID_ARGUMENT = 3,
  UNKNOWN_APPLICATION = 4,
  AUTHENTICATION_FAILED = 5,
  SESSION_NOT_DETACHED = 6,
  BUSY = 7,
  PROTOCOL = 8,
  INTERNAL = 9,
}

export enum CloseMode {
  DESTROY = 0,
  DETACH = 1,
}

export enum SessionState {
  STATE_UNSPECIFIED = 0,
  OPEN = 1,
  DETACHED = 2,
  CLOSED = 3,
}

/** Exactly one form is set. */
export interface Payload {
  xml?: string;
  text?: string;
  binary?: Uint8Array;
}

export interface SessionAttributes {
  name?: string;
  type?: string;
  flags?: number;
  tag?: string;
  priority?: number;
  compressionEnable?: boolean;
  dataCompressionFlag?: number;
  threshold?: number;
  directDataTransferEnable?: boolean;
}

export interface TaskInput {
  tag?: string;
  priority?: number;
  payload?: Payload;
}

export interface TaskOutput {
  taskId: string;
  successful: boolean;
  exception?: string;
  payload?: Payload;
  tag?: string;
  /** What running the task cost; absent from grids that predate it (docs/protocol.md 6.9). */
  usage?: TaskUsage;
}

export interface SessionStatus {
  sessionId: string;
  state: SessionState;
  pending: number;
  running: number;
  done: number;
  failed: number;
  outputsReady: number;
  name?: string;
  priority?: number;
  /** Outputs fetched with holdMs and not yet acknowledged; absent from grids that predate holds. */
  outputsHeld?: number;
}

export interface GridErrorBody {
  code: ErrorCode;
  message: string;
  retryable?: boolean;
}

/** Request bodies by operation name; the name is the oneof field in ClientFrame. */
export interface RequestBodies {
  hello: { protocolVersion: number; clientName: string; proof: Uint8Array };
  ping: { seq: number };
  /** requestKey makes the connect idempotent (docs/protocol.md 6.11). */
  connect: {
    applicationName: string;
    username: string;
    password: string;
    clusterUrl?: string;
    requestKey?: string;
  };
  closeConnection: { connectionId: string };
  createSession: { connectionId: string; attributes?: SessionAttributes; requestKey?: string };
  openSession: { connectionId: string; sessionId: string };
  closeSession: { sessionId: string; mode: CloseMode };
  sessionStatus: { sessionId: string };
  /** submitKey makes the submit idempotent per session (docs/protocol.md 6.8). */
  sendTasks: { sessionId: string; tasks: TaskInput[]; submitKey?: string };
  /** holdMs > 0 holds the returned outputs until ackOutputs (docs/protocol.md 6.9). */
  fetchOutputs: { sessionId: string; countMax: number; waitMs?: number; holdMs?: number };
  ackOutputs: { sessionId: string; deliveryId: string };
}

/** The reply body that answers each request. */
export interface ReplyBodies {
  hello: { gridName: string; heartbeatMs: number };
  ping: { seq: number };
  connect: { connectionId: string };
  closeConnection: Record<string, never>;
  createSession: { sessionId: string };
  openSession: { sessionId: string };
  closeSession: Record<string, never>;
  sessionStatus: SessionStatus;
  sendTasks: { taskIds: string[] };
  /** deliveryId is absent or '' when nothing was held. */
  fetchOutputs: { outputs: TaskOutput[]; deliveryId?: string };
  ackOutputs: Record<string, never>;
}

export type Operation = keyof RequestBodies;

/** GridFrame oneof field carrying the reply for each operation. */
export const REPLY_FIELD: { readonly [K in Operation]: string } = {
  hello: 'helloOk',
  ping: 'pong',
  connect: 'connect',
  closeConnection: 'closed',
  createSession: 'session',
  openSession: 'session',
  closeSession: 'closed',
  sessionStatus: 'sessionStatus',
  sendTasks: 'sendTasks',
  fetchOutputs: 'fetchOutputs',
  ackOutputs: 'closed',
};

export interface ServerHello {
  protocolVersion: number;
  nonce: Uint8Array;
  gridName: string;
  maxInFlight: number;
  maxFrameBytes: number;
  /** What the grid honours beyond the base protocol (GRID_FEATURES for the reference grid). */
  features?: string[];
}

/** Features a grid may announce in ServerHello. */
export const GRID_FEATURES = ['submit-keys', 'request-keys', 'held-fetches'] as const;
export type GridFeature = (typeof GRID_FEATURES)[number];

/** A decoded ClientFrame: id plus exactly one body field. */
export type ClientFrame = { id: number } & { [K in Operation]?: RequestBodies[K] };

/** A decoded GridFrame: id plus exactly one body field. */
export interface GridFrame {
  id: number;
  serverHello?: ServerHello;
  helloOk?: ReplyBodies['hello'];
  pong?: ReplyBodies['ping'];
  error?: GridErrorBody;
  connect?: ReplyBodies['connect'];
  closed?: Record<string, never>;
  session?: ReplyBodies['createSession'];
  sessionStatus?: SessionStatus;
  sendTasks?: ReplyBodies['sendTasks'];
  fetchOutputs?: ReplyBodies['fetchOutputs'];
}

const root = protobuf.loadSync(join(SCHEMA_DIR, 'grid.proto'));
const ClientFrameType = root.lookupType('symphony.grid.v1.ClientFrame');
const GridFrameType = root.lookupType('symphony.grid.v1.GridFrame');

/** Which oneof field a decoded message carries. protobufjs sets the virtual oneof property. */
export function bodyKind(frame: object): string | undefined {
  return (frame as { body?: string }).body;
}

function lengthPrefixed(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

export function encodeClientFrame(frame: ClientFrame): Buffer {
  return lengthPrefixed(ClientFrameType.encode(frame).finish());
}

export function encodeGridFrame(frame: GridFrame): Buffer {
  return lengthPrefixed(GridFrameType.encode(frame).finish());
}

/** int64 fields decode as Long objects; the protocol keeps them within double precision. */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return 0;
}

/**
 * protobufjs answers '' for unset oneof members, so a payload is rebuilt as a plain object
 * holding only the form that was actually sent.
 */
function normalizePayload(p: Payload | null | undefined): Payload | undefined {
  if (!p) return undefined;
  const form = (p as { form?: keyof Payload }).form;
  if (form === 'xml') return { xml: p.xml };
  if (form === 'text') return { text: p.text };
  if (form === 'binary') return { binary: p.binary };
  return undefined;
}

/** A plain TaskUsage with numbers for the 64-bit fields; undefined when the grid sent none. */
function normalizeUsage(u: TaskUsage | null | undefined): TaskUsage | undefined {
  if (!u) return undefined;
  return {
    startTimeMs: toNumber(u.startTimeMs),
    endTimeMs: toNumber(u.endTimeMs),
    cpuTimeMs: toNumber(u.cpuTimeMs),
    machine: u.machine,
    processors: u.processors,
    maxRssKb: toNumber(u.maxRssKb),
    maxVmemKb: toNumber(u.maxVmemKb),
  };
}

export function decodeClientFrame(bytes: Uint8Array): ClientFrame {
  const msg = ClientFrameType.decode(bytes) as unknown as ClientFrame;
  if (msg.sendTasks) for (const t of msg.sendTasks.tasks) t.payload = normalizePayload(t.payload);
  const attrs = msg.createSession?.attributes;
  if (attrs) {
    attrs.flags = toNumber(attrs.flags);
    attrs.dataCompressionFlag = toNumber(attrs.dataCompressionFlag);
    attrs.threshold = toNumber(attrs.threshold);
  }
  return msg;
}

export function decodeGridFrame(bytes: Uint8Array): GridFrame {
  const msg = GridFrameType.decode(bytes) as unknown as GridFrame;
  if (msg.fetchOutputs) {
    for (const o of msg.fetchOutputs.outputs) {
      o.payload = normalizePayload(o.payload);
      o.usage = normalizeUsage(o.usage);
    }
  }
  return msg;
}

/** Reassembles length-prefixed frames from a byte stream. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Feeds a chunk; returns whole frame bodies. Throws if a frame exceeds the limit. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Buffer[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32BE(off);
      if (len > this.maxFrameBytes) {
        throw new Error(`frame of ${len} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
      }
      if (this.buf.length - off - 4 < len) break;
      frames.push(this.buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return frames;
  }
}

/** Batches small writes issued in one tick into one socket write. */
export class BatchedWriter {
  private pending: Buffer[] = [];
  private scheduled = false;

  constructor(private readonly write: (data: Buffer) => boolean) {}

  send(frame: Buffer): void {
    this.pending.push(frame);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const frames = this.pending;
    this.pending = [];
    if (frames.length === 1) this.write(frames[0]!);
    else if (frames.length > 1) this.write(Buffer.concat(frames));
  };
}
