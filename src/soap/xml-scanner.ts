/**
 * A strict, namespace-aware XML 1.0 reader for exactly what SOAP needs, several times faster
 * than a general SAX parser because it scans with indexOf and sticky regular expressions
 * instead of one character at a time. Speed matters here: every signed request is parsed
 * before anything else, and the parse was most of the cost of verifying one.
 *
 * Strictness is the point of a security gate, so it refuses rather than recovers: no DOCTYPE
 * (so no entities beyond the five predefined ones and no external references), no processing
 * instructions, comments only when the caller allows them, characters outside the XML Char
 * production, undeclared prefixes, duplicate attributes, mismatched or missing end tags, and
 * anything but whitespace outside the document element. Tests compare it with saxes and
 * libxml2 on a corpus and on mutated documents.
 */
import type { XmlAttr, XmlElement, XmlLimits, XmlNode } from './xml-tree';

export class XmlRejected extends Error {
  constructor(
    readonly kind: 'malformed' | 'forbidden' | 'limit',
    message: string,
  ) {
    super(message);
    this.name = 'XmlRejected';
  }
}

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

// XML 1.0 (5th ed.) NameStartChar / NameChar, astral planes included.
const NAME_START =
  ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const NAME_CHAR = NAME_START + '\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040';
// eslint-disable-next-line no-misleading-character-class -- ranges of combining marks, as XML defines them
const NAME = new RegExp(`[${NAME_START}][${NAME_CHAR}]*`, 'uy');
/** The first character of an NCName: a NameStartChar other than ':' (Namespaces in XML 1.0). */
const NCNAME_START = new RegExp(`^[${NAME_START.slice(1)}]`, 'u');
const SPACE = /[ \t\n]*/y;
/** Characters XML 1.0 forbids anywhere, including unpaired surrogates. */
const BAD_CHAR =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const XML_DECL =
  /<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(?:"1\.[0-9]+"|'1\.[0-9]+')(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(?:"([A-Za-z][A-Za-z0-9._-]*)"|'([A-Za-z][A-Za-z0-9._-]*)'))?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\n]*\?>/y;
