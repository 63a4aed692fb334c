/**
 * Reads the WSDL contract: which operations exist, which port type each belongs to, the
 * request/response elements and the SOAPAction each binding declares. Dispatch is driven
 * from this table, so the WSDL file stays the single source of truth.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Schema, type ElementCodec } from './schema';
import { childElements, lookupPrefix, parseXml, type XmlElement } from './xml';

export const WSDL_NS = 'http://schemas.xmlsoap.org/wsdl/';
export const WSDL_SOAP11_NS = 'http://schemas.xmlsoap.org/wsdl/soap/';
export const WSDL_SOAP12_NS = 'http://schemas.xmlsoap.org/wsdl/soap12/';
const WSAM_NS = 'http://www.w3.org/2007/05/addressing/metadata';
/** The namespace of our own message types (schemas/symphony.xsd). */
const SYM_TYPES_NS = 'http://soapproxy.symphony/v1';

export interface OperationInfo {
  name: string;
  /** The first port type that declares the operation. */
  portType: string;
  /**
   * Every port type that declares it: a WSRF operation (Destroy, …) has one request element for
   * sessions and connections, and the resource's address tells which one is meant.
   */
  portTypes: string[];
  soapAction: string;
  /** The reply's WS-Addressing Action: the output's wsam:Action, else WS-Addressing's default. */
  responseAction: string;
  request: ElementCodec;
  response: ElementCodec;
  faults: string[];
}

export interface Contract {
  wsdlPath: string;
  /** schemaLocation (as written in the WSDL) → absolute path, for ?xsd= serving. */
  schemaFiles: Map<string, string>;
  /** Namespace of each schema the WSDL imports. */
  schemaNamespaces: Map<string, string>;
  schema: Schema;
  /** Keyed by `{namespace}localName` of the request element. */
  operations: Map<string, OperationInfo>;
  /** The first operation of each name (an operation of several port types may have several). */
  byName: Map<string, OperationInfo>;
}

function attr(el: XmlElement, name: string): string | undefined {
  for (const a of el.attrs) if (a.local === name && a.uri === '') return a.value;
  return undefined;
}

function localOf(qname: string): string {
  const i = qname.indexOf(':');
  return i < 0 ? qname : qname.slice(i + 1);
}

function kids(el: XmlElement, ns: string, local: string): XmlElement[] {
  return childElements(el).filter((c) => c.uri === ns && c.local === local);
}

/**
 * Codecs for request and response elements of standard namespaces (WSRF, WS-Enumeration), keyed
 * by `{namespace}localName`: their schemas are served to clients as they are, and decoded by hand.
 */
export type ForeignCodecs = ReadonlyMap<string, ElementCodec>;

/** The codec of a message without parts: an empty Body (WS-Enumeration 2004/09's ReleaseResponse). */
const EMPTY_BODY: ElementCodec = {
  name: '',
  ns: '',
  decode: () => ({}),
  encode: () => '',
};

