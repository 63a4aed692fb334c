/** TaskOutput port type: fetchTaskOutput, acknowledgeTaskOutput. */
import { randomBytes } from 'node:crypto';
import type { Payload, TaskOutput } from '../backend/protocol';
import type { Handler, TaskOutputItem } from '../pipeline/operation';
import { parseXml } from '../soap/xml';
import type { StoredOutput } from '../store/store';
import type { OperationDeps } from './deps';
import type { AcknowledgeTaskOutputArgs, FetchTaskOutputArgs, PayloadValue } from './messages';
import { ownedSession } from './ownership';

export interface FetchReply {
  taskOutput: TaskOutputItem[];
  deliveryToken: string | undefined;
}

/** An output XML payload must be one well-formed, namespaced element before we embed it. */
function checkedOutput(p: Payload | undefined): { value?: PayloadValue; problem?: string } {
  if (!p) return {};
  if (p.xml !== undefined) {
    try {
      const el = parseXml(p.xml);
      if (!el.uri) return { problem: 'the service returned an XML output element without a namespace' };
    } catch {
      return { problem: 'the service returned an XML output that is not well-formed' };
    }
    return { value: { xml: p.xml } };
  }
  if (p.text !== undefined) return { value: { text: p.text } };
  return { value: { binary: Buffer.from(p.binary ?? new Uint8Array()) } };
}

/** Outputs travel through the store as JSON, binary payloads as base64. */
function serializeOutput(o: TaskOutput): StoredOutput {
  const p = o.payload;
  const payload =
    p === undefined
      ? undefined
      : p.binary !== undefined
        ? { binary: Buffer.from(p.binary).toString('base64') }
        : p;
  return {
    taskId: o.taskId,
    data: JSON.stringify({
      taskId: o.taskId,
      successful: o.successful,
      exception: o.exception,
      tag: o.tag,
      payload,
    }),
  };
}

function deserializeOutput(data: string): TaskOutput {
  const v = JSON.parse(data) as TaskOutput & { payload?: { xml?: string; text?: string; binary?: string } };
  const p = v.payload;
  return {
    taskId: v.taskId,
    successful: v.successful,
    exception: v.exception,
    tag: v.tag,
    payload: p?.binary !== undefined ? { binary: Buffer.from(p.binary, 'base64') } : p,
  };
}

function render(o: TaskOutput): TaskOutputItem & { tag: string | undefined } {
  const { value, problem } = checkedOutput(o.payload);
  return {
    taskId: o.taskId,
    tag: o.tag || undefined,
    successful: o.successful && !problem,
    exception: problem ?? (o.successful ? undefined : o.exception || 'the task failed without a message'),
    taskOutput: problem ? undefined : value,
  };
}

export function taskOutputHandlers(deps: OperationDeps): {
  fetchTaskOutput: Handler<FetchTaskOutputArgs, FetchReply>;
  acknowledgeTaskOutput: Handler<AcknowledgeTaskOutputArgs, Record<string, never>>;
} {
  const { router, store, reliability } = deps;
  return {
    /**
     * Lapsed leases first, then the grid. A leased fetch stores what the grid handed out
     * before it acknowledges the grid's hold, so that a proxy dying at any point loses nothing:
     * before the store write the grid takes its outputs back, after it the lease has them.
     */
    async fetchTaskOutput(args: FetchTaskOutputArgs, ctx) {
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const leaseMs = args.leaseMillis === undefined ? 0 : Math.min(args.leaseMillis, reliability.maxLeaseMs);
      const start = await store.beginFetch({
        sessionId: args.sessionId,
        acknowledge: args.acknowledge,
        token: randomBytes(16).toString('base64url'),
        leaseMs,
        reclaimAll: leaseMs > 0 && args.acknowledge === undefined,
        countMax: args.countMax,
        repeatKey: leaseMs > 0 ? ctx.clientKey : undefined,
        repeatTtlMs: reliability.clientKeyTtlMs,
      });
      const outputs = start.outputs.map(deserializeOutput);
      if (start.repeat) ctx.repeated = true;
      else if (outputs.length < args.countMax) {
        // Outputs in hand are answered at once rather than held for a long poll.
        const waitMs = outputs.length > 0 ? 0 : (args.timeoutMillis ?? 0);
        try {
          const reply = await router.call(
            ctx,
            rec.cluster,
            'fetchOutputs',
            {
              sessionId: args.sessionId,
              countMax: args.countMax - outputs.length,
              waitMs,
              holdMs: leaseMs > 0 ? reliability.gridHoldMs : 0,
            },
            // The grid may legitimately hold the call for waitMs before answering.
            waitMs + router.client(rec.cluster).opts.requestTimeoutMs,
            // Held outputs go back to the session when the socket drops, so a retry is safe.
            { retrySafe: leaseMs > 0 },
          );
          if (leaseMs > 0 && reply.outputs.length > 0) {
            await store.leaseOutputs(
              args.sessionId,
              start.token,
              reply.outputs.map(serializeOutput),
              leaseMs,
            );
            const deliveryId = reply.deliveryId;
            if (deliveryId) {
              // Unacknowledged, the grid would hand them out again after gridHoldMs: a duplicate, not a loss.
              router
                .client(rec.cluster)
                .call('ackOutputs', { sessionId: args.sessionId, deliveryId })
                .catch(() => undefined);
            }
          }
          outputs.push(...reply.outputs);
        } catch (e) {
          // Lapsed outputs already taken are this fetch's: deliver them rather than a fault.
          if (outputs.length === 0) throw e;
        }
      }
      return {
        taskOutput: outputs.map(render),
        deliveryToken: leaseMs > 0 ? start.token : undefined,
      };
    },

    async acknowledgeTaskOutput(args: AcknowledgeTaskOutputArgs, ctx) {
      await ownedSession(deps, ctx, args.sessionId);
      await store.acknowledge(args.sessionId, args.deliveryToken);
      return {};
    },
  };
}
