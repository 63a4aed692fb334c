/**
 * fast-check generators for the fuzz targets.
 *
 * Documents are built from a small XML grammar (elements, namespace declarations and prefix
 * redeclarations, attributes, text with entity and character references, CDATA, comments, PIs,
 * whitespace) and rendered namespace-well-formed, then optionally mangled: structural snippets
 * (DOCTYPE/ENTITY, duplicate attributes, unbound prefixes, deep nesting, XML declarations with
 * other encodings) and byte-level edits (insert, delete, flip, overwrite with invalid UTF-8,
 * duplicate a slice). Positions are fractions of the length, so a mutation stays meaningful while
 * fast-check shrinks the document under it.
 *
 * Signed envelopes (made by test/helpers/wss-client.ts, an implementation independent of the
 * proxy) are attacked by wrapping: the signed Body moved or duplicated, ids repeated on other
 * elements, extra Security headers, comments and whitespace inside signed content, and so on.
 */
import fc from 'fast-check';
import {
  NS,
  childElementsNS,
  importFragment,
  serializeXmlDoc,
  signedParts,
  type SignedParts,
} from '../helpers/wss-client';
import { showBytes } from './runner';

export const SOAP11 = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';
export const SYM = 'http://soapproxy.symphony/v1';

// ---------------------------------------------------------------------------------------------
// The grammar.

export type GNode =
  | { k: 'el'; el: GElement }
  | { k: 'text'; parts: string[] }
  | { k: 'cdata'; text: string }
  | { k: 'comment'; text: string }
  | { k: 'pi'; target: string; data: string };

export interface GElement {
  prefix: string;
  local: string;
  /** [prefix, uri]; '' is the default namespace. */
  decls: [string, string][];
  attrs: { prefix: string; local: string; value: string[] }[];
  children: GNode[];
  /** Whitespace inside the start tag, before '>' (and inside the end tag). */
  pad: string;
  quote: '"' | "'";
}

const PREFIXES = ['', '', 's', 'wsu', 'm', 'p', 'q', 'é', 'x.1'];
const URIS = [
  SOAP11,
  SOAP12,
  NS.wsu,
  NS.wsse,
  NS.ds,
  SYM,
  'urn:a',
  'urn:b',
  'http://example.com/x?y=1&z=2',
  'urn:é',
];
/** Rarely: a namespace name that is not a URI (libxml2 refuses it; finding F1 of scanner.test.ts). */
const ODD_URIS = ['urn:%20sp ace', 'rel/ative'];
const LOCALS = ['Envelope', 'Header', 'Body', 'op', 'v', 'a', 'b', 'Id', 'n', 'ünï', 'x-y.z', '_u', 'Δ'];
const ATTR_LOCALS = ['Id', 'id', 'a', 'b', 'k', 'ünï', 'mustUnderstand'];

/** Characters of text and attribute values: markup-significant, whitespace, non-ASCII, astral. */
const TEXT_CHARS = [
  'a',
  'Z',
  '0',
  ' ',
  '\t',
  '\n',
  '\r',
  '\r\n',
  '>',
  ']',
  ']]',
  '"',
  "'",
  '=',
  'é',
  '€',
  '漢',
  '😀',
  '\u00a0',
  '\u2028',
  '\u0085',
  '\ufeff',
];
/** Code points for character references, the invalid ones included. */
const CHAR_REFS = [
  0x9, 0xa, 0xd, 0x20, 0x26, 0x3c, 0x41, 0x7f, 0x85, 0xa0, 0x2028, 0xfeff, 0xfffd, 0x1f600, 0x10ffff,
];
const BAD_CHAR_REFS = [0x0, 0x1, 0xb, 0xd800, 0xdfff, 0xfffe, 0xffff, 0x110000];

const textPart = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.constantFrom(...TEXT_CHARS), { maxLength: 6 }).map((a) => a.join('')) },
  { weight: 2, arbitrary: fc.constantFrom('&lt;', '&gt;', '&amp;', '&apos;', '&quot;') },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...CHAR_REFS) }, fc.constantFrom(...BAD_CHAR_REFS)),
        fc.boolean(),
      )
      .map(([c, hex]) => (hex ? `&#x${c.toString(16)};` : `&#${c};`)),
  },
);

const name = (pool: string[]): fc.Arbitrary<string> => fc.constantFrom(...pool);
const pad = fc.constantFrom('', '', '', ' ', '\n', ' \t ');

