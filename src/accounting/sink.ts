/** Where the output paths hand finished tasks for accounting (the outbox, or nothing). */
import type { SessionRecord } from '../store/store';
import type { FinishedTask, SessionFacts } from './usage';

export interface UsageSink {
  /** Durably queues the tasks' records; resolves (never rejects) before the grid is acknowledged. */
  record(session: SessionFacts, tasks: readonly FinishedTask[]): Promise<void>;
}

export function sessionFacts(sessionId: string, rec: SessionRecord): SessionFacts {
  return {
    sessionId,
    cluster: rec.cluster,
    owner: rec.owner,
    application: rec.application,
    subject: rec.subject,
  };
}