export function loadContract(wsdlPath: string, foreign: ForeignCodecs = new Map()): Contract {
  const root = parseXml(readFileSync(wsdlPath, 'utf8'), undefined, { allowComments: true });
  if (root.uri !== WSDL_NS || root.local !== 'definitions')
    throw new Error(`${wsdlPath} is not a WSDL 1.1 file`);

  const schemaFiles = new Map<string, string>();
  const schemaNamespaces = new Map<string, string>();
  let schema: Schema | null = null;
  for (const types of kids(root, WSDL_NS, 'types')) {
    for (const xsd of childElements(types)) {
      for (const imp of childElements(xsd).filter((c) => c.local === 'import')) {
        const loc = attr(imp, 'schemaLocation');
        if (!loc) continue;
        const abs = resolve(dirname(wsdlPath), loc);
        schemaFiles.set(loc, abs);
        schemaNamespaces.set(loc, attr(imp, 'namespace') ?? '');
      }
    }
  }
  // Our own message types come from the one imported schema whose namespace is ours; the others
  // are standards, served to clients, with hand-written codecs.
  for (const [loc, abs] of schemaFiles) {
    if (schemaNamespaces.get(loc) !== SYM_TYPES_NS) continue;
    if (schema) throw new Error(`the WSDL imports ${SYM_TYPES_NS} twice`);
    schema = Schema.fromFile(abs);
  }
  if (!schema) throw new Error(`${wsdlPath} imports no schema of ${SYM_TYPES_NS}`);
  const own = schema;

  // message name → element QName; a message without parts is an empty Body (the ns is '')
  const messages = new Map<string, { ns: string; local: string }>();
  for (const m of kids(root, WSDL_NS, 'message')) {
    const part = kids(m, WSDL_NS, 'part')[0];
    const element = part && attr(part, 'element');
    if (element) {
      const ns = lookupPrefix(part, element.includes(':') ? element.split(':')[0]! : '') ?? '';
      messages.set(attr(m, 'name')!, { ns, local: localOf(element) });
    } else if (!part) {
      messages.set(attr(m, 'name')!, { ns: '', local: '' });
    }
  }
  const codecOf = (el: { ns: string; local: string }, where: string): ElementCodec => {
    if (el.ns === '' && el.local === '') return EMPTY_BODY;
    if (el.ns === own.targetNamespace) return own.codec(el.local);
    const c = foreign.get(`{${el.ns}}${el.local}`);
    if (!c) throw new Error(`${where} uses {${el.ns}}${el.local}, which has no codec`);
    return c;
  };

  // soapAction per port type and operation, from the bindings; both SOAP versions must agree
  const actions = new Map<string, string>();
  for (const b of kids(root, WSDL_NS, 'binding')) {
    const portType = localOf(attr(b, 'type') ?? '');
    for (const op of kids(b, WSDL_NS, 'operation')) {
      const soapOp = childElements(op).find(
        (c) => c.local === 'operation' && (c.uri === WSDL_SOAP11_NS || c.uri === WSDL_SOAP12_NS),
      );
      const action = (soapOp && attr(soapOp, 'soapAction')) ?? '';
      const key = `${portType}/${attr(op, 'name')!}`;
      const prev = actions.get(key);
      if (prev !== undefined && prev !== action) throw new Error(`bindings disagree on the action of ${key}`);
      actions.set(key, action);
    }
  }

  const operations = new Map<string, OperationInfo>();
  const byName = new Map<string, OperationInfo>();
  for (const pt of kids(root, WSDL_NS, 'portType')) {
    const portType = attr(pt, 'name')!;
    for (const op of kids(pt, WSDL_NS, 'operation')) {
      const name = attr(op, 'name')!;
      const msgOf = (local: string): { ns: string; local: string } => {
        const el = kids(op, WSDL_NS, local)[0];
        const element = el && messages.get(localOf(attr(el, 'message') ?? ''));
        if (!element) throw new Error(`operation ${name} has no ${local} message`);
        return element;
      };
      const input = msgOf('input');
      const output = msgOf('output');
      const out = kids(op, WSDL_NS, 'output')[0]!;
      const wsam = out.attrs.find((a) => a.local === 'Action' && a.uri === WSAM_NS)?.value;
      const tns = attr(root, 'targetNamespace') ?? '';
      const responseAction = wsam ?? `${tns}/${portType}/${attr(out, 'name') ?? `${name}Response`}`;
      const key = `{${input.ns}}${input.local}`;
      const shared = operations.get(key);
      if (shared) {
        // The same operation in a second port type: it must be the very same message exchange.
        if (shared.name !== name || shared.response.name !== output.local) {
          throw new Error(`two operations take ${key}`);
        }
        shared.portTypes.push(portType);
        continue;
      }
      // Two port types may also each have an operation of one name with their own messages
      // (WS-Enumeration's Enumerate in its two namespaces): one table row serves both.
      const info: OperationInfo = {
        name,
        portType,
        portTypes: [portType],
        soapAction: actions.get(`${portType}/${name}`) ?? '',
        responseAction,
        request: codecOf(input, `operation ${name}`),
        response: codecOf(output, `operation ${name}`),
        faults: kids(op, WSDL_NS, 'fault').map(
          (f) => messages.get(localOf(attr(f, 'message') ?? ''))?.local ?? '',
        ),
      };
      operations.set(key, info);
      if (!byName.has(name)) byName.set(name, info);
    }
  }
  return { wsdlPath, schemaFiles, schemaNamespaces, schema, operations, byName };
}

export function defaultWsdlPath(root: string): string {
  return join(root, 'wsdl', 'symphony.wsdl');
}
