/** TaskInput and TaskOutput port types: sendTaskInput, sendTaskInputBatch, fetchTaskOutput. */
import type { Payload, TaskInput } from '../backend/protocol';
import { GatewayError } from '../errors/catalogue';
import { parseXml } from '../soap/xml';
import type { Handler } from '../stages/dispatch';
import type { ServiceDeps } from './deps';
import type {
  FetchTaskOutputArgs,
  PayloadValue,
  SendTaskInputArgs,
  SendTaskInputBatchArgs,
  TaskSubmissionAttributes,
} from './messages';
import { ownedSession } from './ownership';

function toTask(t: TaskSubmissionAttributes): TaskInput {
  const p = t.taskInput;
  const payload: Payload =
    p.xml !== undefined ? { xml: p.xml } : p.text !== undefined ? { text: p.text } : { binary: p.binary };
  return { tag: t.tag ?? '', priority: t.taskPriority ?? 1, payload };
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

export function taskService({ router, store, maxTasksPerBatch }: ServiceDeps): Record<string, Handler> {
  return {
    async sendTaskInput(args: SendTaskInputArgs, ctx) {
      const rec = await ownedSession(store, ctx, args.sessionId);
      const reply = await router.call(ctx, rec.cluster, 'sendTasks', {
        sessionId: args.sessionId,
        tasks: [toTask(args.taskSubmissionAttributes)],
      });
      return { taskId: reply.taskIds[0] };
    },

    async sendTaskInputBatch(args: SendTaskInputBatchArgs, ctx) {
      const n = args.taskSubmissionAttributes.length;
      if (n > maxTasksPerBatch) {
        throw new GatewayError(
          'SSP_INVALID_ARGUMENT',
          `a batch may hold at most ${maxTasksPerBatch} tasks; this one has ${n}`,
        );
      }
      const rec = await ownedSession(store, ctx, args.sessionId);
      const reply = await router.call(ctx, rec.cluster, 'sendTasks', {
        sessionId: args.sessionId,
        tasks: args.taskSubmissionAttributes.map(toTask),
      });
      return { taskId: reply.taskIds };
    },

    async fetchTaskOutput(args: FetchTaskOutputArgs, ctx) {
      const rec = await ownedSession(store, ctx, args.sessionId);
      const waitMs = args.timeoutMillis ?? 0;
      const reply = await router.call(
        ctx,
        rec.cluster,
        'fetchOutputs',
        { sessionId: args.sessionId, countMax: args.countMax, waitMs },
        // The grid may legitimately hold the call for waitMs before answering.
        waitMs + router.client(rec.cluster).opts.requestTimeoutMs,
      );
      return {
        taskOutput: reply.outputs.map((o) => {
          const { value, problem } = checkedOutput(o.payload);
          return {
            taskId: o.taskId,
            tag: o.tag || undefined,
            successful: o.successful && !problem,
            exception:
              problem ?? (o.successful ? undefined : o.exception || 'the task failed without a message'),
            taskOutput: problem ? undefined : value,
          };
        }),
      };
    },
  };
}
