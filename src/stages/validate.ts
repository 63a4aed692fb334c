/**
 * Deep inspection: typed XML task inputs must satisfy the schemas that the control file names
 * for the service version before anything reaches the grid; task outputs are checked on the
 * way back, before they are encoded. The input check runs first in the policy phase, so that
 * an invalid request never uses up a consumer's quota. Which payloads a call carries is the
 * operation's trait (taskInputs, taskOutputs).
 */
import { GatewayError } from '../errors/catalogue';
import type { AnsweredCall } from '../pipeline/context';
import type { TaskPayload } from '../pipeline/operation';
import type { Hook, PolicyHook } from '../pipeline/phases';
import type { PayloadSchema } from '../policy/payload-schema';
import type { ProxyMetrics } from '../observability/metrics';

function firstProblem(schemas: PayloadSchema[], p: TaskPayload): string | null {
  if (p.xml === undefined) {
    return `this service version takes typed XML payloads (<xml>), not ${p.text !== undefined ? 'text' : 'binary'}`;
  }
  for (const s of schemas) {
    const problem = s.validate(p.xml);
    if (problem) return problem;
  }
  return null;
}

export function validateInputs(metrics: ProxyMetrics): PolicyHook {
  return async (ctx) => {
    const v = ctx.policy?.version;
    const inputsOf = ctx.operation.traits.taskInputs;
    if (!v || !v.requestSchemas.length || !inputsOf) return;
    const tasks = inputsOf(ctx.args);
    for (const [i, task] of tasks.entries()) {
      const problem = firstProblem(v.requestSchemas, task);
      if (problem) {
        metrics.validations.inc({ direction: 'input', result: 'invalid' });
        throw new GatewayError(
          'SSP_PAYLOAD_INVALID',
          `task input ${i + 1} of ${tasks.length} is invalid for ${v.version.uri}: ${problem}`,
        );
      }
    }
    metrics.validations.inc({ direction: 'input', result: 'valid' }, tasks.length);
  };
}

export function validateOutputs(metrics: ProxyMetrics): Hook<AnsweredCall> {
  return async (ctx) => {
    const v = ctx.policy?.version;
    const outputsOf = ctx.operation.traits.taskOutputs;
    if (!v || !v.responseSchemas.length || !outputsOf) return;
    // An output that fails its schema is still handed over, as a failed task naming the
    // problem: the grid has already forgotten it, so dropping it would lose it.
    for (const o of outputsOf(ctx.result)) {
      if (!o.successful || !o.taskOutput) continue;
      const problem = firstProblem(v.responseSchemas, o.taskOutput);
      metrics.validations.inc({ direction: 'output', result: problem ? 'invalid' : 'valid' });
      if (problem) {
        o.successful = false;
        o.exception = `SSP_OUTPUT_INVALID: the task output is invalid for ${v.version.uri}: ${problem}`;
        o.taskOutput = undefined;
      }
    }
  };
}
