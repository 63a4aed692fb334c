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

export interface OperationInfo {
  name: string;
  portType: string;
  soapAction: string;
  request: ElementCodec;
  response: ElementCodec;
  faults: string[];
}

export interface Contract {
  wsdlPath: string;
  /** schemaLocation (as written in the WSDL) → absolute path, for ?xsd= serving. */
  schemaFiles: Map<string, string>;
  schema: Schema;
  /** Keyed by `{namespace}localName` of the request element. */
  operations: Map<string, OperationInfo>;
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

export function loadContract(wsdlPath: string): Contract {
  const root = parseXml(readFileSync(wsdlPath, 'utf8'), undefined, { allowComments: true });
  if (root.uri !== WSDL_NS || root.local !== 'definitions')
    throw new Error(`${wsdlPath} is not a WSDL 1.1 file`);

  const schemaFiles = new Map<string, string>();
  let schema: Schema | null = null;
  for (const types of kids(root, WSDL_NS, 'types')) {
    for (const xsd of childElements(types)) {
      for (const imp of childElements(xsd).filter((c) => c.local === 'import')) {
        const loc = attr(imp, 'schemaLocation');
        if (!loc) continue;
        const abs = resolve(dirname(wsdlPath), loc);
        schemaFiles.set(loc, abs);
        if (schema) throw new Error('the contract loader supports one imported schema');
        schema = Schema.fromFile(abs);
      }
    }
  }
  if (!schema) throw new Error(`${wsdlPath} imports no schema`);

  // message name → element local name
  const messages = new Map<string, string>();
  for (const m of kids(root, WSDL_NS, 'message')) {
    const part = kids(m, WSDL_NS, 'part')[0];
    const element = part && attr(part, 'element');
    if (element) {
      const uri = lookupPrefix(part, element.includes(':') ? element.split(':')[0]! : '');
      if (uri !== schema.targetNamespace)
        throw new Error(`message ${attr(m, 'name')} uses a foreign element`);
      messages.set(attr(m, 'name')!, localOf(element));
    }
  }

  // soapAction per operation, from the bindings; both SOAP versions must agree
  const actions = new Map<string, string>();
  for (const b of kids(root, WSDL_NS, 'binding')) {
    for (const op of kids(b, WSDL_NS, 'operation')) {
      const soapOp = childElements(op).find(
        (c) => c.local === 'operation' && (c.uri === WSDL_SOAP11_NS || c.uri === WSDL_SOAP12_NS),
      );
      const action = (soapOp && attr(soapOp, 'soapAction')) ?? '';
      const name = attr(op, 'name')!;
      const prev = actions.get(name);
      if (prev !== undefined && prev !== action)
        throw new Error(`bindings disagree on the action of ${name}`);
      actions.set(name, action);
    }
  }

  const operations = new Map<string, OperationInfo>();
  const byName = new Map<string, OperationInfo>();
  for (const pt of kids(root, WSDL_NS, 'portType')) {
    const portType = attr(pt, 'name')!;
    for (const op of kids(pt, WSDL_NS, 'operation')) {
      const name = attr(op, 'name')!;
      const msgOf = (local: string): string => {
        const el = kids(op, WSDL_NS, local)[0];
        const elementName = el && messages.get(localOf(attr(el, 'message') ?? ''));
        if (!elementName) throw new Error(`operation ${name} has no ${local} message`);
        return elementName;
      };
      const info: OperationInfo = {
        name,
        portType,
        soapAction: actions.get(name) ?? '',
        request: schema.codec(msgOf('input')),
        response: schema.codec(msgOf('output')),
        faults: kids(op, WSDL_NS, 'fault').map((f) => messages.get(localOf(attr(f, 'message') ?? '')) ?? ''),
      };
      if (byName.has(name)) throw new Error(`operation ${name} is declared twice`);
      operations.set(`{${schema.targetNamespace}}${info.request.name}`, info);
      byName.set(name, info);
    }
  }
  return { wsdlPath, schemaFiles, schema, operations, byName };
}

export function defaultWsdlPath(root: string): string {
  return join(root, 'wsdl', 'symphony.wsdl');
}
