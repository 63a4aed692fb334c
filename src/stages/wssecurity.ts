/**
 * Verifies the request's WS-Security signature before anything else reads the message:
 * routing, decoding and dispatch only ever see a Body the signature covers.
 */
import type { Stage } from '../pipeline/context';
import type { WssVerifier } from '../security/verifier';

export function wssecurity(verifier: WssVerifier): Stage {
  return async (ctx, next) => {
    // A resend must carry the same MessageID, or a replayed body could pose as a new call.
    const verified = await verifier.verify(
      ctx.envelope!,
      ctx.header,
      ctx.payload!.parent!,
      Date.now(),
      ctx.messageId ?? '',
    );
    ctx.signer = verified.signer;
    ctx.resend = verified.resend;
    await next();
  };
}
