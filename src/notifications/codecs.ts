/**
 * Codecs for the WS-BaseNotification 1.3 messages (schemas/ws/b-2.xsd). The schema is served to
 * clients as published; the proxy reads the shapes it accepts by hand (b-2's Filter is a strict
 * wildcard, which a validating reader would refuse before we could answer InvalidFilterFault)
 * and writes the answers.
 *
 * Every message has an `xs:any ##other` extension point: elements of other namespaces are
 * ignored, except our own sym:Ack on GetMessages (see pull points in handlers.ts).
 */
import { GatewayError } from '../errors/catalogue';
import type { Decoded, DecodedFields, ElementCodec } from '../soap/schema';
import { SYM, WSA, WSNT, WSNT_W, XSI } from '../soap/ws-namespaces';
import { childElements, escapeText, serializeStandalone, textOf, type XmlElement } from '../soap/xml';
import { referenceElement } from '../resources/address';
import { readTopicExpression } from './topics';

function invalid(message: string): GatewayError {
  return new GatewayError('SSP_INVALID_ARGUMENT', message);
}

/** Our children in the wsnt namespace; text between them must be white space, foreign elements are extensions. */
function wsntChildren(el: XmlElement, where: string): XmlElement[] {
  for (const c of el.children) {
    if (typeof c === 'string' && c.trim() !== '') throw invalid(`${where}: text is not allowed here`);
  }
  return childElements(el).filter((k) => k.uri === WSNT);
}

function noWsntChildren(el: XmlElement, where: string): void {
  const k = wsntChildren(el, where)[0];
  if (k) throw invalid(`${where} takes no wsnt:${k.local}`);
}

/** An endpoint reference (WS-Addressing 1.0): its Address, and its reference parameters as XML to echo. */
export function readEndpointReference(el: XmlElement, where: string): DecodedFields {
  let address: string | undefined;
  let parameters = '';
  for (const k of childElements(el)) {
    if (k.uri !== WSA) continue;
    if (k.local === 'Address') {
      if (address !== undefined) throw invalid(`${where} has two wsa:Address elements`);
      address = textOf(k).trim();
    } else if (k.local === 'ReferenceParameters') {
      const blocks = childElements(k);
      const reserved = blocks.find((b) => RESERVED_HEADER_NS.has(b.uri));
      if (reserved) {
        throw new GatewayError(
          'SSP_CONSUMER_REFUSED',
          `${where}: a reference parameter in ${reserved.uri} would pose as a header the proxy writes on each Notify; use your own namespace`,
        );
      }
      parameters = blocks.map(asHeaderBlock).join('');
    }
  }
  if (!address) {
    throw new GatewayError(
      'SSP_CONSUMER_REFUSED',
      `${where} needs a wsa:Address (namespace ${WSA}) with the consumer's URL`,
    );
  }
  if (parameters.length > 4096)
    throw invalid(`${where}: reference parameters are limited to 4096 characters`);
  return { address, parameters };
}

/**
 * Reference parameters become header blocks of every Notify: none may pose as the security,
 * addressing or sequence headers the proxy itself writes there.
 */
const RESERVED_HEADER_NS = new Set([
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd',
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd',
  'http://www.w3.org/2000/09/xmldsig#',
  'http://schemas.xmlsoap.org/soap/envelope/',
  'http://www.w3.org/2003/05/soap-envelope',
  WSA,
  'http://schemas.xmlsoap.org/ws/2004/08/addressing',
  SYM,
]);

/**
 * A reference parameter as the header block it becomes on each Notify, marked as WS-Addressing
 * says. The marker's prefix is our own, so it cannot clash with a prefix the parameter uses.
 */
function asHeaderBlock(el: XmlElement): string {
  el.attrs = el.attrs.filter((a) => !(a.uri === WSA && a.local === 'IsReferenceParameter'));
  const xml = serializeStandalone(el);
  const end = xml.search(/[\s/>]/);
  return `${xml.slice(0, end)} xmlns:wsarp="${WSA}" wsarp:IsReferenceParameter="true"${xml.slice(end)}`;
}

/** An AbsoluteOrRelativeTimeType value, or nil. */
function readTime(el: XmlElement): DecodedFields {
  const nil = el.attrs.find((a) => a.local === 'nil' && a.uri === XSI)?.value.trim();
  const text = textOf(el).trim();
  if (nil === 'true' || nil === '1') {
    if (text !== '') throw invalid(`a nil ${el.local} must be empty`);
    return { kind: 'infinite' };
  }
  return /^-?P/.test(text) ? { kind: 'duration', text } : { kind: 'time', text };
}

