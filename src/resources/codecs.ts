/**
 * Codecs for the WS-ResourceProperties 1.2 and WS-ResourceLifetime 1.2 messages. Their schemas
 * (schemas/ws/) are served to clients as published; the proxy reads the few shapes it accepts
 * by hand, as strictly as its own schema codec, and writes the answers.
 */
import { GatewayError } from '../errors/catalogue';
import type { Decoded, DecodedFields, ElementCodec } from '../soap/schema';
import { WSRF_RL, WSRF_RP, XSI } from '../soap/ws-namespaces';
import { childElements, escapeText, lookupPrefix, textOf, type XmlElement } from '../soap/xml';
export { addDuration, parseDateTime } from '../soap/xs-time';

/** At most this many properties in one GetMultipleResourceProperties. */
export const MAX_PROPERTIES_PER_CALL = 64;

const NCNAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const CLARK = /^\{([^{}]*)\}([A-Za-z_][A-Za-z0-9_.-]*)$/;

function invalid(message: string): GatewayError {
  return new GatewayError('SSP_INVALID_ARGUMENT', message);
}

function expect(el: XmlElement, ns: string, local: string): void {
  if (el.uri !== ns || el.local !== local) throw invalid(`expected element {${ns}}${local}`);
}

/** Elements only: text between them must be white space. */
function elementsOnly(el: XmlElement, where: string): XmlElement[] {
  for (const c of el.children) {
    if (typeof c === 'string' && c.trim() !== '') throw invalid(`${where}: text is not allowed here`);
  }
  return childElements(el);
}

function empty(el: XmlElement, where: string): void {
  if (elementsOnly(el, where).length > 0) throw invalid(`${where} must be empty`);
}

/**
 * A QName written as element content (`sym:State`), resolved against the namespaces in scope
 * where it was written, as `{namespace}local`. Clark notation is accepted too: some client
 * stacks send it when they cannot declare a prefix.
 */
export function readQName(el: XmlElement, where: string): string {
  const text = textOf(el).trim();
  const clark = CLARK.exec(text);
  if (clark) return text;
  const colon = text.indexOf(':');
  const prefix = colon < 0 ? '' : text.slice(0, colon);
  const local = colon < 0 ? text : text.slice(colon + 1);
  if (!NCNAME.test(local) || (prefix !== '' && !NCNAME.test(prefix))) {
    throw new GatewayError('SSP_INVALID_PROPERTY_QNAME', `${where}: '${clip(text)}' is not a QName`);
  }
  const ns = lookupPrefix(el, prefix);
  if (ns === undefined && prefix !== '') {
    throw new GatewayError(
      'SSP_INVALID_PROPERTY_QNAME',
      `${where}: the prefix '${prefix}' of '${clip(text)}' is not declared in scope`,
    );
  }
  return `{${ns ?? ''}}${local}`;
}

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}

/** Namespace bindings in scope at an element, nearest first (the default namespace left out: XPath 1.0 ignores it). */
function inScopeNamespaces(el: XmlElement): DecodedFields {
  const out: DecodedFields = {};
  for (let e: XmlElement | null = el; e; e = e.parent) {
    for (const [prefix, uri] of Object.entries(e.nsDecls ?? {})) {
      if (prefix !== '' && !(prefix in out)) out[prefix] = uri;
    }
  }
  return out;
}

/** What SetTerminationTime asks for. */
export type RequestedTermination =
  { kind: 'infinite' } | { kind: 'time'; text: string } | { kind: 'duration'; text: string };

function wrap(prefix: string, ns: string, local: string, inner: string): string {
  return inner === ''
    ? `<${prefix}:${local} xmlns:${prefix}="${ns}"/>`
    : `<${prefix}:${local} xmlns:${prefix}="${ns}">${inner}</${prefix}:${local}>`;
}

function itemsOf(value: unknown): string[] {
  const items = (value as { items?: unknown } | null)?.items;
  return Array.isArray(items) ? items.filter((x): x is string => typeof x === 'string') : [];
}

function codec(
  ns: string,
  local: string,
  decode: (el: XmlElement) => Decoded,
  encode: (value: unknown) => string = () => {
    throw new Error(`{${ns}}${local} is a request: it is never written`);
  },
): [string, ElementCodec] {
  return [`{${ns}}${local}`, { name: local, ns, decode, encode }];
}

const notRead = (el: XmlElement): Decoded => {
  throw invalid(`{${el.uri}}${el.local} is a response element`);
};

