/** SOAP 1.1 / 1.2 envelopes: reading the request's shape and writing responses and faults. */
import { GatewayError } from '../errors/catalogue';
import { childElements, escapeText, type XmlElement } from './xml';
import { SSP_ERRORS, WSNT, WSRF_BF, WSRF_R, WSRF_RL, WSRF_RP } from './ws-namespaces';

const STANDARD_FAULT_NS: Record<string, string> = {
  'wsrf-r': WSRF_R,
  'wsrf-rp': WSRF_RP,
  'wsrf-rl': WSRF_RL,
  wsnt: WSNT,
};

/**
 * A WS-BaseFaults 1.2 detail: our correlation id first (the type's extension slot), then the
 * standard's Timestamp, our error code under our dialect, and the message.
 */
function baseFaultDetail(err: GatewayError, qname: string, correlationId: string): string {
  const prefix = qname.slice(0, qname.indexOf(':'));
  return (
    `<${qname} xmlns:${prefix}="${STANDARD_FAULT_NS[prefix]}" xmlns:wsrf-bf="${WSRF_BF}">` +
    `<sym:correlationId xmlns:sym="${SYM_NS}">${escapeText(correlationId)}</sym:correlationId>` +
    `<wsrf-bf:Timestamp>${new Date().toISOString()}</wsrf-bf:Timestamp>` +
    `<wsrf-bf:ErrorCode dialect="${SSP_ERRORS}">${err.code}</wsrf-bf:ErrorCode>` +
    `<wsrf-bf:Description xml:lang="en">${escapeText(err.message)}</wsrf-bf:Description>` +
    (err.faultExtension ?? '') +
    `</${qname}>`
  );
}

export const SOAP11_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12_NS = 'http://www.w3.org/2003/05/soap-envelope';
export const SYM_NS = 'http://soapproxy.symphony/v1';

export type SoapVersion = '1.1' | '1.2';

export const CONTENT_TYPE: Record<SoapVersion, string> = {
  '1.1': 'text/xml; charset=utf-8',
  '1.2': 'application/soap+xml; charset=utf-8',
};

/** SOAP version announced by the Content-Type header, or null when it is neither. */
export function versionFromContentType(contentType: string | undefined): SoapVersion | null {
  if (!contentType) return null;
  const mime = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mime === 'text/xml') return '1.1';
  if (mime === 'application/soap+xml') return '1.2';
  return null;
}

/** The `action` parameter of a SOAP 1.2 content type. */
export function actionFromContentType(contentType: string | undefined): string | undefined {
  const m = contentType && /;\s*action\s*=\s*"?([^";]*)"?/i.exec(contentType);
  return m ? m[1] : undefined;
}

export interface EnvelopeParts {
  header: XmlElement | null;
  /** The single element inside Body: the operation's request element. */
  payload: XmlElement;
}

export function readEnvelope(root: XmlElement, version: SoapVersion): EnvelopeParts {
  const ns = version === '1.1' ? SOAP11_NS : SOAP12_NS;
  if (root.local !== 'Envelope')
    throw new GatewayError('SSP_NOT_SOAP', 'the root element is not a SOAP Envelope');
  if (root.uri !== ns) {
    if (root.uri === SOAP11_NS || root.uri === SOAP12_NS) {
      throw new GatewayError(
        'SSP_VERSION_MISMATCH',
        `a SOAP ${root.uri === SOAP11_NS ? '1.1' : '1.2'} envelope was sent with a SOAP ${version} content type`,
      );
    }
    throw new GatewayError('SSP_NOT_SOAP', `the Envelope is in namespace '${root.uri}', not SOAP ${version}`);
  }
  for (const c of root.children) {
    if (typeof c === 'string' && c.trim() !== '')
      throw new GatewayError('SSP_NOT_SOAP', 'text inside Envelope');
  }
  const parts = childElements(root);
  let i = 0;
  let header: XmlElement | null = null;
  if (parts[0] && parts[0].uri === ns && parts[0].local === 'Header') header = parts[i++]!;
  const body = parts[i++];
  if (!body || body.uri !== ns || body.local !== 'Body') {
    throw new GatewayError('SSP_NOT_SOAP', 'the Envelope must hold an optional Header followed by one Body');
  }
  if (i !== parts.length) throw new GatewayError('SSP_NOT_SOAP', 'nothing may follow the Body');
  const inBody = childElements(body);
  if (inBody.length !== 1) {
    throw new GatewayError('SSP_NOT_SOAP', `the Body must hold exactly one element, found ${inBody.length}`);
  }
  for (const c of body.children) {
    if (typeof c === 'string' && c.trim() !== '') throw new GatewayError('SSP_NOT_SOAP', 'text inside Body');
  }
  return { header, payload: inBody[0]! };
}

