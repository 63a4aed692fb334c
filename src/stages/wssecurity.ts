/**
 * Verifies the request's WS-Security signature before anything else reads the message:
 * routing, decoding and dispatch only ever see a Body the signature covers.
 */
import type { Stage } from '../pipeline/context';
import type { WssVerifier } from '../security/verifier';

export function wssecurity(verifier: WssVerifier): Stage {
  return async (ctx, next) => {
    const verified = await verifier.verify(ctx.envelope!, ctx.header, ctx.payload!.parent!);
    ctx.signer = verified.signer;
    await next();
  };
}
