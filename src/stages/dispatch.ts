/** Calls the service handler registered for the operation. */
import { GatewayError } from '../errors/catalogue';
import type { RequestContext, Stage } from '../pipeline/context';

export type Handler = (args: never, ctx: RequestContext) => Promise<unknown>;

export function dispatch(handlers: ReadonlyMap<string, Handler>): Stage {
  return async (ctx) => {
    const handler = handlers.get(ctx.operation!.name);
    if (!handler) throw new GatewayError('SSP_INTERNAL', `operation ${ctx.operation!.name} has no handler`);
    ctx.result = await (handler as (a: unknown, c: RequestContext) => Promise<unknown>)(ctx.args, ctx);
  };
}
