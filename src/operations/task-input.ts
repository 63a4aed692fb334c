/** TaskInput port type: sendTaskInput, sendTaskInputBatch. */
import type { Payload, TaskInput } from '../backend/protocol';
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import type { Handler } from '../pipeline/operation';
import type { OperationDeps } from './deps';
import type { SendTaskInputArgs, SendTaskInputBatchArgs, TaskSubmissionAttributes } from './messages';
import { ownedSession } from './ownership';

export interface TaskIdReply {
  taskId: string | string[] | undefined;
}

function toTask(t: TaskSubmissionAttributes): TaskInput {
  const p = t.taskInput;
  const payload: Payload =
    p.xml !== undefined ? { xml: p.xml } : p.text !== undefined ? { text: p.text } : { binary: p.binary };
  return { tag: t.tag ?? '', priority: t.taskPriority ?? 1, payload };
}

export function taskInputHandlers(deps: OperationDeps): {
  sendTaskInput: Handler<SendTaskInputArgs, TaskIdReply>;
  sendTaskInputBatch: Handler<SendTaskInputBatchArgs, TaskIdReply>;
} {
  const { router, maxTasksPerBatch } = deps;
  /** With a client key the grid de-duplicates, so a send may be retried on another socket. */
  async function send(ctx: ResolvedCall, cluster: string, sessionId: string, tasks: TaskInput[]) {
    const submitKey = ctx.clientKey;
    return router.call(
      ctx,
      cluster,
      'sendTasks',
      submitKey === undefined ? { sessionId, tasks } : { sessionId, tasks, submitKey },
      undefined,
      { retrySafe: submitKey !== undefined },
    );
  }

  return {
    async sendTaskInput(args: SendTaskInputArgs, ctx) {
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const reply = await send(ctx, rec.cluster, args.sessionId, [toTask(args.taskSubmissionAttributes)]);
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
      const rec = await ownedSession(deps, ctx, args.sessionId);
      const reply = await send(ctx, rec.cluster, args.sessionId, args.taskSubmissionAttributes.map(toTask));
      return { taskId: reply.taskIds };
    },
  };
}