function gElement(node: fc.Arbitrary<GNode>): fc.Arbitrary<GElement> {
  return fc.record({
    prefix: name(PREFIXES),
    local: name(LOCALS),
    decls: fc.array(
      fc.tuple(
        name(PREFIXES),
        fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...URIS, '') }, fc.constantFrom(...ODD_URIS)),
      ),
      { maxLength: 3 },
    ),
    attrs: fc.array(
      fc.record({
        prefix: fc.constantFrom('', '', '', 'wsu', 'p', 'xml'),
        local: name(ATTR_LOCALS),
        value: fc.array(textPart, { maxLength: 3 }),
      }),
      { maxLength: 3 },
    ),
    children: fc.array(node, { maxLength: 4 }),
    pad,
    quote: fc.constantFrom('"' as const, "'" as const),
  });
}

const { node: gNode } = fc.letrec<{ node: GNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    {
      weight: 4,
      arbitrary: fc.array(textPart, { maxLength: 4 }).map((parts) => ({ k: 'text', parts }) as GNode),
    },
    { weight: 4, arbitrary: gElement(tie('node')).map((el) => ({ k: 'el', el }) as GNode) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.constantFrom('x', '<', '&', ']', ']]', '>', ' ', 'é'), { maxLength: 5 })
        .map((a) => ({ k: 'cdata', text: a.join('') }) as GNode),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.constantFrom('c', ' ', 'c', '-', '<', '&', 'é'), { maxLength: 4 })
        .map((a) => ({ k: 'comment', text: a.join('') }) as GNode),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          target: fc.constantFrom('pi', 'xml-stylesheet', 'xml', 'XmL', 'p:q'),
          data: fc.constantFrom('', 'x', 'a="1"', '?'),
        })
        .map((p) => ({ k: 'pi', ...p }) as GNode),
    },
  ),
}));

export const gElementArb: fc.Arbitrary<GElement> = gElement(gNode);

function escapeValue(parts: string[], quote: string): string {
  // Raw '<' and '&' never appear in parts except as references; the quote must be escaped.
  return parts
    .map((p) =>
      p === quote
        ? quote === '"'
          ? '&quot;'
          : '&apos;'
        : p.split(quote).join(quote === '"' ? '&quot;' : '&apos;'),
    )
    .join('');
}

/**
 * Renders an element namespace-well-formed: a prefix used but not in scope is declared on the
 * spot, attributes are made unique by expanded name. Comments inside CDATA-like text are kept
 * as generated, so some outputs are (deliberately) malformed: '--' in a comment, ']]>' in text.
 */
export function renderElement(el: GElement, scope: ReadonlyMap<string, string> = new Map()): string {
  const inScope = new Map(scope);
  const decls = new Map<string, string>();
  for (const [p, uri] of el.decls) {
    if (p !== '' && uri === '') continue; // xmlns:p="" is not XML 1.0; mutations produce it
    if (decls.has(p)) continue;
    decls.set(p, uri);
    inScope.set(p, uri);
  }
  const need = (p: string): void => {
    if (p === '' || p === 'xml' || inScope.has(p)) return;
    const uri = URIS[(p.charCodeAt(0) + p.length) % URIS.length]!;
    decls.set(p, uri);
    inScope.set(p, uri);
  };
  need(el.prefix);
  const attrs: string[] = [];
  const seen = new Set<string>();
  for (const a of el.attrs) {
    need(a.prefix);
    const expanded = `${a.prefix === '' ? '' : a.prefix === 'xml' ? 'xml' : inScope.get(a.prefix)}|${a.local}`;
    if (seen.has(expanded)) continue;
    seen.add(expanded);
    attrs.push(
      `${a.prefix ? a.prefix + ':' : ''}${a.local}=${el.quote}${escapeValue(a.value, el.quote)}${el.quote}`,
    );
  }
  const qname = el.prefix ? `${el.prefix}:${el.local}` : el.local;
  let s = '<' + qname;
  for (const [p, uri] of decls)
    s += ` ${p ? 'xmlns:' + p : 'xmlns'}=${el.quote}${escapeValue([uri.replace(/&/g, '&amp;')], el.quote)}${el.quote}`;
  for (const a of attrs) s += ' ' + a;
  s += el.pad;
  if (el.children.length === 0) return s + '/>';
  s += '>';
  for (const c of el.children) s += renderNode(c, inScope);
  return s + `</${qname}${el.pad}>`;
}