function qnameOf(el: XmlElement): string {
  return `<wsnt:UnknownFilter xmlns:q="${escapeText(el.uri)}">q:${el.local}</wsnt:UnknownFilter>`;
}

function readFilter(el: XmlElement): Decoded[] {
  const kids = childElements(el);
  const unknown = kids.filter((k) => !(k.uri === WSNT && k.local === 'TopicExpression'));
  if (unknown.length > 0) {
    const names = unknown.map((k) => `{${k.uri}}${k.local}`).join(', ');
    throw new GatewayError('SSP_INVALID_FILTER', `the filter ${names} is not offered`, {
      // The fault type lists each filter it did not understand, as a QName.
      faultExtension: unknown.map(qnameOf).join(''),
    });
  }
  if (kids.length > 1)
    throw new GatewayError('SSP_INVALID_FILTER', 'send one TopicExpression per Subscribe', {
      faultExtension: qnameOf(kids[1]!),
    });
  return kids.map((k) => {
    const f = readTopicExpression(k);
    return { path: f.path, exact: f.exact };
  });
}

function readPolicy(el: XmlElement): void {
  const kids = childElements(el);
  const raw = kids.filter((k) => k.uri === WSNT && k.local === 'UseRaw');
  const listed = (list: XmlElement[], name: string): string =>
    list.map((k) => `<wsnt:${name} xmlns:q="${escapeText(k.uri)}">q:${k.local}</wsnt:${name}>`).join('');
  if (raw.length > 0) {
    throw new GatewayError('SSP_POLICY_UNSUPPORTED', 'UseRaw is not offered', {
      faultExtension: listed(raw, 'UnsupportedPolicy'),
    });
  }
  if (kids.length > 0) {
    throw new GatewayError(
      'SSP_POLICY_UNRECOGNIZED',
      `the subscription policy ${kids.map((k) => `{${k.uri}}${k.local}`).join(', ')} is not known`,
      { faultExtension: listed(kids, 'UnrecognizedPolicy') },
    );
  }
}

function decodeSubscribe(el: XmlElement): DecodedFields {
  const out: DecodedFields = { topics: [] };
  for (const k of wsntChildren(el, 'Subscribe')) {
    if (k.local in out && k.local !== 'topics') throw invalid(`Subscribe has two ${k.local} elements`);
    switch (k.local) {
      case 'ConsumerReference':
        out[k.local] = readEndpointReference(k, 'ConsumerReference');
        break;
      case 'Filter':
        out[k.local] = true;
        out.topics = readFilter(k);
        break;
      case 'InitialTerminationTime':
        out[k.local] = readTime(k);
        break;
      case 'SubscriptionPolicy':
        readPolicy(k);
        out[k.local] = true;
        break;
      default:
        throw invalid(`Subscribe takes no wsnt:${k.local}`);
    }
  }
  if (!out.ConsumerReference) throw invalid('Subscribe needs a ConsumerReference');
  return {
    consumer: out.ConsumerReference,
    topics: out.topics!,
    ...(out.InitialTerminationTime ? { initial: out.InitialTerminationTime } : {}),
  };
}

function decodeRenew(el: XmlElement): DecodedFields {
  const kids = wsntChildren(el, 'Renew');
  const t = kids[0];
  if (kids.length !== 1 || t?.local !== 'TerminationTime') throw invalid('Renew needs one TerminationTime');
  return { termination: readTime(t) };
}

function decodeGetMessages(el: XmlElement): DecodedFields {
  const out: DecodedFields = {};
  for (const k of wsntChildren(el, 'GetMessages')) {
    if (k.local !== 'MaximumNumber' || 'max' in out) throw invalid(`GetMessages takes one MaximumNumber`);
    const text = textOf(k).trim();
    if (!/^\+?\d{1,9}$/.test(text)) throw invalid('MaximumNumber must be a non-negative integer');
    out.max = Number(text);
  }
  const acks = childElements(el).filter((k) => k.uri === SYM && k.local === 'Ack');
  if (acks.length > 1) throw invalid('GetMessages takes at most one sym:Ack');
  if (acks[0]) {
    const text = textOf(acks[0]).trim();
    if (!/^\d{1,15}$/.test(text))
      throw invalid('sym:Ack must be the last sequence number of the previous batch');
    out.ack = Number(text);
  }
  return out;
}

function empty(local: string): (el: XmlElement) => DecodedFields {
  return (el) => {
    noWsntChildren(el, local);
    return {};
  };
}

/**
 * bw-2.wsdl states no actions, so clients derive them from its port-type names, and they
 * differ: the body decides, and each of these spellings is accepted for it.
 */
