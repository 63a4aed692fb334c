import type { TaskUsage } from '../accounting/records';
import type { Payload } from '../backend/protocol';

/** Array-backed FIFO with a head index: Array#shift would copy the whole array on every call. */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  pushFront(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }

  /** Puts items back at the front, keeping their order: items[0] comes out next. */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    if (items.length <= this.head) {
      this.head -= items.length;
      for (let i = 0; i < items.length; i++) this.items[this.head + i] = items[i];
    } else {
      this.items = [...items, ...this.items.slice(this.head)];
      this.head = 0;
    }
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined; // let the item be collected
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const rest = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}

/** What the scheduler needs from a session. */
export interface TaskSession {
  readonly id: string;
  readonly priority: number;
  readonly queue: TaskQueue;
  readonly closed: boolean;
  /** Whether the session sits in its scheduler's ready ring. */
  inReady: boolean;
  /** Tasks handed to workers whose outputs have not come back. */
  running: number;
  /**
   * Records a finished task: value is the output payload, or the exception text if !ok. usage is
   * kept with the output as it is, so that every delivery of it carries the same values.
   */
  complete(task: Task, ok: boolean, value: Payload | string | null, usage: TaskUsage): void;
}

export class Task {
  /** How many times the task was re-run after its worker crashed while running it. */
  retries = 0;
  /** Run alone on an otherwise idle worker, so that a crash can be pinned on it. */
  isolate = false;

  constructor(
    readonly session: TaskSession,
    readonly id: string,
    readonly priority: number,
    readonly tag: string,
    readonly payload: Payload,
    /** Approximate payload size, used to bound IPC batches. */
    readonly size: number,
  ) {}
}

/** Pending tasks of one session: higher priority first, FIFO among equal priorities. */
export class TaskQueue {
  private readonly levels = new Map<number, Fifo<Task>>();
  /** Distinct priorities that have tasks, highest first. Usually one entry. */
  private order: number[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(task: Task): void {
    this.level(task.priority).push(task);
    this.count++;
  }

  /** Puts a task back ahead of its priority peers (re-run after a worker crash). */
  pushFront(task: Task): void {
    this.level(task.priority).pushFront(task);
    this.count++;
  }

  peek(): Task | undefined {
    const top = this.order[0];
    return top === undefined ? undefined : this.levels.get(top)!.peek();
  }

  shift(): Task | undefined {
    const top = this.order[0];
    if (top === undefined) return undefined;
    const fifo = this.levels.get(top)!;
    const task = fifo.shift();
    this.count--;
    if (fifo.length === 0) {
      this.levels.delete(top);
      this.order.shift();
    }
    return task;
  }

  clear(): void {
    this.levels.clear();
    this.order = [];
    this.count = 0;
  }

  private level(priority: number): Fifo<Task> {
    let fifo = this.levels.get(priority);
    if (!fifo) {
      fifo = new Fifo<Task>();
      this.levels.set(priority, fifo);
      let i = 0;
      while (i < this.order.length && this.order[i]! > priority) i++;
      this.order.splice(i, 0, priority);
    }
    return fifo;
  }
}

export function payloadSize(p: Payload): number {
  if (p.text !== undefined) return p.text.length;
  if (p.xml !== undefined) return p.xml.length;
  if (p.binary !== undefined) return p.binary.byteLength;
  return 0;
}
