import type { Payload } from '../../backend/protocol';

export interface ServiceContext {
  taskId: string;
  sessionId: string;
  tag?: string;
}

/** What a service module exports as `run`. A thrown error makes the task's output unsuccessful. */
export type ServiceRun = (input: Payload, ctx: ServiceContext) => Payload | Promise<Payload>;
