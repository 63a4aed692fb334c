/**
 * One application's pool of service instances (child processes running worker.js) and the
 * dispatch of pending session tasks to them.
 *
 * Tasks go to workers in batches, because one IPC message per task would cap the grid far below
 * its throughput target. Batch size adapts to the observed task duration (about BATCH_TARGET_MS
 * of work per batch), and a worker gets a second batch only while its current one is expected to
 * finish within PREFETCH_MS: fast tasks keep workers saturated, slow tasks stay in the session
 * queues where a later higher-priority task can still overtake them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TaskUsage } from '../accounting/records';
import type { Payload } from '../backend/protocol';
import {
  isWorkerMessage,
  type PartialUsage,
  type ResultsMessage,
  type RunBatchMessage,
  type WorkerMessage,
} from './ipc';
import { Fifo, type Task, type TaskSession } from './task-queue';

const WORKER_SCRIPT = join(__dirname, 'worker.js');
// Measured with echo over one socket on 2 cores: 64 -> ~250k, 128 -> ~300k outputs/s; 256 no better.
const MAX_BATCH_TASKS = 128;
const MAX_BATCH_BYTES = 1024 * 1024;
const BATCH_TARGET_MS = 4;
const PREFETCH_MS = 4;
/** An outstanding batch older than this is not prefetched behind, whatever the estimate says. */
const PREFETCH_MAX_AGE_MS = 20;
const EWMA_WEIGHT = 0.3;
/** Grace for a worker to exit after SIGTERM, or after its IPC channel closed, before SIGKILL. */
const KILL_GRACE_MS = 2000;
/** Delay before respawning a worker that could not even load its service. */
const FATAL_RESPAWN_MS = 1000;
/** A worker runs one task at a time on one thread. */
const PROCESSORS_PER_TASK = 1;

export type Logger = (message: string) => void;

export interface SchedulerOptions {
  appName: string;
  /** Absolute path of the service module. */
  servicePath: string;
  workers: number;
  maxTaskRetries: number;
  /** Reported as TaskUsage.machine on every output. */
  machine: string;
  log: Logger;
}

export interface SchedulerStats {
  workers: number;
  workerRestarts: number;
  tasksCompleted: number;
  tasksFailed: number;
}

interface Batch {
  id: number;
  tasks: Task[];
  /** Tasks at the front whose results have arrived. */
  done: number;
  isolated: boolean;
  sentAt: number;
  /**
   * Epoch ms when the batch was sent, then the end of its last reported task: the earliest the
   * next task can have started, for a crash the worker could not report.
   */
  startedBy: number;
}

class WorkerSlot {
  ready = false;
  gone = false;
  exited = false;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  fatal: string | undefined;
  /** Batch and index of the task running when the process exited, if it told us. */
  crashAt: { batch: number; index: number; usage: PartialUsage } | undefined;
  readonly outstanding: Batch[] = [];
  killTimer: NodeJS.Timeout | undefined;
  readonly whenGone: Promise<void>;
  resolveGone!: () => void;

  constructor(
    readonly index: number,
    readonly child: ChildProcess,
  ) {
    this.whenGone = new Promise((resolve) => (this.resolveGone = resolve));
  }

  get usable(): boolean {
    return this.ready && !this.gone && !this.exited && this.child.connected;
  }
}

export class AppScheduler {
  private readonly slots: WorkerSlot[] = [];
  /** Sessions with pending tasks, one round-robin ring per session priority. */
  private readonly rings = new Map<number, Fifo<TaskSession>>();
  /** Priorities present in rings, highest first. */
  private levels: number[] = [];
  /** Smoothed run time of one task, from worker reports; undefined until the first report. */
  private avgTaskMs: number | undefined;
  private nextBatchId = 1;
  private pumpScheduled = false;
  private closing = false;
  private readonly respawnTimers = new Set<NodeJS.Timeout>();
  private restarts = 0;
  private completed = 0;
  private failed = 0;

  constructor(private readonly options: SchedulerOptions) {}

