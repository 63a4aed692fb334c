/** Encodes the response value as the operation's response element inside an envelope (signed, when configured). */
import type { AnsweredCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import { envelope, type EnvelopeWriter } from '../soap/envelope';

export function respond(write: EnvelopeWriter = envelope): Hook<AnsweredCall> {
  return async (ctx) => {
    ctx.response = write(ctx.soapVersion, ctx.operation.response.encode(ctx.result));
  };
}
