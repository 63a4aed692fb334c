/**
 * Connections, sessions and their tasks and outputs: the Symphony session manager stand-in.
 * Independent of sockets: ids are logical, so any socket may use any connection or session.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { TaskUsage } from '../accounting/records';
import {
  CloseMode,
  ErrorCode,
  SessionState,
  type Payload,
  type SessionAttributes,
  type SessionStatus,
  type TaskInput,
  type TaskOutput,
} from '../backend/protocol';
import type { ApplicationConfig, GridConfig } from './config';
import { GridError } from './errors';
import { AppScheduler, type Logger, type SchedulerStats } from './scheduler';
import { Fifo, Task, TaskQueue, payloadSize, type TaskSession } from './task-queue';

const MAX_WAIT_MS = 60_000;
/** Longest hold_ms honoured; larger values are capped, as wait_ms is. */
export const MAX_HOLD_MS = 10 * 60_000;
export const MAX_SUBMIT_KEY_BYTES = 256;
const MAX_PRIORITY = 10_000;
const DEFAULT_PRIORITY = 1;
const EMPTY_PAYLOAD: Payload = Object.freeze({});

function newId(): string {
  return randomBytes(16).toString('hex');
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function servicePath(service: string): string {
  return service === 'echo' || service === 'cpu' ? join(__dirname, 'services', `${service}.js`) : service;
}

class Application {
  readonly scheduler: AppScheduler;
  /** user name -> sha256 of the password, so that the comparison is constant-time. */
  private readonly users: Map<string, Buffer> | undefined;

  constructor(
    readonly config: ApplicationConfig,
    machine: string,
    log: Logger,
  ) {
    this.scheduler = new AppScheduler({
      appName: config.name,
      servicePath: servicePath(config.service),
      workers: config.workers,
      maxTaskRetries: config.maxTaskRetries,
      machine,
      log,
    });
    if (config.users) this.users = new Map(config.users.map((u) => [u.name, digest(u.password)]));
  }

  get name(): string {
    return this.config.name;
  }

  authenticate(username: string, password: string): boolean {
    if (!this.users) return true;
    const expected = this.users.get(username);
    const given = digest(password);
    // Compare even for an unknown user so that timing does not reveal which user names exist.
    return timingSafeEqual(expected ?? digest(`\0${password}`), given) && expected !== undefined;
  }
}

class Connection {
  readonly sessions = new Set<Session>();
  /** createSession request keys → session ids, oldest first (bounded like submit keys). */
  readonly sessionKeys = new Map<string, string>();

  constructor(
    readonly id: string,
    readonly app: Application,
  ) {}
}

/** What a fetch answers: deliveryId is '' unless the outputs are held. */
export interface FetchResult {
  outputs: TaskOutput[];
  deliveryId: string;
}

/** Grid-wide counters, shared by every session, so that they outlive destroyed sessions. */
export interface GridCounters {
  /** Tasks queued by sendTasks; a suppressed duplicate adds nothing. */
  tasksAccepted: number;
  /** sendTasks answered from a remembered submit key without queueing anything. */
  duplicateSubmits: number;
  /** Held outputs put back for another fetch (hold expired, or the fetching socket closed). */
  outputsRequeued: number;
  /** connect and createSession answered from a remembered request key, opening nothing. */
  duplicateRequests: number;
}

function checkKey(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_SUBMIT_KEY_BYTES) {
    throw new GridError(
      ErrorCode.INVALID_ARGUMENT,
      `request key is ${bytes} bytes; at most ${MAX_SUBMIT_KEY_BYTES} are allowed`,
    );
  }
}

/** Remembers key → id, forgetting the oldest beyond the limit. */
function remember(map: Map<string, string>, key: string, id: string, limit: number): void {
  if (map.size >= limit) map.delete(map.keys().next().value!);
  map.set(key, id);
}

/**
 * The socket held fetches were answered on. Once it closes nobody can tell whether the replies
 * arrived, so its unacknowledged deliveries go back to their sessions.
 */
export class DeliveryOwner {
  closed = false;
  readonly deliveries = new Set<Delivery>();

  close(): void {
    this.closed = true;
    for (const d of [...this.deliveries]) d.session.requeue(d);
  }
}

