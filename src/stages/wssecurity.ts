/**
 * Verifies the request's WS-Security signature before anything else reads the message:
 * routing, decoding and dispatch only ever see a Body the signature covers.
 */
import type { ParsedCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import type { WssVerifier } from '../security/verifier';
import type { XmlElement } from '../soap/xml';

/** The Body element: the envelope stage guarantees the payload sits inside one. */
function bodyOf(payload: XmlElement): XmlElement {
  if (!payload.parent) throw new Error('a SOAP payload has no Body around it');
  return payload.parent;
}

export function wssecurity(verifier: WssVerifier): Hook<ParsedCall> {
  return async (ctx) => {
    // A resend must carry the same MessageID, or a replayed body could pose as a new call.
    const verified = await verifier.verify(
      ctx.envelope,
      ctx.header,
      bodyOf(ctx.payload),
      Date.now(),
      ctx.messageId ?? '',
    );
    ctx.signer = verified.signer;
    ctx.resend = verified.resend;
  };
}