  /** Starts the workers; rejects if the service module cannot be loaded. */
  async start(): Promise<void> {
    const started: Promise<void>[] = [];
    for (let i = 0; i < this.options.workers; i++) {
      const slot = this.spawn(i);
      this.slots.push(slot);
      started.push(
        new Promise<void>((resolve, reject) => {
          slot.child.once('message', (m: unknown) => {
            if (isWorkerMessage(m) && m.kind === 'ready') resolve();
          });
          void slot.whenGone.then(() =>
            reject(
              new Error(
                `application "${this.options.appName}": ${
                  slot.fatal ?? `service instance ${exitReason(slot)} while starting`
                }`,
              ),
            ),
          );
        }),
      );
    }
    try {
      await Promise.all(started);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Called when a session gained pending tasks. */
  markReady(session: TaskSession): void {
    if (session.inReady || session.closed || session.queue.length === 0) return;
    session.inReady = true;
    this.ring(session.priority).push(session);
    if (!this.pumpScheduled) {
      // Deferred so that all the tasks submitted in one I/O round go out in full batches.
      this.pumpScheduled = true;
      setImmediate(this.pump);
    }
  }

  stats(): SchedulerStats {
    return {
      workers: this.slots.filter((s) => s.usable).length,
      workerRestarts: this.restarts,
      tasksCompleted: this.completed,
      tasksFailed: this.failed,
    };
  }

  /** Kills the workers and resolves once they have all exited. Unfinished tasks are abandoned. */
  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.respawnTimers) clearTimeout(t);
    this.respawnTimers.clear();
    this.rings.clear();
    this.levels = [];
    for (const slot of this.slots) {
      if (slot.gone) continue;
      slot.child.kill('SIGTERM');
      clearTimeout(slot.killTimer);
      slot.killTimer = setTimeout(() => slot.child.kill('SIGKILL'), KILL_GRACE_MS);
    }
    await Promise.all(this.slots.map((s) => s.whenGone));
  }

  private spawn(index: number): WorkerSlot {
    const child = fork(WORKER_SCRIPT, [this.options.servicePath], {
      serialization: 'advanced',
      // Keep service output off the grid's stdout, which carries the "listening" line.
      stdio: ['ignore', 2, 2, 'ipc'],
      execArgv: [],
    });
    const slot = new WorkerSlot(index, child);
    child.on('message', (m: unknown) => {
      if (isWorkerMessage(m)) this.onMessage(slot, m);
    });
    child.on('error', (err) => this.options.log(`${this.label(slot)}: ${err.message}`));
    child.on('exit', (code, signal) => {
      slot.exited = true;
      slot.exitCode = code;
      slot.exitSignal = signal;
      // 'disconnect' normally comes first, once every message the worker sent has been read.
      if (!child.connected) this.onGone(slot);
      else setTimeout(() => this.onGone(slot), 500).unref();
    });
    child.on('disconnect', () => {
      if (slot.exited) this.onGone(slot);
      else {
        clearTimeout(slot.killTimer);
        slot.killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      }
    });
    return slot;
  }

  private label(slot: WorkerSlot): string {
    return `application "${this.options.appName}" service instance ${slot.index} (pid ${slot.child.pid ?? '?'})`;
  }

  private onMessage(slot: WorkerSlot, m: WorkerMessage): void {
    switch (m.kind) {
      case 'results':
        this.onResults(slot, m);
        break;
      case 'ready':
        slot.ready = true;
        this.pump();
        break;
      case 'fatal':
        slot.fatal = m.message;
        break;
      case 'exiting':
        slot.crashAt = { batch: m.batch, index: m.index, usage: m.usage };
        break;
    }
  }

  private onResults(slot: WorkerSlot, m: ResultsMessage): void {
    const batch = slot.outstanding.find((b) => b.id === m.batch);
    if (!batch || m.from !== batch.done) return; // stale or duplicate; cannot happen with one channel
    const out = m.out;
    const n = out.length;
    const machine = this.options.machine;
    for (let i = 0; i < n; i++) {
      const task = batch.tasks[m.from + i]!;
      const value = out[i]!;
      const ok = typeof value !== 'string';
      task.session.running--;
      if (ok) this.completed++;
      else this.failed++;
      const usage = taskUsage(m.startMs[i]!, m.endMs[i]!, m.cpuMs[i]!, m.maxRssKb[i]!, machine);
      task.session.complete(task, ok, value, usage);
    }
    if (n > 0) batch.startedBy = m.endMs[n - 1]!;
    batch.done += n;
    if (batch.done >= batch.tasks.length) slot.outstanding.splice(slot.outstanding.indexOf(batch), 1);
    if (n > 0) {
      const sample = m.ms / n;
      this.avgTaskMs =
        this.avgTaskMs === undefined ? sample : this.avgTaskMs + EWMA_WEIGHT * (sample - this.avgTaskMs);
    }
    this.pump();
  }

