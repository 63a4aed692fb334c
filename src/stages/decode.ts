/** Validates and converts the request element by the schema; handlers get typed values only. */
import type { Stage } from '../pipeline/context';

export function decode(): Stage {
  return async (ctx, next) => {
    ctx.args = ctx.operation!.request.decode(ctx.payload!);
    await next();
  };
}
