/**
 * Codecs for WS-Enumeration, in both namespaces: the 2004/09 submission (Enumerate, Pull, Renew,
 * GetStatus, Release; WS-Management's OptimizeEnumeration) and the W3C 2011 Recommendation (where
 * Enumerate both starts and continues an enumeration, and responses say GrantedExpires). Requests
 * decode to one shape for both, tagged with the version, so one handler serves both; answers are
 * written in the namespace of the request. Schemas: schemas/ws/enumeration-*.xsd.
 */
import { GatewayError } from '../errors/catalogue';
import type { TaskOutputItem } from '../pipeline/operation';
import type { Decoded, DecodedFields, ElementCodec } from '../soap/schema';
import { SYM, WSEN_2004, WSEN_2011, WSMAN } from '../soap/ws-namespaces';
import { childElements, escapeText, serializeStandalone, textOf, type XmlElement } from '../soap/xml';

export type EnumerationVersion = '2004' | '2011';
const NS: Record<EnumerationVersion, string> = { '2004': WSEN_2004, '2011': WSEN_2011 };

function invalid(message: string): GatewayError {
  return new GatewayError('SSP_INVALID_ARGUMENT', message);
}

function kids(el: XmlElement, where: string): XmlElement[] {
  for (const c of el.children) {
    if (typeof c === 'string' && c.trim() !== '') throw invalid(`${where}: text is not allowed here`);
  }
  return childElements(el);
}

function positiveInt(el: XmlElement, where: string, allowZero = false): number {
  const t = textOf(el).trim();
  const n = /^\+?\d{1,15}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || (!allowZero && n === 0)) {
    throw invalid(
      `${where}: '${t.slice(0, 30)}' is not a ${allowZero ? 'non-negative' : 'positive'} integer`,
    );
  }
  return n;
}

/**
 * The context a consumer echoes: our cursor as text, or as the sym:EnumerationCursor element we
 * write (zeep drops the text of mixed content, so we write an element and read both).
 */
function readContext(el: XmlElement): string {
  const inner = childElements(el);
  const value =
    inner.length === 1 && inner[0]!.uri === SYM && inner[0]!.local === 'EnumerationCursor'
      ? textOf(inner[0]!)
      : inner.length === 0
        ? textOf(el)
        : '';
  const v = value.trim();
  if (v === '' || v.length > 512) {
    throw new GatewayError(
      'SSP_ENUMERATION_CONTEXT_INVALID',
      'the EnumerationContext is not one this proxy handed out',
    );
  }
  return v;
}

function inScope(el: XmlElement): DecodedFields {
  const out: DecodedFields = {};
  for (let e: XmlElement | null = el; e; e = e.parent) {
    for (const [prefix, uri] of Object.entries(e.nsDecls ?? {})) {
      if (prefix !== '' && !(prefix in out)) out[prefix] = uri;
    }
  }
  return out;
}

function readFilter(el: XmlElement): DecodedFields {
  const dialect = el.attrs.find((a) => a.local === 'Dialect' && a.uri === '')?.value;
  return {
    ...(dialect !== undefined ? { dialect } : {}),
    expression: textOf(el),
    elementContent: childElements(el).length > 0,
    namespaces: inScope(el),
  };
}

function readExpires(el: XmlElement): DecodedFields {
  const best = el.attrs.find((a) => a.local === 'BestEffort' && a.uri === '')?.value.trim();
  return {
    value: textOf(el).trim(),
    ...(best !== undefined ? { bestEffort: best === 'true' || best === '1' } : {}),
  };
}

const WSA_NS = new Set([
  'http://www.w3.org/2005/08/addressing',
  'http://schemas.xmlsoap.org/ws/2004/08/addressing',
]);

/** An EndTo endpoint reference: its Address, and its reference parameters as XML to echo. */
function readEndTo(el: XmlElement): DecodedFields {
  let address = '';
  let ns = '';
  let parameters = '';
  for (const k of childElements(el)) {
    if (!WSA_NS.has(k.uri)) continue;
    if (k.local === 'Address') {
      address = textOf(k).trim();
      ns = k.uri;
    } else if (k.local === 'ReferenceParameters') {
      parameters = childElements(k).map(serializeStandalone).join('');
    }
  }
  if (address === '') throw invalid('EndTo needs a wsa:Address');
  return { address, ns, parameters };
}

/** The start of an enumeration: 2004/09's Enumerate, 2011's NewContext. */
function readStart(el: XmlElement, ns: string, where: string, extensions: XmlElement[]): DecodedFields {
  const start: DecodedFields = {};
  for (const k of kids(el, where)) {
    if (k.uri === ns && k.local === 'EndTo') start.endTo = readEndTo(k);
    else if (k.uri === ns && k.local === 'Expires') start.expires = readExpires(k);
    else if (k.uri === ns && k.local === 'Filter') start.filter = readFilter(k);
    else if (k.uri === ns) throw invalid(`${where}: unexpected element ${k.local}`);
    // Other namespaces are extensions (WS-Management's among them): read, or left alone.
    else extensions.push(k);
  }
  return start;
}

