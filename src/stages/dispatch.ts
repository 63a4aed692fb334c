/** Runs the operation's handler: the invoke phase. */
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';

const GONE = new Set([
  'SSP_UNKNOWN_SESSION',
  'SSP_UNKNOWN_CONNECTION',
  'SSP_RESOURCE_UNKNOWN',
  'SSP_ENUMERATION_CONTEXT_INVALID',
]);

export function dispatch(): (ctx: ResolvedCall) => Promise<unknown> {
  return async (ctx) => {
    const op = ctx.operation;
    try {
      return await op.handler(ctx.args, ctx);
    } catch (e) {
      // A resend of a release whose first attempt did the work and died before its answer
      // was recorded: the resource is gone, which is what was asked for.
      if (op.traits.releases && ctx.resend && e instanceof GatewayError && GONE.has(e.code)) return {};
      throw e;
    }
  };
}
