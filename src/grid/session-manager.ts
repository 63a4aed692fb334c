/**
 * Connections, sessions and their tasks and outputs: the Symphony session manager stand-in.
 * Independent of sockets: ids are logical, so any socket may use any connection or session.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
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
    log: Logger,
  ) {
    this.scheduler = new AppScheduler({
      appName: config.name,
      servicePath: servicePath(config.service),
      workers: config.workers,
      maxTaskRetries: config.maxTaskRetries,
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

  constructor(
    readonly id: string,
    readonly app: Application,
  ) {}
}

/** A fetchOutputs waiting for outputs. */
export class PendingFetch {
  readonly promise: Promise<TaskOutput[]>;
  private resolveFn!: (outputs: TaskOutput[]) => void;
  private rejectFn!: (err: GridError) => void;
  private timer: NodeJS.Timeout | undefined;
  settled = false;

  constructor(
    private readonly session: Session,
    readonly countMax: number,
    waitMs: number,
  ) {
    this.promise = new Promise<TaskOutput[]>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timer = setTimeout(() => this.resolve([]), waitMs);
  }

  resolve(outputs: TaskOutput[]): void {
    if (this.settled) return;
    this.finish();
    this.resolveFn(outputs);
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
  private nextTaskId = 1;
  private waiters: PendingFetch[] = [];
  private wakeScheduled = false;

  constructor(
    readonly id: string,
    readonly app: Application,
    readonly name: string,
    readonly priority: number,
  ) {}

  get state(): SessionState {
    if (this.closed) return SessionState.CLOSED;
    return this.connection ? SessionState.OPEN : SessionState.DETACHED;
  }

  submit(inputs: TaskInput[]): string[] {
    const n = inputs.length;
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
    return ids;
  }

  complete(task: Task, ok: boolean, value: Payload | string | null): void {
    if (this.closed) return;
    const output: TaskOutput = { taskId: task.id, successful: ok };
    if (ok) {
      this.done++;
      if (value !== null) output.payload = value as Payload;
    } else {
      this.failed++;
      output.exception = value as string;
    }
    if (task.tag !== '') output.tag = task.tag;
    this.outputs.push(output);
    if (this.waiters.length > 0 && !this.wakeScheduled) {
      // A worker reports many results at once: wake waiters once, after all of them.
      this.wakeScheduled = true;
      queueMicrotask(this.wake);
    }
  }

  take(countMax: number): TaskOutput[] {
    const n = Math.min(countMax, this.outputs.length);
    const out = new Array<TaskOutput>(n);
    for (let i = 0; i < n; i++) out[i] = this.outputs.shift()!;
    return out;
  }

  addWaiter(countMax: number, waitMs: number): PendingFetch {
    const w = new PendingFetch(this, countMax, waitMs);
    this.waiters.push(w);
    return w;
  }

  removeWaiter(w: PendingFetch): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  private readonly wake = (): void => {
    this.wakeScheduled = false;
    while (this.waiters.length > 0 && this.outputs.length > 0) {
      const w = this.waiters[0]!;
      w.resolve(this.take(w.countMax)); // removes w from waiters
    }
  };

  /** Discards everything; waiting fetches fail with UNKNOWN_SESSION. */
  destroy(reason: string): void {
    this.closed = true;
    clearTimeout(this.detachTimer);
    this.queue.clear();
    this.outputs.drain();
    for (const w of [...this.waiters]) w.reject(new GridError(ErrorCode.UNKNOWN_SESSION, reason));
  }
}

export interface SessionManagerStats extends SchedulerStats {
  connections: number;
  sessions: number;
  pendingTasks: number;
  runningTasks: number;
  outputsReady: number;
}

export class SessionManager {
  private readonly apps = new Map<string, Application>();
  private readonly connections = new Map<string, Connection>();
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly config: GridConfig,
    private readonly log: Logger,
  ) {
    for (const app of config.applications) this.apps.set(app.name, new Application(app, log));
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

  connect(applicationName: string, username: string, password: string): string {
    const app = this.apps.get(applicationName);
    if (!app) throw new GridError(ErrorCode.UNKNOWN_APPLICATION, `unknown application "${applicationName}"`);
    if (!app.authenticate(username, password)) {
      throw new GridError(ErrorCode.AUTHENTICATION_FAILED, 'user name or password refused');
    }
    const conn = new Connection(newId(), app);
    this.connections.set(conn.id, conn);
    return conn.id;
  }

  closeConnection(connectionId: string): void {
    const conn = this.connection(connectionId);
    this.connections.delete(conn.id);
    for (const s of conn.sessions) this.detach(s);
  }

  createSession(connectionId: string, attributes: SessionAttributes | null | undefined): string {
    const conn = this.connection(connectionId);
    const priority = attributes?.priority || DEFAULT_PRIORITY;
    if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
      throw new GridError(
        ErrorCode.INVALID_ARGUMENT,
        `session priority ${priority} is outside 0..${MAX_PRIORITY}`,
      );
    }
    const session = new Session(newId(), conn.app, attributes?.name ?? '', priority);
    this.sessions.set(session.id, session);
    this.attach(session, conn);
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
    };
  }

  sendTasks(sessionId: string, tasks: TaskInput[]): string[] {
    const session = this.session(sessionId);
    if (!session.connection) {
      throw new GridError(ErrorCode.UNKNOWN_SESSION, 'session is detached; openSession first');
    }
    if (tasks.length === 0)
      throw new GridError(ErrorCode.INVALID_ARGUMENT, 'sendTasks needs at least one task');
    return session.submit(tasks);
  }

  /** Outputs at once, or a PendingFetch when none are ready and the caller is willing to wait. */
  fetchOutputs(sessionId: string, countMax: number, waitMs: number): TaskOutput[] | PendingFetch {
    const session = this.session(sessionId);
    if (!(countMax > 0)) throw new GridError(ErrorCode.INVALID_ARGUMENT, 'countMax must be at least 1');
    if (session.outputs.length > 0 || !(waitMs > 0)) return session.take(countMax);
    return session.addWaiter(countMax, Math.min(waitMs, MAX_WAIT_MS));
  }

  stats(): SessionManagerStats {
    let pendingTasks = 0;
    let runningTasks = 0;
    let outputsReady = 0;
    for (const s of this.sessions.values()) {
      pendingTasks += s.queue.length;
      runningTasks += s.running;
      outputsReady += s.outputs.length;
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
