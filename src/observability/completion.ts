/**
 * The completion phase's hooks: every call, fault or success, is counted, timed, audited and,
 * when refused or failed, logged. They run after the answer is written, so none of them adds
 * to a client's latency, and a failure in one is logged rather than answered.
 */
import { log } from '../log';
import type { CompletionHook } from '../pipeline/phases';
import type { AuditLog } from './audit-log';
import { callRecord } from './call-record';
import type { ProxyMetrics } from './metrics';

export function recordMetrics(metrics: ProxyMetrics): CompletionHook {
  return (ctx, answer) => {
    const now = performance.now();
    const operation = ctx.operation?.name ?? 'unknown';
    metrics.requests.inc({ operation, outcome: answer.fault ? answer.fault.code : 'ok' });
    metrics.proxySeconds.observe({ operation }, (now - ctx.startedAt - ctx.gridMs) / 1000);
    if (ctx.gridMs > 0) metrics.gridSeconds.observe({ operation }, ctx.gridMs / 1000);
    // Only once a record (or the grid) has named the application: a label never comes from
    // unchecked input, so its values stay the operator's applications.
    if (ctx.application !== undefined) {
      metrics.applicationCalls.inc({
        application: ctx.application,
        operation,
        outcome: answer.fault ? answer.fault.code : 'ok',
      });
    }
  };
}

export function auditCalls(audit: AuditLog): CompletionHook {
  return (ctx, answer) => {
    audit.write(callRecord(ctx, answer.fault, Buffer.byteLength(answer.body), performance.now()));
  };
}

/** Who was refused and why, never what they sent; internal failures with their stack. */
export function logFaults(): CompletionHook {
  return (ctx, answer) => {
    const err = answer.fault;
    if (!err) return;
    if (err.detail === 'AuthenticationFault') {
      log.warn('request refused', {
        correlationId: ctx.correlationId,
        code: err.code,
        reason: err.message,
        signer: ctx.signer?.subject,
        remote: ctx.req.socket.remoteAddress,
      });
    } else if (err.code === 'SSP_INTERNAL') {
      const cause = err.cause;
      log.error('request failed', {
        correlationId: ctx.correlationId,
        operation: ctx.operation?.name,
        error: cause instanceof Error ? cause.stack : cause === undefined ? err.stack : String(cause),
      });
    }
  };
}
