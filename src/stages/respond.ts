/** Encodes the response value as the operation's response element inside an envelope (signed, when configured). */
import type { AnsweredCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import { envelope, replyHeaders, type EnvelopeWriter } from '../soap/envelope';

export function respond(write: EnvelopeWriter = envelope): Hook<AnsweredCall> {
  return async (ctx) => {
    const op = ctx.operation;
    ctx.response = write(
      ctx.soapVersion,
      op.response.encode(ctx.result),
      replyHeaders(ctx.addressing, op.responseAction),
    );
  };
}