/** Wraps body content (and header blocks) in an envelope; the response signer is one, the plain writer another. */
export type EnvelopeWriter = (version: SoapVersion, body: string, header?: string) => string;

/** What a reply needs of the request's WS-Addressing, when it used any. */
export interface RequestAddressing {
  /** The WS-Addressing namespace the request used (1.0, or the 2004/08 submission). */
  ns: string;
  messageId: string | undefined;
}

/** WS-Addressing's reply headers: the reply's Action and RelatesTo the request's MessageID. */
export function replyHeaders(a: RequestAddressing | undefined, action: string): string {
  if (!a) return '';
  return (
    `<wsa:Action xmlns:wsa="${a.ns}">${escapeText(action)}</wsa:Action>` +
    (a.messageId !== undefined
      ? `<wsa:RelatesTo xmlns:wsa="${a.ns}">${escapeText(a.messageId)}</wsa:RelatesTo>`
      : '')
  );
}

/** The Action of a fault reply: the standard's own fault action, else WS-Addressing's. */
function faultAction(err: GatewayError, a: RequestAddressing): string {
  if (err.subcode) return `${err.subcode.ns}/fault`;
  if (err.detail?.startsWith('wsrf-')) return 'http://docs.oasis-open.org/wsrf/fault';
  if (err.detail?.startsWith('wsnt:')) return 'http://docs.oasis-open.org/wsn/fault';
  return `${a.ns}/fault`;
}

export function envelope(version: SoapVersion, body: string, header = ''): string {
  const ns = version === '1.1' ? SOAP11_NS : SOAP12_NS;
  return (
    `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="${ns}">` +
    (header ? `<soap:Header>${header}</soap:Header>` : '') +
    `<soap:Body>${body}</soap:Body></soap:Envelope>`
  );
}

export interface FaultOut {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** Renders a GatewayError as a fault in the request's SOAP version. */
export function renderFault(
  err: GatewayError,
  version: SoapVersion,
  correlationId: string,
  write: EnvelopeWriter = envelope,
  addressing?: RequestAddressing,
): FaultOut {
  const detailName = err.detail ?? 'ProxyFault';
  const detail = detailName.includes(':')
    ? baseFaultDetail(err, detailName, correlationId)
    : `<sym:${detailName} xmlns:sym="${SYM_NS}">` +
      `<sym:code>${err.code}</sym:code>` +
      `<sym:message>${escapeText(err.message)}</sym:message>` +
      `<sym:retryable>${err.retryable}</sym:retryable>` +
      (err.retryAfterSeconds !== undefined
        ? `<sym:retryAfterSeconds>${err.retryAfterSeconds}</sym:retryAfterSeconds>`
        : '') +
      `<sym:correlationId>${escapeText(correlationId)}</sym:correlationId>` +
      `</sym:${detailName}>`;
  const reason = escapeText(`${err.message} (${err.hint})`);
  const details = detail + (err.extraDetail ?? '');
  const sub = err.subcode;
  let fault: string;
  if (version === '1.1') {
    // SOAP 1.1 has no subcodes: a standard's code takes the faultcode's place.
    const code = sub
      ? `${sub.prefix}:${sub.local}`
      : `soap:${err.code === 'SSP_VERSION_MISMATCH' ? 'VersionMismatch' : err.side === 'Sender' ? 'Client' : 'Server'}`;
    fault =
      `<soap:Fault${sub ? ` xmlns:${sub.prefix}="${sub.ns}"` : ''}><faultcode>${code}</faultcode><faultstring>${reason}</faultstring>` +
      `<detail>${details}</detail></soap:Fault>`;
  } else {
    const code = err.code === 'SSP_VERSION_MISMATCH' ? 'VersionMismatch' : err.side;
    const ours = `<soap:Subcode><soap:Value xmlns:ssp="urn:symphony-soap-proxy:errors">ssp:${err.code}</soap:Value></soap:Subcode>`;
    fault =
      `<soap:Fault><soap:Code><soap:Value>soap:${code}</soap:Value>` +
      (sub
        ? `<soap:Subcode><soap:Value xmlns:${sub.prefix}="${sub.ns}">${sub.prefix}:${sub.local}</soap:Value>${ours}</soap:Subcode>`
        : ours) +
      `</soap:Code><soap:Reason><soap:Text xml:lang="en">${reason}</soap:Text></soap:Reason>` +
      `<soap:Detail>${details}</soap:Detail></soap:Fault>`;
  }
  // WS-I BP R1126: SOAP 1.1 faults travel with 500; SOAP 1.2 lets the status carry the class.
  const status = version === '1.2' || err.transport ? err.status : 500;
  const headers: Record<string, string> = { 'content-type': CONTENT_TYPE[version] };
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  const header = addressing ? replyHeaders(addressing, faultAction(err, addressing)) : '';
  return { status, body: write(version, fault, header), headers };
}