function renderNode(n: GNode, scope: ReadonlyMap<string, string>): string {
  switch (n.k) {
    case 'el':
      return renderElement(n.el, scope);
    case 'text':
      return n.parts.join('');
    case 'cdata':
      return `<![CDATA[${n.text}]]>`;
    case 'comment':
      return `<!--${n.text}-->`;
    case 'pi':
      return `<?${n.target}${n.data ? ' ' + n.data : ''}?>`;
  }
}

// ---------------------------------------------------------------------------------------------
// SOAP envelopes from the grammar.

export interface GEnvelope {
  bom: boolean;
  decl: string;
  version: '1.1' | '1.2';
  envPrefix: string;
  extraDecls: [string, string][];
  header: GElement[] | null;
  payload: GElement;
  ws: string;
  trailer: string;
}

export const gEnvelopeArb: fc.Arbitrary<GEnvelope> = fc.record({
  bom: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  decl: fc.constantFrom(
    '',
    '',
    '<?xml version="1.0"?>',
    '<?xml version="1.0" encoding="UTF-8"?>',
    "<?xml version='1.0' encoding='utf-8' standalone='yes'?>",
    '<?xml version="1.1"?>',
    '<?xml version="1.0" encoding="ISO-8859-1"?>',
    '<?xml version="1.0" encoding="UTF-16"?>',
    '<?xml version="1.0" encoding="utf8"?>',
  ),
  version: fc.constantFrom('1.1' as const, '1.2' as const),
  envPrefix: fc.constantFrom('s', 'soap', 'S', 'env', ''),
  extraDecls: fc.array(fc.tuple(name(PREFIXES.filter(Boolean)), fc.constantFrom(...URIS)), { maxLength: 2 }),
  header: fc.option(fc.array(gElementArb, { maxLength: 2 }), { freq: 2 }),
  payload: gElementArb,
  ws: pad,
  trailer: fc.constantFrom('', '', '\n', ' <!-- end -->', '<?pi?>'),
});

export function renderEnvelope(e: GEnvelope): string {
  const ns = e.version === '1.1' ? SOAP11 : SOAP12;
  const p = e.envPrefix;
  const q = (l: string): string => (p ? `${p}:${l}` : l);
  const scope = new Map<string, string>([[p, ns]]);
  let decls = ` ${p ? 'xmlns:' + p : 'xmlns'}="${ns}"`;
  for (const [xp, uri] of e.extraDecls) {
    if (scope.has(xp)) continue;
    scope.set(xp, uri);
    decls += ` xmlns:${xp}="${uri.replace(/&/g, '&amp;')}"`;
  }
  const header =
    e.header === null
      ? ''
      : `<${q('Header')}>${e.header.map((h) => renderElement(h, scope)).join(e.ws)}</${q('Header')}>`;
  return (
    (e.bom ? '\ufeff' : '') +
    e.decl +
    e.ws +
    `<${q('Envelope')}${decls}>${e.ws}${header}${e.ws}<${q('Body')}>${renderElement(e.payload, scope)}</${q('Body')}>${e.ws}</${q('Envelope')}>` +
    e.trailer
  );
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/** A position as a fraction of the current length, so it survives shrinking of the document. */
const at = fc.integer({ min: 0, max: 0xffff });
const pos = (frac: number, len: number): number => Math.floor((frac / 0x10000) * (len + 1));

const INTERESTING_BYTES = [
  [0x00],
  [0x01],
  [0x0d],
  [0x3c],
  [0x3e],
  [0x26],
  [0x22],
  [0x27],
  [0x3a],
  [0x2f],
  [0x80],
  [0xbf],
  [0xc0, 0xaf],
  [0xc3],
  [0xc3, 0xa9],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xef, 0xbf, 0xbe],
  [0xef, 0xbb, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf0, 0x9f, 0x98, 0x80],
  [0xfe],
  [0xff],
  [0xff, 0xfe],
];

/** XML-level snippets inserted as text at a position. */
const SNIPPETS = [
  '<!DOCTYPE a>',
  '<!DOCTYPE s:Envelope [<!ENTITY e "x">]>',
  '<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
  '&e;',
  '&xxe;',
  '&unknown;',
  '&#0;',
  '&#x10FFFF;',
  '<!ENTITY e "x">',
  '<zz:u/>',
  '<zz:u xmlns:zz="urn:zz"/>',
  '<?pi x?>',
  '<?xml version="1.0"?>',
  '<!--c-->',
  '<!-- -- -->',
  '<![CDATA[',
  ']]>',
  '<![CDATA[x]]>',
  '</a>',
  '<a>',
  '<a/>',
  '&',
  '&amp',
  '\r\n',
  '\ufeff',
  '\u0085',
  '\t',
];