const ENTITY = /&(?:(lt|gt|amp|apos|quot)|#([0-9]+)|#x([0-9a-fA-F]+));/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

export interface ScanOptions {
  allowComments: boolean;
}

interface PendingAttr {
  qname: string;
  value: string;
}

export function scanXml(input: string, limits: XmlLimits, opts: ScanOptions): XmlElement {
  return new Scanner(input, limits, opts).document();
}

class Scanner {
  private readonly s: string;
  private pos = 0;
  private depth = 0;
  private elements = 0;

  constructor(
    input: string,
    private readonly limits: XmlLimits,
    private readonly opts: ScanOptions,
  ) {
    // XML end-of-line handling happens before parsing; character references are unaffected.
    let s = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
    if (s.includes('\r')) s = s.replace(/\r\n?/g, '\n');
    const bad = BAD_CHAR.exec(s);
    if (bad)
      this.fail(
        'malformed',
        `character U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`,
        bad.index,
      );
    this.s = s;
  }

  private fail(kind: XmlRejected['kind'], message: string, at = this.pos): never {
    throw new XmlRejected(kind, kind === 'malformed' ? `${message} (at offset ${at})` : message);
  }

  document(): XmlElement {
    const s = this.s;
    if (s.startsWith('<?xml')) {
      XML_DECL.lastIndex = 0;
      const m = XML_DECL.exec(s);
      if (!m) this.fail('malformed', 'malformed XML declaration', 0);
      const enc = m[1] ?? m[2];
      if (enc && enc.toLowerCase() !== 'utf-8') {
        this.fail('malformed', `encoding ${enc} is not supported; send UTF-8`);
      }
      this.pos = XML_DECL.lastIndex;
    }
    this.misc();
    if (s.charCodeAt(this.pos) !== 0x3c /* < */) {
      this.fail('malformed', this.pos >= s.length ? 'no root element' : 'text before the root element');
    }
    const root = this.element(null);
    this.misc();
    if (this.pos < s.length) this.fail('malformed', 'content after the root element');
    return root;
  }

  /** Whitespace, and comments where allowed, between prolog items and after the root. */
  private misc(): void {
    const s = this.s;
    for (;;) {
      SPACE.lastIndex = this.pos;
      SPACE.test(s);
      this.pos = SPACE.lastIndex;
      if (s.startsWith('<!--', this.pos)) this.comment();
      else if (s.startsWith('<?', this.pos)) this.markup();
      else if (s.startsWith('<!', this.pos)) this.markup();
      else return;
    }
  }

  /** `<!` and `<?` constructs other than CDATA and comments: all refused. */
  private markup(): never {
    const s = this.s;
    if (s.startsWith('<!DOCTYPE', this.pos)) this.fail('forbidden', 'DOCTYPE is not allowed');
    if (s.startsWith('<?', this.pos)) {
      if (/^<\?xml[ \t\n?]/i.test(s.slice(this.pos, this.pos + 6))) {
        this.fail('malformed', 'an XML declaration is only allowed at the very start');
      }
      this.fail('forbidden', 'processing instructions are not allowed');
    }
    if (
      s.startsWith('<!ENTITY', this.pos) ||
      s.startsWith('<!ELEMENT', this.pos) ||
      s.startsWith('<!ATTLIST', this.pos)
    ) {
      this.fail('forbidden', 'DTD declarations are not allowed');
    }
    this.fail('malformed', 'unexpected markup declaration');
  }

  private comment(): void {
    if (!this.opts.allowComments) this.fail('forbidden', 'comments are not allowed');
    const end = this.s.indexOf('--', this.pos + 4);
    if (end < 0) this.fail('malformed', 'unterminated comment');
    if (this.s.charCodeAt(end + 2) !== 0x3e /* > */) this.fail('malformed', "'--' inside a comment", end);
    this.pos = end + 3;
  }

  private name(): string {
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.s);
    if (!m) this.fail('malformed', 'a name was expected');
    const n = m[0];
    if (n.length > this.limits.maxNameLength) {
      this.fail('limit', `a name is longer than ${this.limits.maxNameLength} characters`);
    }
    this.pos = NAME.lastIndex;
    return n;
  }

  private space(): boolean {
    SPACE.lastIndex = this.pos;
    SPACE.test(this.s);
    const moved = SPACE.lastIndex !== this.pos;
    this.pos = SPACE.lastIndex;
    return moved;
  }

  /** Decodes entity and character references in a text or attribute span. */
  private decode(raw: string, from: number): string {
    let out = '';
    let last = 0;
    for (let i = raw.indexOf('&'); i >= 0; i = raw.indexOf('&', last)) {
      ENTITY.lastIndex = i;
      const m = ENTITY.exec(raw);
      if (!m) {
        const name = /^&([^;\s&<]{0,40})/.exec(raw.slice(i))?.[1] ?? '';
        this.fail('malformed', `undefined or malformed entity reference '&${name}'`, from + i);
      }
      out += raw.slice(last, i);
      if (m[1]) out += PREDEFINED[m[1]]!;
      else {
        const code = m[2] !== undefined ? parseInt(m[2], 10) : parseInt(m[3]!, 16);
        const ok =
          code === 0x9 ||
          code === 0xa ||
          code === 0xd ||
          (code >= 0x20 && code <= 0xd7ff) ||
          (code >= 0xe000 && code <= 0xfffd) ||
          (code >= 0x10000 && code <= 0x10ffff);
        if (!ok) this.fail('malformed', `character reference ${m[0]} is not an XML character`, from + i);
        out += String.fromCodePoint(code);
      }
      last = ENTITY.lastIndex;
    }
    return last === 0 ? raw : out + raw.slice(last);
  }

  private element(parent: XmlElement | null): XmlElement {
    const s = this.s;
    if (++this.elements > this.limits.maxElements)
      this.fail('limit', `more than ${this.limits.maxElements} elements`);
    if (++this.depth > this.limits.maxDepth)
      this.fail('limit', `nesting deeper than ${this.limits.maxDepth}`);
    this.pos++; // '<'
    const qname = this.name();
    const pending: PendingAttr[] = [];
    let nsDecls: Record<string, string> | null = null;
    let selfClosing = false;
    for (;;) {
      const spaced = this.space();
      const c = s.charCodeAt(this.pos);
      if (c === 0x3e /* > */) {
        this.pos++;
        break;
      }
      if (c === 0x2f /* / */ && s.charCodeAt(this.pos + 1) === 0x3e) {
        this.pos += 2;
        selfClosing = true;
        break;
      }
      if (!spaced)
        this.fail('malformed', this.pos >= s.length ? 'unexpected end of input in a tag' : 'malformed tag');
      if (pending.length + (nsDecls ? Object.keys(nsDecls).length : 0) >= this.limits.maxAttributes) {
        this.fail('limit', `more than ${this.limits.maxAttributes} attributes on one element`);
      }
      const an = this.name();
      this.space();
      if (s.charCodeAt(this.pos) !== 0x3d /* = */) this.fail('malformed', `attribute ${an} has no value`);
      this.pos++;
      this.space();
      const q = s.charCodeAt(this.pos);
      if (q !== 0x22 && q !== 0x27) this.fail('malformed', `the value of ${an} must be quoted`);
      const end = s.indexOf(q === 0x22 ? '"' : "'", this.pos + 1);
      if (end < 0) this.fail('malformed', 'unterminated attribute value');
      const rawStart = this.pos + 1;
      const raw = s.slice(rawStart, end);
      const lt = raw.indexOf('<');
      if (lt >= 0) this.fail('malformed', "'<' inside an attribute value", rawStart + lt);
      // Attribute-value normalization: literal whitespace becomes a space before references.
      const value = this.decode(/[\t\n]/.test(raw) ? raw.replace(/[\t\n]/g, ' ') : raw, rawStart);
      this.pos = end + 1;
      if (an === 'xmlns' || an.startsWith('xmlns:')) {
        const prefix = an === 'xmlns' ? '' : an.slice(6);
        // `xmlns:` with no prefix must not pass for a default-namespace declaration.
        if (an !== 'xmlns' && (prefix.includes(':') || !NCNAME_START.test(prefix)))
          this.fail('malformed', `'${an}' declares a prefix that is not an NCName`);
        this.checkNsDecl(prefix, value);
        nsDecls ??= {};
        if (prefix in nsDecls) this.fail('malformed', `namespace ${an} is declared twice`);
        nsDecls[prefix] = value;
      } else {
        for (const p of pending) if (p.qname === an) this.fail('malformed', `attribute ${an} appears twice`);
        pending.push({ qname: an, value });
      }
    }

    const el: XmlElement = { uri: '', local: '', prefix: '', attrs: [], nsDecls, children: [], parent };
    const colon = this.splitQName(qname);
    el.prefix = colon < 0 ? '' : qname.slice(0, colon);
    el.local = colon < 0 ? qname : qname.slice(colon + 1);
    el.uri = this.resolve(el, el.prefix, qname);
    if (pending.length) el.attrs = this.attributes(el, pending);

    if (!selfClosing) {
      this.content(el);
      // content() stops at '</'
      this.pos += 2;
      const close = this.name();
      if (close !== qname) this.fail('malformed', `end tag </${close}> does not match <${qname}>`);
      this.space();
      if (s.charCodeAt(this.pos) !== 0x3e) this.fail('malformed', `malformed end tag </${close}`);
      this.pos++;
    }
    this.depth--;
    return el;
  }

  private attributes(el: XmlElement, pending: PendingAttr[]): XmlAttr[] {
    const attrs: XmlAttr[] = [];
    for (const p of pending) {
      const colon = this.splitQName(p.qname);
      if (colon < 0) {
        attrs.push({ uri: '', local: p.qname, prefix: '', value: p.value });
        continue;
      }
      const prefix = p.qname.slice(0, colon);
      const local = p.qname.slice(colon + 1);
      const uri = this.resolve(el, prefix, p.qname);
      for (const a of attrs) {
        if (a.uri === uri && a.local === local) {
          this.fail('malformed', `attributes ${a.prefix}:${a.local} and ${p.qname} are the same attribute`);
        }
      }
      attrs.push({ uri, local, prefix, value: p.value });
    }
    return attrs;
  }

  /** Index of the single colon of a QName, or -1; anything else is not namespace-well-formed. */
  private splitQName(qname: string): number {
    const colon = qname.indexOf(':');
    if (colon < 0) return -1;
    if (
      colon === 0 ||
      colon === qname.length - 1 ||
      qname.indexOf(':', colon + 1) >= 0 ||
      !NCNAME_START.test(qname.slice(colon + 1))
    ) {
      this.fail('malformed', `'${qname}' is not a valid qualified name`);
    }
    return colon;
  }

  private checkNsDecl(prefix: string, uri: string): void {
    if (prefix === 'xmlns') this.fail('malformed', 'the xmlns prefix cannot be declared');
    if (prefix === 'xml' && uri !== XML_NS) this.fail('malformed', 'the xml prefix cannot be rebound');
    if (prefix !== 'xml' && uri === XML_NS)
      this.fail('malformed', 'the XML namespace cannot be bound to another prefix');
    if (uri === XMLNS_NS) this.fail('malformed', 'the xmlns namespace cannot be declared');
    if (prefix !== '' && uri === '') this.fail('malformed', `xmlns:${prefix}="" is not allowed in XML 1.0`);
  }

  private resolve(el: XmlElement, prefix: string, qname: string): string {
    if (prefix === 'xml') return XML_NS;
    for (let e: XmlElement | null = el; e; e = e.parent) {
      const uri = e.nsDecls?.[prefix];
      if (uri !== undefined) return uri;
    }
    if (prefix === '') return '';
    return this.fail('malformed', `the prefix of ${qname} is not declared`);
  }

  /** Children up to (not including) the matching end tag's '</'. */
  private content(el: XmlElement): void {
    const s = this.s;
    const children: XmlNode[] = el.children;
    let text = '';
    for (;;) {
      const lt = s.indexOf('<', this.pos);
      if (lt < 0)
        this.fail(
          'malformed',
          `unexpected end of input inside <${el.prefix ? el.prefix + ':' : ''}${el.local}>`,
          s.length,
        );
      if (lt > this.pos) {
        const raw = s.slice(this.pos, lt);
        const cdEnd = raw.indexOf(']]>');
        if (cdEnd >= 0) this.fail('malformed', "']]>' is not allowed in text", this.pos + cdEnd);
        text += raw.indexOf('&') >= 0 ? this.decode(raw, this.pos) : raw;
      }
      this.pos = lt;
      const next = s.charCodeAt(lt + 1);
      if (next === 0x2f /* / */) break;
      if (next === 0x21 /* ! */) {
        if (s.startsWith('<![CDATA[', lt)) {
          const end = s.indexOf(']]>', lt + 9);
          if (end < 0) this.fail('malformed', 'unterminated CDATA section');
          text += s.slice(lt + 9, end);
          this.pos = end + 3;
          continue;
        }
        if (s.startsWith('<!--', lt)) {
          this.comment();
          continue;
        }
        this.markup();
      }
      if (next === 0x3f /* ? */) this.markup();
      if (text) {
        children.push(text);
        text = '';
      }
      children.push(this.element(el));
    }
    if (text) children.push(text);
  }
}
