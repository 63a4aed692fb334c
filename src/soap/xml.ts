/**
 * Hardened XML reading: a strict, namespace-aware saxes parse into a small element tree.
 * It refuses DOCTYPE (so no entity expansion or external references can exist), processing
 * instructions and comments, and enforces size/shape limits while parsing so that hostile
 * input is stopped before it costs memory.
 */
import { SaxesParser } from 'saxes';

export interface XmlLimits {
  maxDepth: number;
  maxAttributes: number;
  maxNameLength: number;
  maxElements: number;
}

export const DEFAULT_XML_LIMITS: XmlLimits = {
  maxDepth: 64,
  maxAttributes: 64,
  maxNameLength: 256,
  maxElements: 200_000,
};

export interface XmlAttr {
  uri: string;
  local: string;
  prefix: string;
  value: string;
}

export interface XmlElement {
  uri: string;
  local: string;
  prefix: string;
  attrs: XmlAttr[];
  /** Namespace declarations made on this element, prefix ('' for default) → uri. */
  nsDecls: Record<string, string> | null;
  children: XmlNode[];
  parent: XmlElement | null;
}

export type XmlNode = XmlElement | string;

/** Why a document was refused; `kind` lets the caller pick the fault. */
export class XmlRejected extends Error {
  constructor(
    readonly kind: 'malformed' | 'forbidden' | 'limit',
    message: string,
  ) {
    super(message);
    this.name = 'XmlRejected';
  }
}

export interface ParseOptions {
  /** Trusted local files (our own WSDL and XSDs) may carry comments. */
  allowComments?: boolean;
}

interface ParseState {
  limits: XmlLimits;
  root: XmlElement | null;
  current: XmlElement | null;
  depth: number;
  elements: number;
  attrsOnTag: number;
}

/**
 * Building a saxes parser and its handlers cost about 5% of a request, so one parser per
 * option set is kept and reused; saxes resets itself after close(). A parser that threw is
 * dropped, since its internal state is then unknown. Parsing is synchronous, so no two
 * documents ever share a parser at once.
 */
const reusable = new Map<
  boolean,
  { parser: SaxesParser<{ xmlns: true; position: false }>; st: ParseState }
>();

function createParser(allowComments: boolean): {
  parser: SaxesParser<{ xmlns: true; position: false }>;
  st: ParseState;
} {
  const parser = new SaxesParser({ xmlns: true, position: false });
  const st: ParseState = {
    limits: DEFAULT_XML_LIMITS,
    root: null,
    current: null,
    depth: 0,
    elements: 0,
    attrsOnTag: 0,
  };
  parser.on('doctype', () => {
    throw new XmlRejected('forbidden', 'DOCTYPE is not allowed');
  });
  parser.on('processinginstruction', () => {
    throw new XmlRejected('forbidden', 'processing instructions are not allowed');
  });
  if (!allowComments) {
    parser.on('comment', () => {
      throw new XmlRejected('forbidden', 'comments are not allowed');
    });
  }
  parser.on('xmldecl', (decl) => {
    if (decl.encoding && decl.encoding.toLowerCase() !== 'utf-8') {
      throw new XmlRejected('malformed', `encoding ${decl.encoding} is not supported; send UTF-8`);
    }
  });
  parser.on('opentagstart', (tag) => {
    st.attrsOnTag = 0;
    if (++st.elements > st.limits.maxElements) {
      throw new XmlRejected('limit', `more than ${st.limits.maxElements} elements`);
    }
    if (++st.depth > st.limits.maxDepth)
      throw new XmlRejected('limit', `nesting deeper than ${st.limits.maxDepth}`);
    if (tag.name.length > st.limits.maxNameLength) {
      throw new XmlRejected('limit', `a name is longer than ${st.limits.maxNameLength} characters`);
    }
  });
  parser.on('attribute', (attr) => {
    if (++st.attrsOnTag > st.limits.maxAttributes) {
      throw new XmlRejected('limit', `more than ${st.limits.maxAttributes} attributes on one element`);
    }
    if (attr.name.length > st.limits.maxNameLength) {
      throw new XmlRejected('limit', `a name is longer than ${st.limits.maxNameLength} characters`);
    }
  });
  parser.on('opentag', (tag) => {
    const attrs: XmlAttr[] = [];
    let nsDecls: Record<string, string> | null = null;
    for (const key in tag.attributes) {
      const a = tag.attributes[key]!;
      if (a.prefix === 'xmlns' || (a.prefix === '' && a.local === 'xmlns')) {
        nsDecls ??= {};
        nsDecls[a.prefix === 'xmlns' ? a.local : ''] = a.value;
      } else {
        attrs.push({ uri: a.uri, local: a.local, prefix: a.prefix, value: a.value });
      }
    }
    const el: XmlElement = {
      uri: tag.uri,
      local: tag.local,
      prefix: tag.prefix,
      attrs,
      nsDecls,
      children: [],
      parent: st.current,
    };
    if (st.current) st.current.children.push(el);
    else st.root = el;
    st.current = el;
  });
  parser.on('closetag', () => {
    st.depth--;
    st.current = st.current ? st.current.parent : null;
  });
  const onText = (t: string): void => {
    if (st.current) st.current.children.push(t);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  return { parser, st };
}

export function parseXml(
  text: string,
  limits: XmlLimits = DEFAULT_XML_LIMITS,
  opts: ParseOptions = {},
): XmlElement {
  const key = !!opts.allowComments;
  let entry = reusable.get(key);
  if (!entry) {
    entry = createParser(key);
    reusable.set(key, entry);
  }
  const { parser, st } = entry;
  st.limits = limits;
  st.root = null;
  st.current = null;
  st.depth = 0;
  st.elements = 0;
  try {
    parser.write(text).close();
  } catch (err) {
    reusable.delete(key);
    if (err instanceof XmlRejected) throw err;
    throw new XmlRejected('malformed', `not well-formed XML: ${(err as Error).message}`);
  }
  const root = st.root as XmlElement | null;
  st.root = null;
  st.current = null;
  if (!root) throw new XmlRejected('malformed', 'no root element');
  return root;
}

export function childElements(el: XmlElement): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of el.children) if (typeof c !== 'string') out.push(c);
  return out;
}