/** Outputs returned by a fetch with hold_ms, kept until acknowledged. */
class Delivery {
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly session: Session,
    readonly outputs: TaskOutput[],
    readonly owner: DeliveryOwner | undefined,
  ) {}
}

/** Where a remembered submit's task ids start; one submit always gets consecutive ids. */
interface SubmitRecord {
  first: number;
  count: number;
}

/** A fetchOutputs waiting for outputs. */
export class PendingFetch {
  readonly promise: Promise<FetchResult>;
  private resolveFn!: (result: FetchResult) => void;
  private rejectFn!: (err: GridError) => void;
  private timer: NodeJS.Timeout | undefined;
  settled = false;

  constructor(
    private readonly session: Session,
    readonly countMax: number,
    waitMs: number,
    readonly holdMs: number,
    readonly owner: DeliveryOwner | undefined,
  ) {
    this.promise = new Promise<FetchResult>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timer = setTimeout(() => this.resolve({ outputs: [], deliveryId: '' }), waitMs);
  }

  resolve(result: FetchResult): void {
    if (this.settled) return;
    this.finish();
    this.resolveFn(result);
  }

  reject(err: GridError): void {
    if (this.settled) return;
    this.finish();
    this.rejectFn(err);
  }

  /** Gives up without taking outputs (the socket that asked is gone); the promise never settles. */
  cancel(): void {
    if (this.settled) return;
    this.finish();
  }

  private finish(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.session.removeWaiter(this);
  }
}

export class Session implements TaskSession {
  readonly queue = new TaskQueue();
  readonly outputs = new Fifo<TaskOutput>();
  inReady = false;
  running = 0;
  closed = false;
  done = 0;
  failed = 0;
  /** The connection the session is attached to; undefined while detached. */
  connection: Connection | undefined;
  detachTimer: NodeJS.Timeout | undefined;
  /** Outputs in held deliveries, not counted in `outputs`. */
  heldCount = 0;
  private nextTaskId = 1;
  private waiters: PendingFetch[] = [];
  private wakeScheduled = false;
  /** Insertion-ordered, so the first key is the oldest. */
  private readonly submitKeys = new Map<string, SubmitRecord>();
  private readonly held = new Map<string, Delivery>();

  constructor(
    readonly id: string,
    readonly app: Application,
    readonly name: string,
    readonly priority: number,
    private readonly counters: GridCounters,
    private readonly submitKeyLimit: number,
  ) {}

  get state(): SessionState {
    if (this.closed) return SessionState.CLOSED;
    return this.connection ? SessionState.OPEN : SessionState.DETACHED;
  }

