/**
 * Worker body for XPathEngine: parses the document, evaluates one expression, serializes the
 * result. Runs in a worker thread so that the engine can terminate a runaway evaluation.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DOMParser, XMLSerializer, type Document, type Node } from '@xmldom/xmldom';
import {
  ALLOWED_FUNCTIONS,
  XPathQueryError,
  lookupPrefix,
  xpath,
  type XNodeSetValue,
  type XPathErrorKind,
} from './xpath-limits';

export type XPathResult =
  | { kind: 'nodes'; items: { kind: 'element' | 'text'; xml: string }[] }
  | { kind: 'string' | 'number' | 'boolean'; value: string };

export interface WorkerRequest {
  id: number;
  document: string;
  expression: string;
  namespaces: Record<string, string>;
}

export type WorkerResponse =
  { id: number; result: XPathResult } | { id: number; error: { kind: XPathErrorKind; message: string } };

/** Posted once, after the modules above have loaded: the engine starts its clock only then. */
export interface WorkerReady {
  ready: true;
}

export interface WorkerOptions {
  maxResultNodes: number;
  maxResultChars: number;
}

const ELEMENT_NODE = 1;
const DOCUMENT_TYPE_NODE = 10;
const DOCUMENT_NODE = 9;

export function runQuery(req: WorkerRequest, opts: WorkerOptions): WorkerResponse {
  try {
    return { id: req.id, result: evaluate(req, opts) };
  } catch (e) {
    if (e instanceof XPathQueryError) return { id: req.id, error: { kind: e.kind, message: e.message } };
    const message =
      e instanceof RangeError && /call stack/i.test(e.message)
        ? 'the expression is too complex to evaluate'
        : `the expression could not be evaluated: ${e instanceof Error ? e.message : String(e)}`;
    return { id: req.id, error: { kind: 'evaluation', message } };
  }
}

function evaluate(req: WorkerRequest, opts: WorkerOptions): XPathResult {
  const doc = parseDocument(req.document);
  let parsed;
  try {
    parsed = xpath.parse(req.expression);
  } catch (e) {
    throw new XPathQueryError('invalid', `the expression is not valid XPath 1.0 (${String(e)})`);
  }
  // The package falls back to its defaults when a resolver answers nothing, so refusals throw.
  // WS-ResourceProperties: the context node is the resource-properties document's root element.
  const value = parsed.evaluate({
    node: doc.documentElement ?? doc,
    namespaces: (prefix) => {
      const uri = lookupPrefix(req.namespaces, prefix);
      if (uri === undefined) {
        throw new XPathQueryError('invalid', `the namespace prefix '${prefix}' is not declared`);
      }
      return uri;
    },
    functions: (localName, namespace) => {
      if (namespace !== '' || !ALLOWED_FUNCTIONS.has(localName)) {
        throw new XPathQueryError('invalid', `the function '${localName}()' is not allowed`);
      }
      return undefined;
    },
    variables: (name) => {
      throw new XPathQueryError('invalid', `variable references ($${name}) are not supported`);
    },
  });
  if (value instanceof xpath.XNodeSet) return nodeSetResult(value as XNodeSetValue, opts);
  let result: XPathResult;
  if (value instanceof xpath.XNumber) {
    result = { kind: 'number', value: formatXPathNumber(value.numberValue()) };
  } else if (value instanceof xpath.XBoolean) {
    result = { kind: 'boolean', value: value.booleanValue() ? 'true' : 'false' };
  } else {
    result = { kind: 'string', value: value.stringValue() };
  }
  if (result.value.length > opts.maxResultChars) throw tooLarge(`${result.value.length} characters`, opts);
  return result;
}

function parseDocument(text: string): Document {
  let doc: Document;
  try {
    const parser = new DOMParser({
      onError: (level, message) => {
        if (level !== 'warning') throw new Error(message);
      },
    });
    doc = parser.parseFromString(text, 'text/xml');
  } catch (e) {
    throw new XPathQueryError(
      'evaluation',
      `the resource properties document is not well-formed: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  for (let n = doc.firstChild; n !== null; n = n.nextSibling) {
    if (n.nodeType === DOCUMENT_TYPE_NODE) {
      throw new XPathQueryError(
        'evaluation',
        'the resource properties document has a DOCTYPE; it is refused',
      );
    }
  }
  return doc;
}

function nodeSetResult(set: XNodeSetValue, opts: WorkerOptions): XPathResult {
  const nodes = set.toArray() as Node[];
  if (nodes.length > opts.maxResultNodes) throw tooLarge(`${nodes.length} nodes`, opts);
  const serializer = new XMLSerializer();
  const items: { kind: 'element' | 'text'; xml: string }[] = [];
  let chars = 0;
  for (const node of nodes) {
    // WS-RP practice: elements as XML; attributes, text and the rest as their string value.
    let item: { kind: 'element' | 'text'; xml: string };
    if (node.nodeType === ELEMENT_NODE) {
      item = { kind: 'element', xml: serializer.serializeToString(node) };
    } else if (node.nodeType === DOCUMENT_NODE) {
      const root = (node as Document).documentElement;
      item = { kind: 'element', xml: root === null ? '' : serializer.serializeToString(root) };
    } else {
      item = { kind: 'text', xml: node.nodeValue ?? '' };
    }
    chars += item.xml.length;
    if (chars > opts.maxResultChars) throw tooLarge(`more than ${opts.maxResultChars} characters`, opts);
    items.push(item);
  }
  return { kind: 'nodes', items };
}

function tooLarge(what: string, opts: WorkerOptions): XPathQueryError {
  return new XPathQueryError(
    'evaluation',
    `the result is too large (${what}); at most ${opts.maxResultNodes} nodes and ${opts.maxResultChars} characters are returned: select fewer or smaller nodes`,
  );
}

/**
 * XPath 1.0 string() of a number. The package's own formatting breaks on small negative
 * numbers ("0.000000-1" for -1e-7), so the top-level result is formatted here.
 */
export function formatXPathNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0) return '0';
  const sign = n < 0 ? '-' : '';
  const text = String(Math.abs(n));
  const e = text.indexOf('e');
  if (e < 0) return sign + text;
  const exponent = Number(text.slice(e + 1));
  const [intPart, fraction = ''] = text.slice(0, e).split('.');
  const digits = intPart + fraction;
  const point = intPart.length + exponent;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const opts = workerData as WorkerOptions;
  // Compile the hot paths before the engine starts timing: a cold first query costs ~5 ms more.
  runQuery(
    {
      id: 0,
      document: '<w:a xmlns:w="urn:warm-up" n="1"><w:b>2</w:b>text</w:a>',
      expression: '/w:a/w:b | /w:a/@n | /w:a/text()[count(../w:b) > 0 and string-length(.) = 4]',
      namespaces: { w: 'urn:warm-up' },
    },
    opts,
  );
  port.on('message', (req: WorkerRequest) => port.postMessage(runQuery(req, opts)));
  port.postMessage({ ready: true } satisfies WorkerReady);
}
