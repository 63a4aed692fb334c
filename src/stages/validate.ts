/**
 * Deep inspection: typed XML task inputs must satisfy the schemas that the control file names
 * for the service version before anything reaches the grid; task outputs are checked on the
 * way back. It sits after respond so it can inspect the result before it is encoded, and
 * before the limiter so that an invalid request never uses up a consumer's quota.
 */
import { GatewayError } from '../errors/catalogue';
import type { Stage } from '../pipeline/context';
import type { PayloadSchema } from '../policy/payload-schema';
import type { ProxyMetrics } from '../server/metrics';
import type { PayloadValue, SendTaskInputArgs, SendTaskInputBatchArgs } from '../services/messages';

interface OutputItem {
  taskId: string;
  successful: boolean;
  exception?: string | undefined;
  taskOutput?: PayloadValue | undefined;
}

function firstProblem(schemas: PayloadSchema[], p: PayloadValue): string | null {
  if (p.xml === undefined) {
    return `this service version takes typed XML payloads (<xml>), not ${p.text !== undefined ? 'text' : 'binary'}`;
  }
  for (const s of schemas) {
    const problem = s.validate(p.xml);
    if (problem) return problem;
  }
  return null;
}

export function validate(metrics: ProxyMetrics): Stage {
  return async (ctx, next) => {
    const v = ctx.policy?.version;
    if (!v) return next();
    const op = ctx.operation!.name;

    if (v.requestSchemas.length && (op === 'sendTaskInput' || op === 'sendTaskInputBatch')) {
      const tasks =
        op === 'sendTaskInput'
          ? [(ctx.args as unknown as SendTaskInputArgs).taskSubmissionAttributes]
          : (ctx.args as unknown as SendTaskInputBatchArgs).taskSubmissionAttributes;
      for (let i = 0; i < tasks.length; i++) {
        const problem = firstProblem(v.requestSchemas, tasks[i]!.taskInput);
        if (problem) {
          metrics.validations.inc({ direction: 'input', result: 'invalid' });
          throw new GatewayError(
            'SSP_PAYLOAD_INVALID',
            `task input ${i + 1} of ${tasks.length} is invalid for ${v.version.uri}: ${problem}`,
          );
        }
      }
      metrics.validations.inc({ direction: 'input', result: 'valid' }, tasks.length);
    }

    await next();

    if (v.responseSchemas.length && op === 'fetchTaskOutput') {
      // An output that fails its schema is still handed over, as a failed task naming the
      // problem: the grid has already forgotten it, so dropping it would lose it.
      const outputs = (ctx.result as { taskOutput: OutputItem[] }).taskOutput;
      for (const o of outputs) {
        if (!o.successful || !o.taskOutput) continue;
        const problem = firstProblem(v.responseSchemas, o.taskOutput);
        metrics.validations.inc({ direction: 'output', result: problem ? 'invalid' : 'valid' });
        if (problem) {
          o.successful = false;
          o.exception = `SSP_OUTPUT_INVALID: the task output is invalid for ${v.version.uri}: ${problem}`;
          o.taskOutput = undefined;
        }
      }
    }
  };
}
