/**
 * Usage records as the proxy keeps them, before they are written in a wire format (APEL or CAR).
 * Field names follow APEL's keys (docs/design/accounting.md 1.2, 1.3) so that each writer is a
 * plain mapping.
 */

/** What the grid reports about one finished task (grid protocol TaskUsage, docs/protocol.md). */
export interface TaskUsage {
  /** When the task began running, epoch ms (grid clock). */
  startTimeMs: number;
  /** When it finished, epoch ms; fixed once set, so every redelivery carries the same value. */
  endTimeMs: number;
  /** User + system CPU of the task, ms. */
  cpuTimeMs: number;
  /** Host that ran the task. */
  machine: string;
  /** 0: unknown. */
  processors: number;
  /** Peak resident memory, KB; 0: unknown. */
  maxRssKb: number;
  /** Peak virtual memory, KB; 0: unknown. */
  maxVmemKb: number;
}

/** One finished task (APEL individual job record v0.3; CAR UsageRecord). */
export interface JobRecord {
  site: string;
  /** The grid cluster that ran the task. */
  submitHost: string;
  machineName?: string;
  /** The application of the session. */
  queue: string;
  /** `<cluster>:<sessionId>:<taskId>`: unique and stable per task, the record's identity. */
  localJobId: string;
  localUserId?: string;
  /** The consumer's certificate subject in OpenSSL's legacy slash form (`/C=…/O=…/CN=…`). */
  globalUserName?: string;
  vo?: string;
  voGroup?: string;
  voRole?: string;
  /** Whole seconds. */
  wallDuration: number;
  cpuDuration: number;
  processors: number;
  nodeCount: number;
  /** Epoch seconds, UTC. */
  startTime: number;
  endTime: number;
  infrastructureType?: string;
  infrastructureDescription?: string;
  /** KB. */
  memoryReal?: number;
  memoryVirtual?: number;
  /** `HEPSPEC`, `si2k` or `HEPscore23` (APEL accepts these, case-insensitively). */
  serviceLevelType?: string;
  serviceLevel?: number;
  /** Whether the task succeeded (CAR `Status`; APEL v0.3 has no such field). */
  status: 'completed' | 'failed';
}

/** One month of one consumer × application (APEL summary message v0.2). */
export interface SummaryRecord {
  site: string;
  month: number;
  year: number;
  globalUserName?: string;
  vo?: string;
  voGroup?: string;
  voRole?: string;
  /** `<cluster>/<application>`: APEL summaries have no Queue, so the application rides here. */
  submitHost: string;
  infrastructureType?: string;
  serviceLevelType?: string;
  serviceLevel?: number;
  nodeCount?: number;
  processors?: number;
  /** Epoch seconds, UTC. */
  earliestEndTime: number;
  latestEndTime: number;
  wallDuration: number;
  cpuDuration: number;
  numberOfJobs: number;
}

/** The wire format of job records. Summaries are always APEL summary messages. */
export type AccountingFormat = 'apel' | 'car';

/** APEL and SSM take at most this many records per message. */
export const MAX_RECORDS_PER_MESSAGE = 1000;