/** Attribute snippets inserted right after the name of the n-th start tag. */
const ATTR_SNIPPETS = [
  ' a="1" a="2"',
  ' a="1"',
  ' zz:k="1"',
  ' xmlns:p="urn:x" xmlns:q="urn:x" p:k="1" q:k="2"',
  ' xmlns:p="urn:x" p:k="1" p:k="2"',
  ' xmlns="urn:d"',
  ' xmlns=""',
  ' xmlns:p=""',
  ' xmlns:xml="urn:x"',
  ' xmlns:xml="http://www.w3.org/XML/1998/namespace"',
  ' xmlns:xmlns="urn:x"',
  ' xmlns:p="http://www.w3.org/2000/xmlns/"',
  ' xmlns:s="urn:other"',
  ' xml:lang="en"',
  ' xml:id="x"',
  ' wsu:Id="dup"',
  ' Id="dup"',
  ' a=1',
  ' a="<"',
  ' a="&#9;&#10;&#13;"',
  ' a="\t\n\r"',
  'a="1"',
  ' a = "1" ',
  ' xmlns:p="rel/ative"',
];

export type Mutation =
  | { k: 'insert'; at: number; bytes: number[] }
  | { k: 'overwrite'; at: number; bytes: number[] }
  | { k: 'delete'; at: number; len: number }
  | { k: 'flip'; at: number; bit: number }
  | { k: 'copy'; from: number; to: number; len: number }
  | { k: 'snippet'; at: number; text: string }
  | { k: 'attr'; tag: number; text: string }
  | { k: 'nest'; at: number; depth: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('insert' as const), at, bytes: fc.constantFrom(...INTERESTING_BYTES) }),
  fc.record({ k: fc.constant('overwrite' as const), at, bytes: fc.constantFrom(...INTERESTING_BYTES) }),
  fc.record({ k: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ k: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ k: fc.constant('copy' as const), from: at, to: at, len: fc.integer({ min: 1, max: 80 }) }),
  fc.record({ k: fc.constant('snippet' as const), at, text: fc.constantFrom(...SNIPPETS) }),
  fc.record({
    k: fc.constant('attr' as const),
    tag: fc.nat({ max: 40 }),
    text: fc.constantFrom(...ATTR_SNIPPETS),
  }),
  fc.record({ k: fc.constant('nest' as const), at, depth: fc.integer({ min: 1, max: 320 }) }),
);

function splice(b: Buffer, at: number, del: number, ins: Uint8Array): Buffer {
  return Buffer.concat([b.subarray(0, at), ins, b.subarray(Math.min(b.length, at + del))]);
}

/** Offsets just after the name of each start tag, as bytes. */
function tagNameEnds(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = b.indexOf(0x3c); i >= 0 && out.length < 64; i = b.indexOf(0x3c, i + 1)) {
    const c = b[i + 1];
    if (c === undefined || c === 0x2f || c === 0x21 || c === 0x3f) continue;
    let j = i + 1;
    while (j < b.length && ![0x20, 0x09, 0x0a, 0x0d, 0x3e, 0x2f].includes(b[j]!)) j++;
    out.push(j);
  }
  return out;
}

export function applyMutation(b: Buffer, m: Mutation): Buffer {
  switch (m.k) {
    case 'insert':
      return splice(b, pos(m.at, b.length), 0, Buffer.from(m.bytes));
    case 'overwrite':
      return splice(b, pos(m.at, b.length), m.bytes.length, Buffer.from(m.bytes));
    case 'delete':
      return splice(b, pos(m.at, b.length), m.len, Buffer.alloc(0));
    case 'flip': {
      if (b.length === 0) return b;
      const i = Math.min(b.length - 1, pos(m.at, b.length));
      const c = Buffer.from(b);
      c[i] = c[i]! ^ (1 << m.bit);
      return c;
    }
    case 'copy': {
      const from = pos(m.from, b.length);
      return splice(b, pos(m.to, b.length), 0, b.subarray(from, from + m.len));
    }
    case 'snippet':
      return splice(b, pos(m.at, b.length), 0, Buffer.from(m.text));
    case 'attr': {
      const ends = tagNameEnds(b);
      if (ends.length === 0) return b;
      return splice(b, ends[m.tag % ends.length]!, 0, Buffer.from(m.text));
    }
    case 'nest': {
      // Between two tags, so the nesting lands in element content.
      let i = b.indexOf(0x3e, pos(m.at, b.length));
      if (i < 0) i = b.length - 1;
      return splice(b, i + 1, 0, Buffer.from('<d>'.repeat(m.depth) + '</d>'.repeat(m.depth)));
    }
  }
}

