/**
 * Hardened XML reading into a small element tree (the scanner is in xml-scanner.ts). It
 * refuses DOCTYPE (so no entity expansion or external references can exist), processing
 * instructions and comments, and enforces size/shape limits while parsing so that hostile
 * input is stopped before it costs memory.
 */
import { scanXml } from './xml-scanner';
import { DEFAULT_XML_LIMITS, type XmlElement, type XmlLimits } from './xml-tree';

export type { XmlAttr, XmlElement, XmlLimits, XmlNode } from './xml-tree';
export { DEFAULT_XML_LIMITS } from './xml-tree';
import { XmlRejected } from './xml-scanner';
export { XmlRejected };

export interface ParseOptions {
  /** Trusted local files (our own WSDL and XSDs) may carry comments. */
  allowComments?: boolean;
}

// Fatal: XML 1.0 makes malformed encoding a fatal error, and a firewall in front of us must never
// see other characters than we do (Buffer#toString would quietly substitute U+FFFD). The BOM is
// kept in the text; the scanner skips it.
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes a request body that must be UTF-8; anything else is refused as malformed. */
export function decodeUtf8(bytes: Uint8Array): string {
  if (
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
  ) {
    throw new XmlRejected(
      'malformed',
      'the body is UTF-16 (it starts with a UTF-16 byte order mark); send UTF-8',
    );
  }
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    throw new XmlRejected('malformed', `the body is not well-formed UTF-8 (at byte ${firstBadByte(bytes)})`);
  }
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence. */
function firstBadByte(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    // Continuation bytes after the lead byte, and the smallest code point that needs them.
    const [n, min] =
      c < 0x80
        ? [0, 0]
        : c >= 0xc2 && c <= 0xdf
          ? [1, 0x80]
          : c >= 0xe0 && c <= 0xef
            ? [2, 0x800]
            : [3, 0x10000];
    if (c >= 0x80 && (c < 0xc2 || c > 0xf4)) return i;
    let cp = n === 0 ? c : c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return i;
}

/** Parses request bytes: strict UTF-8, then the strict scanner. */
export function parseXmlBytes(bytes: Uint8Array, limits: XmlLimits = DEFAULT_XML_LIMITS): XmlElement {
  return parseXml(decodeUtf8(bytes), limits);
}

export function parseXml(
  text: string,
  limits: XmlLimits = DEFAULT_XML_LIMITS,
  opts: ParseOptions = {},
): XmlElement {
  return scanXml(text, limits, { allowComments: !!opts.allowComments });
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
