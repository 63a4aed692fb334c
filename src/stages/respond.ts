/** Encodes the handler's result as the operation's response element inside an envelope. */
import type { Stage } from '../pipeline/context';
import { envelope, type EnvelopeWriter } from '../soap/envelope';

export function respond(write: EnvelopeWriter = envelope): Stage {
  return async (ctx, next) => {
    await next();
    ctx.response = write(ctx.soapVersion, ctx.operation!.response.encode(ctx.result));
  };
}