export function applyMutations(b: Buffer, ms: readonly Mutation[]): Buffer {
  let out = b;
  for (const m of ms) out = applyMutation(out, m);
  return out;
}

/** Bytes under test; fast-check prints them readably in a counterexample. */
export class FuzzBytes {
  constructor(
    readonly bytes: Buffer,
    readonly mutations: readonly Mutation[],
  ) {}

  [fc.toStringMethod](): string {
    return `${showBytes(this.bytes)} (mutations: ${JSON.stringify(this.mutations)})`;
  }
}

/**
 * XML documents: a grammar-built SOAP envelope or a bare element, then mutated. `unmutatedWeight`
 * against 3 for the share left as the grammar made them (the c14n target wants more of those).
 */
export function xmlDocuments(o: { maxMutations: number; unmutatedWeight: number }): fc.Arbitrary<FuzzBytes> {
  return fc
    .tuple(
      fc.oneof(
        { weight: 3, arbitrary: gEnvelopeArb.map(renderEnvelope) },
        { weight: 1, arbitrary: gElementArb.map((e) => renderElement(e)) },
      ),
      fc.oneof(
        { weight: o.unmutatedWeight, arbitrary: fc.constant<Mutation[]>([]) },
        { weight: 3, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: o.maxMutations }) },
      ),
    )
    .map(([text, ms]) => new FuzzBytes(applyMutations(Buffer.from(text, 'utf8'), ms), ms));
}

export const xmlDocumentArb: fc.Arbitrary<FuzzBytes> = xmlDocuments({ maxMutations: 3, unmutatedWeight: 2 });

// ---------------------------------------------------------------------------------------------
// Wrapping attacks on signed envelopes.

const ATTACKER_PAYLOAD = `<sym:getSessionStatus xmlns:sym="${SYM}"><sym:sessionId>EVIL</sym:sessionId></sym:getSessionStatus>`;

export type Attack =
  | {
      k: 'moveBody';
      into: 'header' | 'security' | 'object' | 'payload' | 'secondBody';
      id: 'new' | 'none' | 'same';
    }
  | { k: 'duplicateBody'; after: boolean }
  | {
      k: 'idCollision';
      of: 'body' | 'timestamp' | 'bst';
      attr: 'wsu:Id' | 'Id' | 'ID' | 'id' | 'xml:id';
      where: 'header' | 'body' | 'security' | 'envelope';
    }
  | { k: 'bodyIdAlias'; attr: 'Id' | 'ID' | 'id' | 'xml:id' }
  | { k: 'extraSecurity'; copy: boolean; before: boolean; nested: boolean }
  | { k: 'commentIn'; where: 'body' | 'payload' | 'timestamp' | 'signedInfo' }
  | { k: 'whitespaceIn'; where: 'body' | 'payload' | 'signedInfo' }
  | { k: 'envelopeNs'; prefix: string; uri: string }
  | { k: 'bodyText'; text: string }
  | { k: 'moveTimestamp'; into: 'header' | 'body' }
  | { k: 'duplicateSignature' }
  | { k: 'reorderHeader' }
  | { k: 'renameEnvelopePrefix' };