  /** Queues the tasks; a submit key seen before returns that submit's ids and queues nothing. */
  submit(inputs: TaskInput[], submitKey: string): string[] {
    const n = inputs.length;
    if (submitKey !== '') {
      const prior = this.submitKeys.get(submitKey);
      if (prior) {
        if (prior.count !== n) {
          throw new GridError(
            ErrorCode.INVALID_ARGUMENT,
            `submit key was first used for ${prior.count} task(s); this request has ${n}`,
          );
        }
        this.counters.duplicateSubmits++;
        return Array.from({ length: n }, (_, i) => String(prior.first + i));
      }
    }
    const first = this.nextTaskId;
    const ids = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const input = inputs[i]!;
      const id = String(this.nextTaskId++);
      const payload = input.payload ?? EMPTY_PAYLOAD;
      ids[i] = id;
      this.queue.push(
        new Task(
          this,
          id,
          input.priority || DEFAULT_PRIORITY,
          input.tag ?? '',
          payload,
          payloadSize(payload),
        ),
      );
    }
    this.app.scheduler.markReady(this);
    this.counters.tasksAccepted += n;
    if (submitKey !== '') {
      if (this.submitKeys.size >= this.submitKeyLimit) {
        this.submitKeys.delete(this.submitKeys.keys().next().value!);
      }
      this.submitKeys.set(submitKey, { first, count: n });
    }
    return ids;
  }

  complete(task: Task, ok: boolean, value: Payload | string | null, usage: TaskUsage): void {
    if (this.closed) return;
    const output: TaskOutput = { taskId: task.id, successful: ok, usage };
    if (ok) {
      this.done++;
      if (value !== null) output.payload = value as Payload;
    } else {
      this.failed++;
      output.exception = value as string;
    }
    if (task.tag !== '') output.tag = task.tag;
    this.outputs.push(output);
    this.scheduleWake();
  }

  /**
   * Takes up to countMax outputs, oldest first; with holdMs > 0 they are held under a new
   * delivery id until acknowledged. Nothing is taken for a socket that has already closed.
   */
  collect(countMax: number, holdMs: number, owner: DeliveryOwner | undefined): FetchResult {
    if (owner?.closed) return { outputs: [], deliveryId: '' };
    const n = Math.min(countMax, this.outputs.length);
    const outputs = new Array<TaskOutput>(n);
    for (let i = 0; i < n; i++) outputs[i] = this.outputs.shift()!;
    if (n === 0 || !(holdMs > 0)) return { outputs, deliveryId: '' };
    const d = new Delivery(newId(), this, outputs, owner);
    this.held.set(d.id, d);
    this.heldCount += n;
    owner?.deliveries.add(d);
    d.timer = setTimeout(() => this.requeue(d), holdMs);
    d.timer.unref();
    return { outputs, deliveryId: d.id };
  }

  /** Releases a delivery for good. Unknown ids are a no-op, so that an ack may be repeated. */
  ack(deliveryId: string): void {
    const d = this.held.get(deliveryId);
    if (d) this.release(d);
  }

  /** Puts a delivery's outputs back at the front of the queue, in their order, for the next fetch. */
  requeue(d: Delivery): void {
    if (!this.release(d)) return;
    this.outputs.unshiftAll(d.outputs);
    this.counters.outputsRequeued += d.outputs.length;
    this.scheduleWake();
  }

  /** False if the delivery was already acknowledged, re-queued or discarded. */
  private release(d: Delivery): boolean {
    if (this.held.get(d.id) !== d) return false;
    this.held.delete(d.id);
    clearTimeout(d.timer);
    d.owner?.deliveries.delete(d);
    this.heldCount -= d.outputs.length;
    return true;
  }

  addWaiter(
    countMax: number,
    waitMs: number,
    holdMs: number,
    owner: DeliveryOwner | undefined,
  ): PendingFetch {
    const w = new PendingFetch(this, countMax, waitMs, holdMs, owner);
    this.waiters.push(w);
    return w;
  }

  removeWaiter(w: PendingFetch): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  private scheduleWake(): void {
    if (this.waiters.length > 0 && !this.wakeScheduled) {
      // A worker reports many results at once: wake waiters once, after all of them.
      this.wakeScheduled = true;
      queueMicrotask(this.wake);
    }
  }

  private readonly wake = (): void => {
    this.wakeScheduled = false;
    while (this.waiters.length > 0 && this.outputs.length > 0) {
      const w = this.waiters[0]!;
      w.resolve(this.collect(w.countMax, w.holdMs, w.owner)); // removes w from waiters
    }
  };

  /** Discards everything, held outputs included; waiting fetches fail with UNKNOWN_SESSION. */
  destroy(reason: string): void {
    this.closed = true;
    clearTimeout(this.detachTimer);
    this.queue.clear();
    this.outputs.drain();
    for (const d of [...this.held.values()]) this.release(d);
    this.submitKeys.clear();
    for (const w of [...this.waiters]) w.reject(new GridError(ErrorCode.UNKNOWN_SESSION, reason));
  }
}

export interface SessionManagerStats extends SchedulerStats, GridCounters {
  connections: number;
  sessions: number;
  pendingTasks: number;
  runningTasks: number;
  outputsReady: number;
  /** Outputs fetched with hold_ms and not yet acknowledged, re-queued or discarded. */
  outputsHeld: number;
}

export class SessionManager {
  private readonly apps = new Map<string, Application>();
  private readonly connections = new Map<string, Connection>();
  private readonly sessions = new Map<string, Session>();
  private readonly counters: GridCounters = {
    tasksAccepted: 0,
    duplicateSubmits: 0,
    outputsRequeued: 0,
    duplicateRequests: 0,
  };
  /** connect request keys (scoped by application and user) → connection ids. */
  private readonly connectKeys = new Map<string, string>();