function decodeEnumerate2004(el: XmlElement): Decoded {
  const extensions: XmlElement[] = [];
  const start = readStart(el, WSEN_2004, 'Enumerate', extensions);
  const out: DecodedFields = { version: '2004', start, optimize: false };
  for (const x of extensions) {
    if (x.uri !== WSMAN) continue;
    if (x.local === 'OptimizeEnumeration') out.optimize = true;
    else if (x.local === 'MaxElements') out.max = positiveInt(x, 'wsman:MaxElements');
  }
  return out;
}

function decodeEnumerate2011(el: XmlElement): Decoded {
  const out: DecodedFields = { version: '2011', optimize: false };
  for (const k of kids(el, 'Enumerate')) {
    if (k.uri !== WSEN_2011) continue;
    if (k.local === 'NewContext') out.start = readStart(k, WSEN_2011, 'NewContext', []);
    else if (k.local === 'EnumerationContext') out.context = readContext(k);
    else if (k.local === 'MaxTime') out.maxTime = textOf(k).trim();
    else if (k.local === 'MaxItems') out.max = positiveInt(k, 'MaxItems', true);
    else if (k.local === 'MaxCharacters') out.maxCharacters = positiveInt(k, 'MaxCharacters');
    else throw invalid(`Enumerate: unexpected element ${k.local}`);
  }
  if ((out.start === undefined) === (out.context === undefined)) {
    throw invalid('Enumerate must hold either NewContext (to start) or EnumerationContext (to go on)');
  }
  if (out.start !== undefined) out.optimize = true;
  return out;
}

function decodePull(el: XmlElement): Decoded {
  const out: DecodedFields = { version: '2004' };
  for (const k of kids(el, 'Pull')) {
    if (k.uri !== WSEN_2004) continue;
    if (k.local === 'EnumerationContext') out.context = readContext(k);
    else if (k.local === 'MaxTime') out.maxTime = textOf(k).trim();
    else if (k.local === 'MaxElements') out.max = positiveInt(k, 'MaxElements');
    else if (k.local === 'MaxCharacters') out.maxCharacters = positiveInt(k, 'MaxCharacters');
    else throw invalid(`Pull: unexpected element ${k.local}`);
  }
  if (out.context === undefined) throw invalid('Pull needs its EnumerationContext');
  return out;
}

function decodeContextOp(version: EnumerationVersion, local: string): (el: XmlElement) => Decoded {
  return (el) => {
    const out: DecodedFields = { version };
    for (const k of kids(el, local)) {
      if (k.uri !== NS[version]) continue;
      if (k.local === 'EnumerationContext') out.context = readContext(k);
      else if (k.local === 'Expires' && local === 'Renew') out.expires = readExpires(k);
      else throw invalid(`${local}: unexpected element ${k.local}`);
    }
    if (out.context === undefined) throw invalid(`${local} needs its EnumerationContext`);
    return out;
  };
}

/** A page, as the handler answers it: the items are written here, after the reply checks. */
export interface PageAnswer {
  /** Absent once the enumeration has ended (zeep then sees no context: the sign to stop). */
  context?: string;
  expires?: string;
  outputs?: TaskOutputItem[];
  /** Items already written (the consumer's sessions). */
  items?: string[];
  endOfSequence?: boolean;
  /** Whether items go in the response (a 2004/09 EnumerateResponse carries them only when optimized). */
  page: boolean;
}

export interface ExpiresAnswer {
  context?: string;
  expires?: string;
}

function contextXml(prefix: string, cursor: string): string {
  return (
    `<${prefix}:EnumerationContext><sym:EnumerationCursor xmlns:sym="${SYM}">${escapeText(cursor)}` +
    `</sym:EnumerationCursor></${prefix}:EnumerationContext>`
  );
}

function wrap(version: EnumerationVersion, local: string, inner: string): string {
  const p = 'wsen';
  return `<${p}:${local} xmlns:${p}="${NS[version]}">${inner}</${p}:${local}>`;
}