const ALIASES: Record<string, string[]> = {
  Renew: ['PausableSubscriptionManager/RenewRequest'],
  Unsubscribe: ['PausableSubscriptionManager/UnsubscribeRequest'],
  PauseSubscription: ['SubscriptionManager/PauseSubscriptionRequest'],
  ResumeSubscription: ['SubscriptionManager/ResumeSubscriptionRequest'],
  CreatePullPoint: ['PullPoint/CreatePullPointRequest'],
};

function codec(
  local: string,
  decode: (el: XmlElement) => Decoded,
  encode: (value: unknown) => string = () => {
    throw new Error(`wsnt:${local} is a request: it is never written`);
  },
): [string, ElementCodec] {
  const actionAliases = (ALIASES[local] ?? []).map((a) => `${WSNT_W}/${a}`);
  return [`{${WSNT}}${local}`, { name: local, ns: WSNT, decode, encode, actionAliases }];
}

const notRead = (el: XmlElement): Decoded => {
  throw invalid(`{${el.uri}}${el.local} is a response element`);
};

function wrap(local: string, inner = ''): string {
  return inner === ''
    ? `<wsnt:${local} xmlns:wsnt="${WSNT}"/>`
    : `<wsnt:${local} xmlns:wsnt="${WSNT}">${inner}</wsnt:${local}>`;
}

function terminationTime(t: string | null): string {
  return t === null
    ? `<wsnt:TerminationTime xmlns:xsi="${XSI}" xsi:nil="true"/>`
    : `<wsnt:TerminationTime>${t}</wsnt:TerminationTime>`;
}

export interface SubscribeAnswer {
  address: string;
  id: string;
  currentTime: string;
  terminationTime: string;
}
export interface RenewAnswer {
  currentTime: string;
  terminationTime: string;
}
export interface GetMessagesAnswer {
  /** Rendered wsnt:NotificationMessage elements. */
  messages: string[];
  /** The pull-point sequence numbers handed out, for a client that acknowledges with sym:Ack. */
  batch?: { first: number; last: number };
  dropped: number;
}

/** Every WS-BaseNotification element the WSDL uses, keyed by `{namespace}local`. */
export function notificationCodecs(): Map<string, ElementCodec> {
  return new Map<string, ElementCodec>([
    codec('Subscribe', decodeSubscribe),
    codec('SubscribeResponse', notRead, (v) => {
      const a = v as SubscribeAnswer;
      return wrap(
        'SubscribeResponse',
        referenceElement('wsnt:SubscriptionReference', a.address, 'SubscriptionId', a.id) +
          `<wsnt:CurrentTime>${a.currentTime}</wsnt:CurrentTime>` +
          terminationTime(a.terminationTime),
      );
    }),
    codec('Renew', decodeRenew),
    codec('RenewResponse', notRead, (v) => {
      const a = v as RenewAnswer;
      return wrap(
        'RenewResponse',
        terminationTime(a.terminationTime) + `<wsnt:CurrentTime>${a.currentTime}</wsnt:CurrentTime>`,
      );
    }),
    codec('Unsubscribe', empty('Unsubscribe')),
    codec('UnsubscribeResponse', notRead, () => wrap('UnsubscribeResponse')),
    codec('PauseSubscription', empty('PauseSubscription')),
    codec('PauseSubscriptionResponse', notRead, () => wrap('PauseSubscriptionResponse')),
    codec('ResumeSubscription', empty('ResumeSubscription')),
    codec('ResumeSubscriptionResponse', notRead, () => wrap('ResumeSubscriptionResponse')),
    codec('CreatePullPoint', empty('CreatePullPoint')),
    codec('CreatePullPointResponse', notRead, (v) => {
      const a = v as { address: string; id: string };
      return wrap(
        'CreatePullPointResponse',
        referenceElement('wsnt:PullPoint', a.address, 'PullPointId', a.id),
      );
    }),
    codec('GetMessages', decodeGetMessages),
    codec('GetMessagesResponse', notRead, (v) => {
      const a = v as GetMessagesAnswer;
      const batch = a.batch
        ? `<sym:Batch xmlns:sym="${SYM}" first="${a.batch.first}" last="${a.batch.last}"${a.dropped > 0 ? ` dropped="${a.dropped}"` : ''}/>`
        : '';
      return wrap('GetMessagesResponse', a.messages.join('') + batch);
    }),
    codec('DestroyPullPoint', empty('DestroyPullPoint')),
    codec('DestroyPullPointResponse', notRead, () => wrap('DestroyPullPointResponse')),
  ]);
}
