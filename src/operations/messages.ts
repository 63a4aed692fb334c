/** TypeScript shapes of the decoded request elements of schemas/symphony.xsd. */
import type { SessionAttributes } from '../backend/protocol';
import type { TaskPayload } from '../pipeline/operation';

export type PayloadValue = TaskPayload;

export interface ConnectArgs {
  clusterURL?: string;
  applicationName: string;
  username: string;
  password: string;
}
export interface ConnectionIdArgs {
  connectionId: string;
}
export interface CreateSessionArgs {
  connectionId: string;
  /** Same fields as the wire protocol's SessionAttributes. */
  sessionCreationAttributes?: SessionAttributes;
}
export interface OpenSessionArgs {
  connectionId: string;
  sessionId: string;
}
export interface CloseSessionArgs {
  sessionId: string;
  closeFlags?: 'DestroyOnClose' | 'DetachOnClose';
}
export interface SessionIdArgs {
  sessionId: string;
}
export interface TaskSubmissionAttributes {
  tag?: string;
  taskPriority?: number;
  taskInput: PayloadValue;
}
export interface SendTaskInputArgs {
  sessionId: string;
  taskSubmissionAttributes: TaskSubmissionAttributes;
  clientKey?: string;
}
export interface SendTaskInputBatchArgs {
  sessionId: string;
  taskSubmissionAttributes: TaskSubmissionAttributes[];
  clientKey?: string;
}
export interface FetchTaskOutputArgs {
  sessionId: string;
  countMax: number;
  timeoutMillis?: number;
  leaseMillis?: number;
  acknowledge?: string;
}
export interface AcknowledgeTaskOutputArgs {
  sessionId: string;
  deliveryToken: string;
}