export const attackArb: fc.Arbitrary<Attack> = fc.oneof(
  fc.record({
    k: fc.constant('moveBody' as const),
    into: fc.constantFrom(
      'header' as const,
      'security' as const,
      'object' as const,
      'payload' as const,
      'secondBody' as const,
    ),
    id: fc.constantFrom('new' as const, 'none' as const, 'same' as const),
  }),
  fc.record({ k: fc.constant('duplicateBody' as const), after: fc.boolean() }),
  fc.record({
    k: fc.constant('idCollision' as const),
    of: fc.constantFrom('body' as const, 'timestamp' as const, 'bst' as const),
    attr: fc.constantFrom('wsu:Id' as const, 'Id' as const, 'ID' as const, 'id' as const, 'xml:id' as const),
    where: fc.constantFrom('header' as const, 'body' as const, 'security' as const, 'envelope' as const),
  }),
  fc.record({
    k: fc.constant('bodyIdAlias' as const),
    attr: fc.constantFrom('Id' as const, 'ID' as const, 'id' as const, 'xml:id' as const),
  }),
  fc.record({
    k: fc.constant('extraSecurity' as const),
    copy: fc.boolean(),
    before: fc.boolean(),
    nested: fc.boolean(),
  }),
  fc.record({
    k: fc.constant('commentIn' as const),
    where: fc.constantFrom('body' as const, 'payload' as const, 'timestamp' as const, 'signedInfo' as const),
  }),
  fc.record({
    k: fc.constant('whitespaceIn' as const),
    where: fc.constantFrom('body' as const, 'payload' as const, 'signedInfo' as const),
  }),
  fc.record({
    k: fc.constant('envelopeNs' as const),
    prefix: fc.constantFrom('', 'sym', 'evil', 'wsu', 'ds'),
    uri: fc.constantFrom('urn:evil', SYM, NS.wsu),
  }),
  fc.record({ k: fc.constant('bodyText' as const), text: fc.constantFrom('EVIL', '', ' ', 'x&y') }),
  fc.record({
    k: fc.constant('moveTimestamp' as const),
    into: fc.constantFrom('header' as const, 'body' as const),
  }),
  fc.record({ k: fc.constant('duplicateSignature' as const) }),
  fc.record({ k: fc.constant('reorderHeader' as const) }),
  fc.record({ k: fc.constant('renameEnvelopePrefix' as const) }),
);

function wsuId(el: { getAttributeNS(ns: string, l: string): string | null }): string {
  return el.getAttributeNS(NS.wsu, 'Id') ?? '';
}

function attackerBody(
  p: SignedParts,
  id: 'new' | 'none' | 'same',
  signedId: string,
): ReturnType<typeof importFragment> {
  const idAttr =
    id === 'none' ? '' : ` xmlns:wsu="${NS.wsu}" wsu:Id="${id === 'same' ? signedId : 'evil-body'}"`;
  return importFragment(
    p.doc,
    `<soap:Body xmlns:soap="${p.soapNs}"${idAttr}>${ATTACKER_PAYLOAD}</soap:Body>`,
  );
}