/** Concatenated text content of an element that must hold text only. */
export function textOf(el: XmlElement): string {
  if (el.children.length === 1 && typeof el.children[0] === 'string') return el.children[0];
  let s = '';
  for (const c of el.children) if (typeof c === 'string') s += c;
  return s;
}

export function escapeText(s: string): string {
  return /[&<>\r]/.test(s)
    ? s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;')
    : s;
}

export function escapeAttr(s: string): string {
  return /[&<>"\r\n\t]/.test(s)
    ? s
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/"/g, '&quot;')
        .replace(/\r/g, '&#13;')
        .replace(/\n/g, '&#10;')
        .replace(/\t/g, '&#9;')
    : s;
}

export function lookupPrefix(el: XmlElement | null, prefix: string): string | undefined {
  for (let e = el; e; e = e.parent) {
    const uri = e.nsDecls?.[prefix];
    if (uri !== undefined) return uri;
  }
  return undefined;
}

/**
 * Serializes an element so that it stands alone: the namespace prefixes it uses but inherits
 * from its ancestors are declared on it, so a payload cut out of an envelope keeps its meaning.
 */
export function serializeStandalone(el: XmlElement): string {
  const inherited: Record<string, string> = {};
  const declaredInside = (node: XmlElement, prefix: string): boolean => {
    for (let e: XmlElement | null = node; e && e !== el.parent; e = e.parent) {
      if (e.nsDecls && prefix in e.nsDecls) return true;
    }
    return false;
  };
  const collect = (node: XmlElement): void => {
    const use = (prefix: string): void => {
      if (prefix === 'xml' || prefix in inherited || declaredInside(node, prefix)) return;
      const uri = lookupPrefix(el.parent, prefix);
      if (uri !== undefined) inherited[prefix] = uri;
    };
    use(node.prefix);
    for (const a of node.attrs) if (a.prefix) use(a.prefix);
    for (const c of node.children) if (typeof c !== 'string') collect(c);
  };
  collect(el);
  return write(el, inherited);
}

function write(el: XmlElement, extraNs: Record<string, string> | null): string {
  const name = el.prefix ? `${el.prefix}:${el.local}` : el.local;
  let s = '<' + name;
  const decls = extraNs ? { ...extraNs, ...(el.nsDecls ?? {}) } : el.nsDecls;
  if (decls) {
    for (const p in decls) s += (p ? ` xmlns:${p}="` : ' xmlns="') + escapeAttr(decls[p]!) + '"';
  }
  for (const a of el.attrs) s += ` ${a.prefix ? a.prefix + ':' : ''}${a.local}="${escapeAttr(a.value)}"`;
  if (el.children.length === 0) return s + '/>';
  s += '>';
  for (const c of el.children) s += typeof c === 'string' ? escapeText(c) : write(c, null);
  return s + `</${name}>`;
}