/** Every WSRF element the WSDL's resource port types use, keyed by `{namespace}local`. */
export function wsrfCodecs(): Map<string, ElementCodec> {
  return new Map<string, ElementCodec>([
    codec(WSRF_RP, 'GetResourcePropertyDocument', (el) => {
      expect(el, WSRF_RP, 'GetResourcePropertyDocument');
      empty(el, 'GetResourcePropertyDocument');
      return {};
    }),
    codec(WSRF_RP, 'GetResourcePropertyDocumentResponse', notRead, (v) =>
      wrap('wsrf-rp', WSRF_RP, 'GetResourcePropertyDocumentResponse', itemsOf(v).join('')),
    ),

    codec(WSRF_RP, 'GetResourceProperty', (el) => {
      expect(el, WSRF_RP, 'GetResourceProperty');
      if (childElements(el).length > 0) throw invalid('GetResourceProperty holds a QName, not elements');
      return { property: readQName(el, 'GetResourceProperty') };
    }),
    codec(WSRF_RP, 'GetResourcePropertyResponse', notRead, (v) =>
      wrap('wsrf-rp', WSRF_RP, 'GetResourcePropertyResponse', itemsOf(v).join('')),
    ),

    codec(WSRF_RP, 'GetMultipleResourceProperties', (el) => {
      expect(el, WSRF_RP, 'GetMultipleResourceProperties');
      const kids = elementsOnly(el, 'GetMultipleResourceProperties');
      if (kids.length === 0)
        throw invalid('GetMultipleResourceProperties: name at least one ResourceProperty');
      if (kids.length > MAX_PROPERTIES_PER_CALL) {
        throw invalid(
          `GetMultipleResourceProperties: at most ${MAX_PROPERTIES_PER_CALL} ResourceProperty elements`,
        );
      }
      const properties: string[] = [];
      for (const k of kids) {
        if (k.uri !== WSRF_RP || k.local !== 'ResourceProperty') {
          throw invalid(`GetMultipleResourceProperties: unexpected element {${k.uri}}${k.local}`);
        }
        if (childElements(k).length > 0) throw invalid('ResourceProperty holds a QName, not elements');
        properties.push(readQName(k, 'ResourceProperty'));
      }
      return { properties };
    }),
    codec(WSRF_RP, 'GetMultipleResourcePropertiesResponse', notRead, (v) =>
      wrap('wsrf-rp', WSRF_RP, 'GetMultipleResourcePropertiesResponse', itemsOf(v).join('')),
    ),

    codec(WSRF_RP, 'QueryResourceProperties', (el) => {
      expect(el, WSRF_RP, 'QueryResourceProperties');
      const kids = elementsOnly(el, 'QueryResourceProperties');
      const q = kids[0];
      if (kids.length !== 1 || !q || q.uri !== WSRF_RP || q.local !== 'QueryExpression') {
        throw invalid('QueryResourceProperties must hold exactly one QueryExpression');
      }
      const dialect = q.attrs.find((a) => a.local === 'Dialect' && a.uri === '')?.value;
      if (dialect === undefined) throw invalid('QueryExpression needs a Dialect attribute');
      if (childElements(q).length > 0) {
        // Only a dialect with element content would take these; ours is a text expression.
        return { dialect, expression: '', elementContent: true, namespaces: {} };
      }
      return { dialect, expression: textOf(q), elementContent: false, namespaces: inScopeNamespaces(q) };
    }),
    codec(WSRF_RP, 'QueryResourcePropertiesResponse', notRead, (v) => {
      const text = (v as { text?: unknown } | null)?.text;
      return wrap(
        'wsrf-rp',
        WSRF_RP,
        'QueryResourcePropertiesResponse',
        typeof text === 'string' ? escapeText(text) : itemsOf(v).join(''),
      );
    }),

    codec(WSRF_RL, 'Destroy', (el) => {
      expect(el, WSRF_RL, 'Destroy');
      empty(el, 'Destroy');
      return {};
    }),
    codec(WSRF_RL, 'DestroyResponse', notRead, () => wrap('wsrf-rl', WSRF_RL, 'DestroyResponse', '')),

    codec(WSRF_RL, 'SetTerminationTime', (el): DecodedFields => {
      expect(el, WSRF_RL, 'SetTerminationTime');
      const kids = elementsOnly(el, 'SetTerminationTime');
      const k = kids[0];
      if (kids.length !== 1 || !k || k.uri !== WSRF_RL) {
        throw invalid(
          'SetTerminationTime must hold one RequestedTerminationTime or RequestedLifetimeDuration',
        );
      }
      if (childElements(k).length > 0) throw invalid(`${k.local} holds a value, not elements`);
      if (k.local === 'RequestedTerminationTime') {
        const nil = k.attrs.find((a) => a.local === 'nil' && a.uri === XSI)?.value.trim();
        if (nil === 'true' || nil === '1') {
          if (textOf(k).trim() !== '') throw invalid('a nil RequestedTerminationTime must be empty');
          return { kind: 'infinite' };
        }
        return { kind: 'time', text: textOf(k) };
      }
      if (k.local === 'RequestedLifetimeDuration') return { kind: 'duration', text: textOf(k) };
      throw invalid(`SetTerminationTime: unexpected element ${k.local}`);
    }),
    codec(WSRF_RL, 'SetTerminationTimeResponse', notRead, (v) => {
      const r = v as { newTerminationTime?: string | null; currentTime?: string };
      const next =
        typeof r.newTerminationTime === 'string'
          ? `<wsrf-rl:NewTerminationTime>${r.newTerminationTime}</wsrf-rl:NewTerminationTime>`
          : `<wsrf-rl:NewTerminationTime xmlns:xsi="${XSI}" xsi:nil="true"/>`;
      return wrap(
        'wsrf-rl',
        WSRF_RL,
        'SetTerminationTimeResponse',
        `${next}<wsrf-rl:CurrentTime>${r.currentTime ?? new Date().toISOString()}</wsrf-rl:CurrentTime>`,
      );
    }),
  ]);
}