/** Applies one attack to the parsed signed envelope, in place. */
export function applyAttack(p: SignedParts, a: Attack): void {
  const doc = p.doc;
  const signedId = wsuId(p.body);
  switch (a.k) {
    case 'moveBody': {
      const body = p.body;
      const evil = attackerBody(p, a.id, signedId);
      p.envelope.replaceChild(evil, body);
      if (a.into === 'header') {
        const w = importFragment(doc, '<w:Wrapper xmlns:w="urn:w"/>');
        w.appendChild(body);
        p.header.insertBefore(w, p.header.firstChild);
      } else if (a.into === 'security') p.security.appendChild(body);
      else if (a.into === 'object') {
        const o = importFragment(doc, `<ds:Object xmlns:ds="${NS.ds}"/>`);
        o.appendChild(body);
        p.signature.appendChild(o);
      } else if (a.into === 'payload') {
        const payload = childElementsNS(evil, SYM, '*')[0]!;
        payload.appendChild(body);
      } else p.envelope.appendChild(body);
      p.body = evil;
      return;
    }
    case 'duplicateBody': {
      const copy = p.body.cloneNode(true);
      if (a.after) p.envelope.appendChild(copy);
      else p.envelope.insertBefore(copy, p.body);
      return;
    }
    case 'idCollision': {
      const target = a.of === 'body' ? p.body : a.of === 'timestamp' ? p.timestamp : p.bst;
      const id = target ? wsuId(target) : signedId;
      const attr =
        a.attr === 'wsu:Id'
          ? `xmlns:wsu="${NS.wsu}" wsu:Id="${id}"`
          : a.attr === 'xml:id'
            ? `xml:id="${id}"`
            : `${a.attr}="${id}"`;
      const el = importFragment(doc, `<w:Dup xmlns:w="urn:w" ${attr}>${ATTACKER_PAYLOAD}</w:Dup>`);
      const parent =
        a.where === 'header'
          ? p.header
          : a.where === 'body'
            ? p.body
            : a.where === 'security'
              ? p.security
              : p.envelope;
      parent.insertBefore(el, parent.firstChild);
      return;
    }
    case 'bodyIdAlias':
      if (a.attr === 'xml:id')
        p.body.setAttributeNS('http://www.w3.org/XML/1998/namespace', 'xml:id', signedId);
      else p.body.setAttribute(a.attr, signedId);
      return;
    case 'extraSecurity': {
      const extra = a.copy
        ? (p.security.cloneNode(true) as typeof p.security)
        : importFragment(doc, `<wsse:Security xmlns:wsse="${NS.wsse}"/>`);
      const parent = a.nested ? importFragment(doc, '<w:Wrapper xmlns:w="urn:w"/>') : null;
      if (parent) parent.appendChild(extra);
      const node = parent ?? extra;
      if (a.before) p.header.insertBefore(node, p.security);
      else p.header.appendChild(node);
      return;
    }
    case 'commentIn': {
      const target =
        a.where === 'body'
          ? p.body
          : a.where === 'payload'
            ? (childElementsNS(p.body, SYM, '*')[0] ?? p.body)
            : a.where === 'timestamp'
              ? (p.timestamp ?? p.body)
              : p.signedInfo;
      target.insertBefore(doc.createComment(' injected '), target.firstChild);
      return;
    }
    case 'whitespaceIn': {
      const target =
        a.where === 'body'
          ? p.body
          : a.where === 'payload'
            ? (childElementsNS(p.body, SYM, '*')[0] ?? p.body)
            : p.signedInfo;
      target.appendChild(doc.createTextNode('\n  '));
      return;
    }
    case 'envelopeNs':
      p.envelope.setAttributeNS(
        'http://www.w3.org/2000/xmlns/',
        a.prefix ? `xmlns:${a.prefix}` : 'xmlns',
        a.uri,
      );
      return;
    case 'bodyText': {
      const payload = childElementsNS(p.body, SYM, '*')[0];
      const leaf = payload && childElementsNS(payload, SYM, '*')[0];
      if (leaf) leaf.textContent = a.text;
      return;
    }
    case 'moveTimestamp': {
      if (!p.timestamp) return;
      const w = importFragment(doc, '<w:Wrapper xmlns:w="urn:w"/>');
      w.appendChild(p.timestamp);
      if (a.into === 'header') p.header.insertBefore(w, p.header.firstChild);
      else p.body.appendChild(w);
      return;
    }
    case 'duplicateSignature':
      p.security.appendChild(p.signature.cloneNode(true));
      return;
    case 'reorderHeader': {
      const first = p.header.firstChild;
      if (first && first !== p.header.lastChild) p.header.appendChild(first);
      return;
    }
    case 'renameEnvelopePrefix':
      // Same namespace, another prefix on Envelope only: the Body's own prefix still resolves.
      p.envelope.setAttributeNS('http://www.w3.org/2000/xmlns/', 'xmlns:env', p.soapNs);
      return;
  }
}

export interface SignedSample {
  /** The envelope exactly as the client signed it. */
  xml: string;
  version: '1.1' | '1.2';
}

export class AttackedEnvelope {
  constructor(
    readonly sample: number,
    readonly attacks: readonly Attack[],
    readonly mutations: readonly Mutation[],
    readonly bytes: Buffer,
  ) {}

  [fc.toStringMethod](): string {
    return `sample ${this.sample}, attacks ${JSON.stringify(this.attacks)}, mutations ${JSON.stringify(this.mutations)}: ${showBytes(this.bytes)}`;
  }
}

/** Signed envelopes from a pool, attacked structurally and then (sometimes) at byte level. */
export function attackedEnvelopeArb(pool: readonly SignedSample[]): fc.Arbitrary<AttackedEnvelope> {
  return fc
    .tuple(
      fc.nat({ max: pool.length - 1 }),
      fc.array(attackArb, { maxLength: 3 }),
      fc.oneof(
        { weight: 3, arbitrary: fc.constant<Mutation[]>([]) },
        { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) },
      ),
    )
    .map(([i, attacks, ms]) => {
      let xml = pool[i]!.xml;
      if (attacks.length) {
        const p = signedParts(xml);
        for (const a of attacks) applyAttack(p, a);
        xml = serializeXmlDoc(p.doc);
      }
      return new AttackedEnvelope(i, attacks, ms, applyMutations(Buffer.from(xml, 'utf8'), ms));
    });
}
