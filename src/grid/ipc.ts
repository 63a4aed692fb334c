/**
 * Messages between the grid and its worker processes (child_process.fork with 'advanced'
 * serialization, so Uint8Array payloads cross intact). Batches use parallel arrays rather than
 * one object per task: fewer objects to serialize and allocate on both sides.
 */
import type { Payload } from '../backend/protocol';

export interface RunBatchMessage {
  kind: 'run';
  batch: number;
  taskIds: string[];
  sessionIds: string[];
  tags: string[];
  payloads: Payload[];
}

export type ParentMessage = RunBatchMessage;

/** The service module loaded; the worker accepts batches. */
export interface ReadyMessage {
  kind: 'ready';
}

/** The service module could not be loaded; the worker exits. */
export interface FatalMessage {
  kind: 'fatal';
  message: string;
}

/**
 * Results for tasks from..from+out.length-1 of a batch, in order. An out entry is the output
 * payload (null for none) or, as a string, the exception text of a failed task.
 */
export interface ResultsMessage {
  kind: 'results';
  batch: number;
  from: number;
  out: (Payload | string | null)[];
  /** Time spent running these tasks; feeds the grid's batch sizing. */
  ms: number;
  /** Per task, parallel to out: TaskUsage start and end (epoch ms), CPU (ms), worker peak RSS (KB). */
  startMs: number[];
  endMs: number[];
  cpuMs: number[];
  maxRssKb: number[];
}

/** What the worker knew of the task it was running when it exited. */
export interface PartialUsage {
  startMs: number;
  endMs: number;
  cpuMs: number;
  maxRssKb: number;
}

/** Sent from the worker's exit handler: which task was running when the process exited. */
export interface ExitingMessage {
  kind: 'exiting';
  batch: number;
  index: number;
  usage: PartialUsage;
}

export type WorkerMessage = ReadyMessage | FatalMessage | ResultsMessage | ExitingMessage;

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { kind?: unknown }).kind === 'string';
}