  constructor(
    private readonly config: GridConfig,
    private readonly log: Logger,
  ) {
    const machine = config.machine ?? hostname();
    for (const app of config.applications) this.apps.set(app.name, new Application(app, machine, log));
  }

  /** Starts every application's workers. */
  async start(): Promise<void> {
    const results = await Promise.allSettled([...this.apps.values()].map((a) => a.scheduler.start()));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close();
      throw failure.reason;
    }
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) s.destroy('the grid is shutting down');
    this.sessions.clear();
    this.connections.clear();
    await Promise.all([...this.apps.values()].map((a) => a.scheduler.close()));
  }

  connect(applicationName: string, username: string, password: string, requestKey = ''): string {
    const app = this.apps.get(applicationName);
    if (!app) throw new GridError(ErrorCode.UNKNOWN_APPLICATION, `unknown application "${applicationName}"`);
    if (!app.authenticate(username, password)) {
      throw new GridError(ErrorCode.AUTHENTICATION_FAILED, 'user name or password refused');
    }
    checkKey(requestKey);
    // The key is scoped by application and user: another user's key can never name this connection.
    const scoped = requestKey === '' ? '' : `${applicationName}\0${username}\0${requestKey}`;
    const prior = scoped === '' ? undefined : this.connectKeys.get(scoped);
    if (prior !== undefined && this.connections.has(prior)) {
      this.counters.duplicateRequests++;
      return prior;
    }
    const conn = new Connection(newId(), app);
    this.connections.set(conn.id, conn);
    if (scoped !== '') remember(this.connectKeys, scoped, conn.id, this.config.submitKeysPerSession);
    return conn.id;
  }

  closeConnection(connectionId: string): void {
    const conn = this.connection(connectionId);
    this.connections.delete(conn.id);
    for (const s of conn.sessions) this.detach(s);
  }

  createSession(
    connectionId: string,
    attributes: SessionAttributes | null | undefined,
    requestKey = '',
  ): string {
    const conn = this.connection(connectionId);
    checkKey(requestKey);
    const prior = requestKey === '' ? undefined : conn.sessionKeys.get(requestKey);
    if (prior !== undefined && this.sessions.has(prior)) {
      this.counters.duplicateRequests++;
      return prior;
    }
    const priority = attributes?.priority || DEFAULT_PRIORITY;
    if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
      throw new GridError(
        ErrorCode.INVALID_ARGUMENT,
        `session priority ${priority} is outside 0..${MAX_PRIORITY}`,
      );
    }
    const session = new Session(
      newId(),
      conn.app,
      attributes?.name ?? '',
      priority,
      this.counters,
      this.config.submitKeysPerSession,
    );
    this.sessions.set(session.id, session);
    this.attach(session, conn);
    if (requestKey !== '')
      remember(conn.sessionKeys, requestKey, session.id, this.config.submitKeysPerSession);
    return session.id;
  }

  openSession(connectionId: string, sessionId: string): string {
    const conn = this.connection(connectionId);
    const session = this.sessions.get(sessionId);
    // Another application's session is reported as unknown rather than revealing that it exists.
    if (!session || session.app !== conn.app) {
      throw new GridError(ErrorCode.UNKNOWN_SESSION, `unknown session "${sessionId}"`);
    }
    if (session.connection) {
      throw new GridError(
        ErrorCode.SESSION_NOT_DETACHED,
        'session is attached to a connection; detach it first',
      );
    }
    this.attach(session, conn);
    return session.id;
  }

  closeSession(sessionId: string, mode: CloseMode): void {
    if (mode !== CloseMode.DESTROY && mode !== CloseMode.DETACH) {
      throw new GridError(ErrorCode.INVALID_ARGUMENT, `unknown close mode ${String(mode)}`);
    }
    const session = this.session(sessionId);
    if (mode === CloseMode.DETACH) this.detach(session);
    else this.destroy(session, 'session was destroyed');
  }

  status(sessionId: string): SessionStatus {
    const s = this.session(sessionId);
    return {
      sessionId: s.id,
      state: s.state,
      pending: s.queue.length,
      running: s.running,
      done: s.done,
      failed: s.failed,
      outputsReady: s.outputs.length,
      name: s.name,
      priority: s.priority,
      outputsHeld: s.heldCount,
    };
  }

  sendTasks(sessionId: string, tasks: TaskInput[], submitKey = ''): string[] {
    const session = this.session(sessionId);
    if (!session.connection) {
      throw new GridError(ErrorCode.UNKNOWN_SESSION, 'session is detached; openSession first');
    }
    if (tasks.length === 0)
      throw new GridError(ErrorCode.INVALID_ARGUMENT, 'sendTasks needs at least one task');
    const keyBytes = Buffer.byteLength(submitKey, 'utf8');
    if (keyBytes > MAX_SUBMIT_KEY_BYTES) {
      throw new GridError(
        ErrorCode.INVALID_ARGUMENT,
        `submit key is ${keyBytes} bytes; at most ${MAX_SUBMIT_KEY_BYTES} are allowed`,
      );
    }
    return session.submit(tasks, submitKey);
  }

  /**
   * Outputs at once, or a PendingFetch when none are ready and the caller is willing to wait.
   * owner is the asking socket: held outputs go back when it closes.
   */
  fetchOutputs(
    sessionId: string,
    countMax: number,
    waitMs: number,
    holdMs = 0,
    owner?: DeliveryOwner,
  ): FetchResult | PendingFetch {
    const session = this.session(sessionId);
    if (!(countMax > 0)) throw new GridError(ErrorCode.INVALID_ARGUMENT, 'countMax must be at least 1');
    const hold = holdMs > 0 ? Math.min(holdMs, MAX_HOLD_MS) : 0;
    if (session.outputs.length > 0 || !(waitMs > 0)) return session.collect(countMax, hold, owner);
    return session.addWaiter(countMax, Math.min(waitMs, MAX_WAIT_MS), hold, owner);
  }

  ackOutputs(sessionId: string, deliveryId: string): void {
    this.session(sessionId).ack(deliveryId);
  }

  stats(): SessionManagerStats {
    let pendingTasks = 0;
    let runningTasks = 0;
    let outputsReady = 0;
    let outputsHeld = 0;
    for (const s of this.sessions.values()) {
      pendingTasks += s.queue.length;
      runningTasks += s.running;
      outputsReady += s.outputs.length;
      outputsHeld += s.heldCount;
    }
    const totals: SchedulerStats = { workers: 0, workerRestarts: 0, tasksCompleted: 0, tasksFailed: 0 };
    for (const app of this.apps.values()) {
      const st = app.scheduler.stats();
      totals.workers += st.workers;
      totals.workerRestarts += st.workerRestarts;
      totals.tasksCompleted += st.tasksCompleted;
      totals.tasksFailed += st.tasksFailed;
    }
    return {
      connections: this.connections.size,
      sessions: this.sessions.size,
      pendingTasks,
      runningTasks,
      outputsReady,
      outputsHeld,
      ...this.counters,
      ...totals,
    };
  }

  private connection(id: string): Connection {
    const conn = this.connections.get(id);
    if (!conn) throw new GridError(ErrorCode.UNKNOWN_CONNECTION, `unknown connection "${id}"`);
    return conn;
  }

  private session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new GridError(ErrorCode.UNKNOWN_SESSION, `unknown session "${id}"`);
    return s;
  }

  private attach(session: Session, conn: Connection): void {
    clearTimeout(session.detachTimer);
    session.detachTimer = undefined;
    session.connection = conn;
    conn.sessions.add(session);
  }

  private detach(session: Session): void {
    if (!session.connection) return;
    session.connection.sessions.delete(session);
    session.connection = undefined;
    session.detachTimer = setTimeout(() => {
      this.log(`detached session ${session.id.slice(0, 8)}… expired`);
      this.destroy(session, 'detached session expired');
    }, this.config.detachedSessionTtlMs);
    session.detachTimer.unref();
  }

  private destroy(session: Session, reason: string): void {
    session.connection?.sessions.delete(session);
    session.connection = undefined;
    this.sessions.delete(session.id);
    session.destroy(reason);
  }
}
