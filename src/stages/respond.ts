/** Encodes the handler's result as the operation's response element inside an envelope. */
import type { Stage } from '../pipeline/context';
import { envelope } from '../soap/envelope';

export function respond(): Stage {
  return async (ctx, next) => {
    await next();
    ctx.response = envelope(ctx.soapVersion, ctx.operation!.response.encode(ctx.result));
  };
}
