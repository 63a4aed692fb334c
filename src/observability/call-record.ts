/**
 * Builds the audit record of one SOAP call from the request context: who, what, which ids,
 * how it ended and how long each side took. Ids are read from the decoded arguments and the
 * result; payloads, passwords and keys are never looked at.
 */
import type { GatewayError } from '../errors/catalogue';
import type { CallContext } from '../pipeline/context';
import type { AuditRecord } from './audit-log';

/** Enough ids to trace a call without letting a 10,000-task batch bloat the trail. */
export const MAX_AUDITED_TASK_IDS = 100;

type Bag = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function taskIdsOf(result: Bag | undefined): string[] | undefined {
  if (!result) return undefined;
  const t = result['taskId'];
  if (typeof t === 'string') return [t];
  if (Array.isArray(t)) return t.filter((x): x is string => typeof x === 'string');
  const outputs = result['taskOutput'];
  if (Array.isArray(outputs)) {
    return outputs.map((o) => str((o as Bag)['taskId'])).filter((x): x is string => x !== undefined);
  }
  return undefined;
}

export function callRecord(
  ctx: CallContext,
  fault: GatewayError | null,
  bytesOut: number,
  now: number,
): AuditRecord {
  const args = (ctx.args ?? undefined) as Bag | undefined;
  const result = (fault ? undefined : ctx.result) as Bag | undefined;
  const totalMs = now - ctx.startedAt;
  const ids = taskIdsOf(result);
  const batch = args?.['taskSubmissionAttributes'];
  const taskCount = Array.isArray(batch) ? batch.length : batch !== undefined ? 1 : ids?.length;
  const rec: AuditRecord = {
    time: new Date().toISOString(),
    correlationId: ctx.correlationId,
    consumerId: ctx.consumer?.id,
    subject: ctx.consumer?.subject,
    fingerprint256: ctx.consumer?.fingerprint256,
    clientIp: ctx.req.socket.remoteAddress,
    serviceVersion: ctx.policy?.version.version.uri,
    operation: ctx.operation?.name,
    connectionId: str(args?.['connectionId']) ?? str(result?.['connectionId']),
    sessionId: str(args?.['sessionId']) ?? str(result?.['sessionId']),
    taskIds: ids && ids.length > MAX_AUDITED_TASK_IDS ? ids.slice(0, MAX_AUDITED_TASK_IDS) : ids,
    taskIdsTruncated: ids && ids.length > MAX_AUDITED_TASK_IDS ? true : undefined,
    taskCount,
    outcome: fault ? 'fault' : 'ok',
    faultCode: fault?.code,
    proxyMs: round(totalMs - ctx.gridMs),
    gridMs: round(ctx.gridMs),
    bytesIn: ctx.raw?.length ?? 0,
    bytesOut,
    limit: ctx.limitVerdict,
    repeated: ctx.repeated || undefined,
  };
  return rec;
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;