export function enumerationCodecs(encodeOutput: (item: TaskOutputItem) => string): Map<string, ElementCodec> {
  const items = (v: PageAnswer): string =>
    (v.outputs ?? []).map(encodeOutput).join('') + (v.items ?? []).join('');
  const expiresName = (version: EnumerationVersion): string =>
    version === '2004' ? 'Expires' : 'GrantedExpires';
  const expires = (version: EnumerationVersion, v: { expires?: string }): string =>
    v.expires !== undefined
      ? `<wsen:${expiresName(version)}>${escapeText(v.expires)}</wsen:${expiresName(version)}>`
      : '';

  const page2004 = (v: PageAnswer, local: 'PullResponse'): string =>
    wrap(
      '2004',
      local,
      (v.context !== undefined ? contextXml('wsen', v.context) : '') +
        (v.outputs?.length || v.items?.length ? `<wsen:Items>${items(v)}</wsen:Items>` : '') +
        (v.endOfSequence ? '<wsen:EndOfSequence/>' : ''),
    );

  const enumerateResponse2004 = (v: PageAnswer): string => {
    // The first page travels in WS-Management's elements, which are extensions of the 2004/09 response.
    const first = v.page
      ? (v.outputs?.length || v.items?.length
          ? `<wsman:Items xmlns:wsman="${WSMAN}">${items(v)}</wsman:Items>`
          : '') + (v.endOfSequence ? `<wsman:EndOfSequence xmlns:wsman="${WSMAN}"/>` : '')
      : '';
    return wrap(
      '2004',
      'EnumerateResponse',
      expires('2004', v) + (v.context !== undefined ? contextXml('wsen', v.context) : '') + first,
    );
  };

  const enumerateResponse2011 = (v: PageAnswer): string =>
    wrap(
      '2011',
      'EnumerateResponse',
      expires('2011', v) +
        (v.context !== undefined ? contextXml('wsen', v.context) : '') +
        (v.outputs?.length || v.items?.length ? `<wsen:Items>${items(v)}</wsen:Items>` : '') +
        (v.endOfSequence ? '<wsen:EndOfSequence/>' : ''),
    );

  const notRead = (el: XmlElement): Decoded => {
    throw invalid(`{${el.uri}}${el.local} is a response element`);
  };
  const entry = (
    ns: string,
    local: string,
    decode: (el: XmlElement) => Decoded,
    encode: (v: unknown) => string = () => {
      throw new Error(`{${ns}}${local} is a request: it is never written`);
    },
  ): [string, ElementCodec] => [`{${ns}}${local}`, { name: local, ns, decode, encode }];

  /** Renew and GetStatus of one namespace: the same shapes, only Expires is named differently. */
  const expiryOps = (version: EnumerationVersion): [string, ElementCodec][] => [
    entry(NS[version], 'Renew', decodeContextOp(version, 'Renew')),
    entry(NS[version], 'RenewResponse', notRead, (v) => {
      const a = v as ExpiresAnswer;
      return wrap(
        version,
        'RenewResponse',
        expires(version, a) + (a.context ? contextXml('wsen', a.context) : ''),
      );
    }),
    entry(NS[version], 'GetStatus', decodeContextOp(version, 'GetStatus')),
    entry(NS[version], 'GetStatusResponse', notRead, (v) =>
      wrap(version, 'GetStatusResponse', expires(version, v as ExpiresAnswer)),
    ),
  ];

  return new Map<string, ElementCodec>([
    entry(WSEN_2004, 'Enumerate', decodeEnumerate2004),
    entry(WSEN_2004, 'EnumerateResponse', notRead, (v) => enumerateResponse2004(v as PageAnswer)),
    entry(WSEN_2004, 'Pull', decodePull),
    entry(WSEN_2004, 'PullResponse', notRead, (v) => page2004(v as PageAnswer, 'PullResponse')),
    ...expiryOps('2004'),
    entry(WSEN_2004, 'Release', decodeContextOp('2004', 'Release')),

    entry(WSEN_2011, 'Enumerate', decodeEnumerate2011),
    entry(WSEN_2011, 'EnumerateResponse', notRead, (v) => enumerateResponse2011(v as PageAnswer)),
    ...expiryOps('2011'),
    entry(WSEN_2011, 'Release', decodeContextOp('2011', 'Release')),
    entry(WSEN_2011, 'ReleaseResponse', notRead, () => `<wsen:ReleaseResponse xmlns:wsen="${WSEN_2011}"/>`),
  ]);
}

/**
 * The one-way EnumerationEnd a source sends to EndTo: here when a context expires (2004/09: Code;
 * 2011: Reason), with the reference parameters of EndTo as header blocks, as WS-Addressing says.
 */
export function enumerationEnd(
  version: EnumerationVersion,
  cursor: string,
  endTo: { address: string; ns: string; parameters: string },
): { header: string; body: string; action: string } {
  const ns = NS[version];
  const reason =
    version === '2004'
      ? `<wsen:Code>${ns}/SourceCancelling</wsen:Code><wsen:Reason xml:lang="en">the enumeration context expired</wsen:Reason>`
      : `<wsen:Reason>${ns}/SourceCancelling</wsen:Reason><wsen:ReasonDescription xml:lang="en">the enumeration context expired</wsen:ReasonDescription>`;
  const action = `${ns}/EnumerationEnd`;
  return {
    action,
    header:
      `<wsa:To xmlns:wsa="${endTo.ns}">${escapeText(endTo.address)}</wsa:To>` +
      `<wsa:Action xmlns:wsa="${endTo.ns}">${action}</wsa:Action>` +
      endTo.parameters,
    body: `<wsen:EnumerationEnd xmlns:wsen="${ns}">${contextXml('wsen', cursor)}${reason}</wsen:EnumerationEnd>`,
  };
}