  private readonly pump = (): void => {
    this.pumpScheduled = false;
    if (this.closing || this.levels.length === 0) return;
    // Idle workers first, so that work spreads out before anyone gets a second batch.
    for (const slot of this.slots) {
      if (slot.usable && slot.outstanding.length === 0 && !this.dispatch(slot, true)) return;
    }
    const now = performance.now();
    for (const slot of this.slots) {
      if (slot.usable && this.canPrefetch(slot, now) && !this.dispatch(slot, false)) return;
    }
  };

  private canPrefetch(slot: WorkerSlot, now: number): boolean {
    if (slot.outstanding.length !== 1 || this.avgTaskMs === undefined) return false;
    const b = slot.outstanding[0]!;
    return (
      !b.isolated &&
      now - b.sentAt <= PREFETCH_MAX_AGE_MS &&
      this.avgTaskMs * (b.tasks.length - b.done) <= PREFETCH_MS
    );
  }

  /** Sends the next batch to the worker; false when there was nothing to send. */
  private dispatch(slot: WorkerSlot, idle: boolean): boolean {
    const maxTasks =
      this.avgTaskMs === undefined
        ? 1
        : Math.max(
            1,
            Math.min(MAX_BATCH_TASKS, Math.floor(BATCH_TARGET_MS / Math.max(this.avgTaskMs, 1e-3))),
          );
    const tasks: Task[] = [];
    let bytes = 0;
    let isolated = false;
    while (tasks.length < maxTasks && bytes < MAX_BATCH_BYTES) {
      const session = this.nextSession();
      if (!session) break;
      const head = session.queue.peek()!;
      if (head.isolate) {
        // Suspected of crashing its worker: runs alone, on a worker with nothing else to do.
        if (tasks.length === 0 && idle) {
          tasks.push(session.queue.shift()!);
          isolated = true;
          this.requeueSession(session, false);
        } else {
          this.requeueSession(session, true);
        }
        break;
      }
      do {
        const task = session.queue.shift()!;
        tasks.push(task);
        bytes += task.size;
        const next = session.queue.peek();
        if (!next || next.isolate) break;
      } while (tasks.length < maxTasks && bytes < MAX_BATCH_BYTES);
      this.requeueSession(session, false);
    }
    if (tasks.length === 0) return false;

    const n = tasks.length;
    const message: RunBatchMessage = {
      kind: 'run',
      batch: this.nextBatchId++,
      taskIds: new Array<string>(n),
      sessionIds: new Array<string>(n),
      tags: new Array<string>(n),
      payloads: new Array<Payload>(n),
    };
    for (let i = 0; i < n; i++) {
      const t = tasks[i]!;
      t.session.running++;
      message.taskIds[i] = t.id;
      message.sessionIds[i] = t.session.id;
      message.tags[i] = t.tag;
      message.payloads[i] = t.payload;
    }
    slot.outstanding.push({
      id: message.batch,
      tasks,
      done: 0,
      isolated,
      sentAt: performance.now(),
      startedBy: Date.now(),
    });
    slot.child.send(message);
    return true;
  }

  /** Pops the session whose turn it is: highest priority first, round-robin within a priority. */
  private nextSession(): TaskSession | undefined {
    while (this.levels.length > 0) {
      const level = this.levels[0]!;
      const ring = this.rings.get(level)!;
      for (let s = ring.shift(); s; s = ring.shift()) {
        if (!s.closed && s.queue.length > 0) return s;
        s.inReady = false;
      }
      this.rings.delete(level);
      this.levels.shift();
    }
    return undefined;
  }

  /** Returns a popped session to its ring: at the back after its turn, at the front if it had none. */
  private requeueSession(session: TaskSession, front: boolean): void {
    if (session.closed || session.queue.length === 0) {
      session.inReady = false;
      return;
    }
    const ring = this.ring(session.priority);
    if (front) ring.pushFront(session);
    else ring.push(session);
  }

