/** Hardened parse of the envelope; nothing else touches the request bytes before this. */
import { GatewayError } from '../errors/catalogue';
import type { ReceivedCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import { readEnvelope } from '../soap/envelope';
import { parseXmlBytes, XmlRejected, type XmlElement, type XmlLimits } from '../soap/xml';

const REJECTION_CODE = {
  malformed: 'SSP_MALFORMED_XML',
  forbidden: 'SSP_FORBIDDEN_XML',
  limit: 'SSP_XML_LIMIT',
} as const;

const WSA = new Set([
  'http://www.w3.org/2005/08/addressing',
  'http://schemas.xmlsoap.org/ws/2004/08/addressing',
]);
const MESSAGE_ID = /^[\x21-\x7e]{1,200}$/;

function textOf(el: XmlElement): string {
  let s = '';
  for (const c of el.children) if (typeof c === 'string') s += c;
  return s;
}

export function parse(limits: XmlLimits & { maxHeaders: number }): Hook<ReceivedCall> {
  return async (ctx) => {
    let root;
    try {
      root = parseXmlBytes(ctx.raw, limits);
    } catch (e) {
      if (e instanceof XmlRejected) throw new GatewayError(REJECTION_CODE[e.kind], e.message);
      throw e;
    }
    const parts = readEnvelope(root, ctx.soapVersion);
    if (parts.header) {
      const blocks = parts.header.children.filter((c) => typeof c !== 'string');
      // Counted before anything in them is used: a refused request keeps our correlation id.
      if (blocks.length > limits.maxHeaders) {
        throw new GatewayError('SSP_XML_LIMIT', `more than ${limits.maxHeaders} SOAP header blocks`);
      }
      const ids = blocks.filter((c) => c.local === 'MessageID' && WSA.has(c.uri));
      const used = blocks.find((c) => WSA.has(c.uri));
      // WS-Addressing allows one; with two, a firewall and the proxy could each pick another,
      // and a resend would not be recognised as one.
      if (ids.length > 1) {
        throw new GatewayError(
          'SSP_INVALID_ARGUMENT',
          'more than one wsa:MessageID header; send exactly one',
        );
      }
      const id = ids[0] ? textOf(ids[0]).trim() : '';
      // The client's id names this call in our logs and audit, so it must be a plain token.
      if (MESSAGE_ID.test(id)) {
        ctx.correlationId = id;
        ctx.messageId = id;
      }
      // A request that speaks WS-Addressing gets its reply headers, in the namespace it used.
      if (used) ctx.addressing = { ns: used.uri, messageId: ids[0] && id !== '' ? id : undefined };
    }
    ctx.envelope = root;
    ctx.header = parts.header;
    ctx.payload = parts.payload;
  };
}
