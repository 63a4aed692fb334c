/**
 * Service instance: a child process forked by the grid (scheduler.ts). It loads one service
 * module, runs the batches it is sent one task at a time, in order, and reports results.
 * Only type imports from the rest of the grid, so that a worker starts quickly.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { Payload } from '../backend/protocol';
import type { ParentMessage, PartialUsage, RunBatchMessage, WorkerMessage } from './ipc';
import type { ServiceContext } from './services/types';

type RunFn = (input: Payload, ctx: ServiceContext) => unknown;

/** Results are sent at batch end, or sooner once this much time has passed since the last send. */
const FLUSH_MS = 2;

const queue: RunBatchMessage[] = [];
let running = false;
let runService: RunFn | undefined;

// Results not yet sent, and the task in progress; the exit handler reports both.
let current: RunBatchMessage | undefined;
let currentIndex = -1;
let unsent: (Payload | string | null)[] = [];
let unsentFrom = 0;
let unsentMs = 0;
let unsentStart: number[] = [];
let unsentEnd: number[] = [];
let unsentCpu: number[] = [];
let unsentRss: number[] = [];

// Wall clock (epoch ms) and this process's CPU (µs) when the running task started. The end of
// one task is the start of the next (the gap is a few array pushes), re-read only after an IPC
// send, so that sending is not charged to a task and each task costs one getrusage.
let markMs = 0;
let markCpuUs = 0;

function mark(): void {
  const r = process.resourceUsage();
  markMs = Date.now();
  markCpuUs = r.userCPUTime + r.systemCPUTime;
}

/** The usage of the task started at the last mark, ending now; moves the mark here. */
function measure(): PartialUsage {
  // resourceUsage rather than cpuUsage: the same getrusage call also gives the peak RSS.
  const r = process.resourceUsage();
  const endMs = Math.max(Date.now(), markMs);
  const cpuUs = r.userCPUTime + r.systemCPUTime;
  const usage = { startMs: markMs, endMs, cpuMs: Math.round((cpuUs - markCpuUs) / 1000), maxRssKb: r.maxRSS };
  markMs = endMs;
  markCpuUs = cpuUs;
  return usage;
}

function send(message: WorkerMessage): void {
  if (process.connected) process.send!(message);
}

function flush(batch: RunBatchMessage): void {
  if (unsent.length === 0) return;
  send({
    kind: 'results',
    batch: batch.batch,
    from: unsentFrom,
    out: unsent,
    ms: unsentMs,
    startMs: unsentStart,
    endMs: unsentEnd,
    cpuMs: unsentCpu,
    maxRssKb: unsentRss,
  });
  unsentFrom += unsent.length;
  resetUnsent();
}

function resetUnsent(): void {
  unsent = [];
  unsentMs = 0;
  unsentStart = [];
  unsentEnd = [];
  unsentCpu = [];
  unsentRss = [];
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return `Error: ${String(err)}`;
}

/** Accepts the shapes a service might reasonably return and reduces them to one payload form. */
function toPayload(result: unknown, input: Payload): Payload | null {
  if (result === input) return input;
  if (result === undefined || result === null) return null;
  if (typeof result === 'string') return { text: result };
  if (result instanceof Uint8Array) return { binary: result };
  if (typeof result === 'object') {
    const r = result as Record<string, unknown>;
    if (typeof r.xml === 'string') return { xml: r.xml };
    if (typeof r.text === 'string') return { text: r.text };
    if (r.binary instanceof Uint8Array) return { binary: r.binary };
  }
  throw new TypeError('the service returned a value that is not a payload');
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

async function runBatch(batch: RunBatchMessage, run: RunFn): Promise<void> {
  current = batch;
  resetUnsent();
  unsentFrom = 0;
  let lastFlush = performance.now();
  mark();
  const n = batch.taskIds.length;
  for (let i = 0; i < n; i++) {
    currentIndex = i;
    const input = batch.payloads[i]!;
    const tag = batch.tags[i];
    const t0 = performance.now();
    let value: Payload | string | null;
    try {
      let result = run(input, {
        taskId: batch.taskIds[i]!,
        sessionId: batch.sessionIds[i]!,
        tag: tag === '' ? undefined : tag,
      });
      // Only await real promises: a microtask per synchronous task would halve echo throughput.
      if (isThenable(result)) result = await result;
      value = toPayload(result, input);
    } catch (err) {
      value = describeError(err);
    }
    const usage = measure();
    const t1 = performance.now();
    unsentMs += t1 - t0;
    unsent.push(value);
    unsentStart.push(usage.startMs);
    unsentEnd.push(usage.endMs);
    unsentCpu.push(usage.cpuMs);
    unsentRss.push(usage.maxRssKb);
    if (t1 - lastFlush >= FLUSH_MS) {
      flush(batch);
      lastFlush = t1;
      mark();
    }
  }
  currentIndex = -1;
  flush(batch);
  current = undefined;
}

async function drain(run: RunFn): Promise<void> {
  running = true;
  try {
    for (let batch = queue.shift(); batch; batch = queue.shift()) await runBatch(batch, run);
  } finally {
    running = false;
  }
}

function findRun(mod: unknown): RunFn | undefined {
  if (typeof mod !== 'object' || mod === null) return undefined;
  const m = mod as { run?: unknown; default?: { run?: unknown } };
  if (typeof m.run === 'function') return m.run as RunFn;
  if (typeof m.default?.run === 'function') return m.default.run as RunFn;
  return undefined;
}

async function main(): Promise<void> {
  if (!process.send) {
    console.error('worker.js is started by the grid (child_process.fork), not directly');
    process.exit(2);
  }
  process.on('message', (message: ParentMessage) => {
    if (message.kind !== 'run') return;
    queue.push(message);
    if (!running && runService) void drain(runService);
  });
  // The grid went away: nothing can collect results any more.
  process.on('disconnect', () => process.exit(0));
  // A service that exits the process (or an uncaught error) lands here: tell the grid what had
  // finished and which task was running, so that only that task is blamed for the crash.
  process.on('exit', () => {
    if (!current) return;
    flush(current);
    if (currentIndex >= 0) {
      send({ kind: 'exiting', batch: current.batch, index: currentIndex, usage: measure() });
    }
  });

  const servicePath = process.argv[2] ?? '';
  let mod: unknown;
  try {
    mod = await import(pathToFileURL(servicePath).href);
  } catch (err) {
    send({ kind: 'fatal', message: `cannot load service module ${servicePath}: ${describeError(err)}` });
    process.exit(3);
  }
  runService = findRun(mod);
  if (!runService) {
    send({ kind: 'fatal', message: `service module ${servicePath} does not export a run function` });
    process.exit(3);
  }
  send({ kind: 'ready' });
  if (queue.length > 0) void drain(runService);
}

void main();
