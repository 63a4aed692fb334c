/** TaskOutput port type: fetchTaskOutput, acknowledgeTaskOutput. */
import { randomBytes } from 'node:crypto';
import { sessionFacts } from '../accounting/sink';
import type { Payload, TaskOutput } from '../backend/protocol';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler, TaskOutputItem } from '../pipeline/operation';
import { parseXml } from '../soap/xml';
import type { SessionRecord, StoredOutput } from '../store/store';
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
export function serializeOutput(o: TaskOutput): StoredOutput {
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
      usage: o.usage,
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
    // Absent in outputs stored before grids reported usage, and from grids that do not.
    usage: v.usage,
  };
}

export function render(o: TaskOutput): TaskOutputItem & { tag: string | undefined } {
  const { value, problem } = checkedOutput(o.payload);
  return {
    taskId: o.taskId,
    tag: o.tag || undefined,
    successful: o.successful && !problem,
    exception: problem ?? (o.successful ? undefined : o.exception || 'the task failed without a message'),
    taskOutput: problem ? undefined : value,
  };
}

/** What a leased fetch asks of the store and the grid (fetchTaskOutput and enumeration Pulls). */
export interface LeasedFetch {
  sessionId: string;
  /** The session's record: usage records are charged to its owner. */
  session: SessionRecord;
  cluster: string;
  acknowledge: string | undefined;
  countMax: number;
  /** How long to wait for the grid when nothing is in hand. */
  waitMs: number;
  /** 0: not leased (outputs handed out are forgotten). */
  leaseMs: number;
  reclaimAll: boolean;
  repeatKey: string | undefined;
  repeatTtlMs: number;
}

/**
 * Lapsed leases first, then the grid. A leased fetch stores what the grid handed out before it
 * acknowledges the grid's hold, so that a proxy dying at any point loses nothing: before the
 * store write the grid takes its outputs back, after it the lease has them.
 */
export async function leasedFetch(
  deps: Pick<OperationDeps, 'router' | 'store' | 'reliability' | 'usage'>,
  ctx: ResolvedCall,
  f: LeasedFetch,
): Promise<{ repeat: boolean; token: string; outputs: TaskOutput[] }> {
  const { router, store, reliability } = deps;
  const start = await store.beginFetch({
    sessionId: f.sessionId,
    acknowledge: f.acknowledge,
    token: randomBytes(16).toString('base64url'),
    leaseMs: f.leaseMs,
    reclaimAll: f.reclaimAll,
    countMax: f.countMax,
    repeatKey: f.repeatKey,
    repeatTtlMs: f.repeatTtlMs,
  });
  const outputs = start.outputs.map(deserializeOutput);
  if (start.repeat || outputs.length >= f.countMax)
    return { repeat: start.repeat, token: start.token, outputs };
  // Outputs in hand are answered at once rather than held for a long poll.
  const waitMs = outputs.length > 0 ? 0 : f.waitMs;
  try {
    const reply = await router.call(
      ctx,
      f.cluster,
      'fetchOutputs',
      {
        sessionId: f.sessionId,
        countMax: f.countMax - outputs.length,
        waitMs,
        holdMs: f.leaseMs > 0 ? reliability.gridHoldMs : 0,
      },
      // The grid may legitimately hold the call for waitMs before answering.
      waitMs + router.client(f.cluster).opts.requestTimeoutMs,
      // Held outputs go back to the session when the socket drops, so a retry is safe.
      { retrySafe: f.leaseMs > 0 },
    );
    // Recorded before the grid's hold is released: a crash before this point gets the outputs
    // handed out again, and with them the same records.
    if (deps.usage && reply.outputs.length > 0)
      await deps.usage.record(sessionFacts(f.sessionId, f.session), reply.outputs);
    if (f.leaseMs > 0 && reply.outputs.length > 0) {
      await store.leaseOutputs(f.sessionId, start.token, reply.outputs.map(serializeOutput), f.leaseMs);
      const deliveryId = reply.deliveryId;
      if (deliveryId) {
        // Settled before the reply leaves: a proxy killed just after answering must not leave the
        // grid holding outputs the client already has (it would hand them out again). A failure
        // only means that duplicate, not a loss, so it does not fail the call.
        await router
          .client(f.cluster)
          .call('ackOutputs', { sessionId: f.sessionId, deliveryId })
          .catch(() => undefined);
      }
    }
    outputs.push(...reply.outputs);
  } catch (e) {
    // Lapsed outputs already taken are this fetch's: deliver them rather than a fault.
    if (outputs.length === 0) throw e;
  }
  return { repeat: false, token: start.token, outputs };
}

export function taskOutputHandlers(deps: OperationDeps): {
  fetchTaskOutput: Handler<FetchTaskOutputArgs, FetchReply>;
  acknowledgeTaskOutput: Handler<AcknowledgeTaskOutputArgs, Record<string, never>>;
} {
  const { store, reliability } = deps;
  return {
    async fetchTaskOutput(args: FetchTaskOutputArgs, ctx) {
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const leaseMs = args.leaseMillis === undefined ? 0 : Math.min(args.leaseMillis, reliability.maxLeaseMs);
      const fetched = await leasedFetch(deps, ctx, {
        sessionId: args.sessionId,
        session: rec,
        cluster: rec.cluster,
        acknowledge: args.acknowledge,
        countMax: args.countMax,
        waitMs: args.timeoutMillis ?? 0,
        leaseMs,
        reclaimAll: leaseMs > 0 && args.acknowledge === undefined,
        repeatKey: leaseMs > 0 ? ctx.clientKey : undefined,
        repeatTtlMs: reliability.clientKeyTtlMs,
      });
      if (fetched.repeat) ctx.repeated = true;
      return {
        taskOutput: fetched.outputs.map(render),
        deliveryToken: leaseMs > 0 ? fetched.token : undefined,
      };
    },

    async acknowledgeTaskOutput(args: AcknowledgeTaskOutputArgs, ctx) {
      await ownedSession(deps, ctx, args.sessionId);
      await store.acknowledge(args.sessionId, args.deliveryToken);
      return {};
    },
  };
}