  private ring(priority: number): Fifo<TaskSession> {
    let ring = this.rings.get(priority);
    if (!ring) {
      ring = new Fifo<TaskSession>();
      this.rings.set(priority, ring);
      let i = 0;
      while (i < this.levels.length && this.levels[i]! > priority) i++;
      this.levels.splice(i, 0, priority);
    }
    return ring;
  }

  private onGone(slot: WorkerSlot): void {
    if (slot.gone) return;
    slot.gone = true;
    clearTimeout(slot.killTimer);
    slot.resolveGone();
    if (this.closing) return;

    const unfinished: Task[] = [];
    for (const b of slot.outstanding)
      for (let i = b.done; i < b.tasks.length; i++) unfinished.push(b.tasks[i]!);

    // Blame the task the worker said it was running, or the only candidate. With several
    // candidates and no word from the worker, nobody is blamed: they are re-run one at a time,
    // so that the next crash (if any) identifies its task.
    let culprit: { task: Task; usage: PartialUsage } | undefined;
    const at = slot.crashAt;
    if (at) {
      const b = slot.outstanding.find((x) => x.id === at.batch);
      const task = b && at.index >= b.done ? b.tasks[at.index] : undefined;
      if (task) culprit = { task, usage: at.usage };
    }
    if (!culprit && unfinished.length === 1) {
      culprit = { task: unfinished[0]!, usage: unreportedUsage(slot.outstanding) };
    }
    slot.outstanding.length = 0;
    const reason = exitReason(slot);
    if (slot.ready && slot.fatal === undefined) {
      this.options.log(
        `${this.label(slot)} ${reason}; ${unfinished.length} unfinished task(s) re-queued or failed`,
      );
    } else {
      this.options.log(`${this.label(slot)}: ${slot.fatal ?? reason}`);
    }

    for (let i = unfinished.length - 1; i >= 0; i--) {
      const task = unfinished[i]!;
      const session = task.session;
      session.running--;
      if (session.closed) continue;
      if (task === culprit?.task) {
        if (task.retries >= this.options.maxTaskRetries) {
          this.failed++;
          const u = culprit.usage;
          session.complete(
            task,
            false,
            `service instance ${reason} while running this task; retried ${task.retries} time(s)`,
            taskUsage(u.startMs, u.endMs, u.cpuMs, u.maxRssKb, this.options.machine),
          );
          continue;
        }
        task.retries++;
      }
      task.isolate = culprit === undefined || task === culprit.task;
      session.queue.pushFront(task);
      this.markReady(session);
    }

    this.restarts++;
    const respawn = (): void => {
      if (this.closing) return;
      this.slots[slot.index] = this.spawn(slot.index);
    };
    if (slot.ready) respawn();
    else {
      const timer = setTimeout(() => {
        this.respawnTimers.delete(timer);
        respawn();
      }, FATAL_RESPAWN_MS);
      this.respawnTimers.add(timer);
    }
  }
}

function taskUsage(
  startTimeMs: number,
  endTimeMs: number,
  cpuTimeMs: number,
  maxRssKb: number,
  machine: string,
): TaskUsage {
  // Peak virtual size is unknown: getrusage, the worker's only source, does not report it.
  return {
    startTimeMs,
    endTimeMs,
    cpuTimeMs,
    machine,
    processors: PROCESSORS_PER_TASK,
    maxRssKb,
    maxVmemKb: 0,
  };
}

/**
 * A crash the worker could not report (killed by a signal): the task ran at most from the end of
 * the last result its batch reported until now; CPU and memory are unknown.
 */
function unreportedUsage(outstanding: readonly Batch[]): PartialUsage {
  const endMs = Date.now();
  const b = outstanding.find((x) => x.done < x.tasks.length);
  return { startMs: Math.min(b?.startedBy ?? endMs, endMs), endMs, cpuMs: 0, maxRssKb: 0 };
}

function exitReason(slot: WorkerSlot): string {
  if (slot.exitCode !== null) return `exited with code ${slot.exitCode}`;
  if (slot.exitSignal !== null) return `was killed by ${slot.exitSignal}`;
  return 'lost its connection to the grid';
}
