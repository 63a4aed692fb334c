import { expect } from 'chai';
import { DEFAULT_XML_LIMITS, parseXml, parseXmlBytes, type XmlElement, type XmlNode } from './xml';
import { XmlRejected } from './xml-scanner';
import { saxesParse } from '../../test/helpers/saxes-oracle';

const WIDE = { maxDepth: 500, maxAttributes: 500, maxNameLength: 500, maxElements: 100000 };

/**
 * A comparable plain shape of a tree: names, namespaces, attributes and merged text. Namespace
 * names are trimmed because saxes trims them while we keep the attribute value as written
 * (which exclusive c14n must reproduce).
 */
function shape(n: XmlNode): unknown {
  if (typeof n === 'string') return n;
  const el: XmlElement = n;
  const children: unknown[] = [];
  for (const c of el.children) {
    const last = children[children.length - 1];
    if (typeof c === 'string' && typeof last === 'string') children[children.length - 1] = last + c;
    else children.push(shape(c));
  }
  return {
    name: `{${el.uri.trim()}}${el.prefix}:${el.local}`,
    ns: el.nsDecls && Object.fromEntries(Object.entries(el.nsDecls).map(([p, u]) => [p, u.trim()])),
    attrs: el.attrs.map((a) => `{${a.uri.trim()}}${a.prefix}:${a.local}=${a.value}`).sort(),
    children,
  };
}

type Outcome = { ok: true; tree: unknown } | { ok: false; why: string };

function ours(text: string, allowComments = false): Outcome {
  try {
    return { ok: true, tree: shape(parseXml(text, WIDE, { allowComments })) };
  } catch (e) {
    if (e instanceof XmlRejected) return { ok: false, why: e.message };
    throw e;
  }
}

function reference(text: string, allowComments = false): Outcome {
  try {
    return { ok: true, tree: shape(saxesParse(text, allowComments)) };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

const VALID = [
  '<a/>',
  '<?xml version="1.0" encoding="UTF-8"?>\n<a b="1"/>\n',
  `<?xml version='1.0'?><a b='x"y'/>`,
  '\uFEFF<a>bom</a>',
  '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/><s:Body><m:op xmlns:m="urn:m" m:k="v" k="w">t &lt;&gt;&amp;&apos;&quot; &#65;&#x42;&#x1F600;</m:op></s:Body></s:Envelope>',
  '<a xmlns="urn:d"><b xmlns=""><c/></b></a>',
  '<a><![CDATA[<x> & ]]]]><![CDATA[> ]]>tail</a>',
  '<a x="tab\there\nnl&#9;ref&#10;ref" y="&#13;"/>',
  '<a>line1\r\nline2\rline3</a>',
  '<a xml:lang="en" xml:space="preserve"> keep </a>',
  '<é:ü xmlns:é="urn:e" é:ö="1">漢字 😀</é:ü>',
  '<a   b = "1"\n\tc="2"  ></a  >',
  '<a><b/><b/><c>x</c>y<d/></a>',
  '<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2"/></p:a>',
  '<a>]]</a>',
  '<a>x > y</a>',
];

const INVALID = [
  '',
  '   ',
  'garbage',
  '<a>',
  '<a></b>',
  '<a><b></a></b>',
  '<a/><b/>',
  'text<a/>',
  '<a/>text',
  '<a b="1" b="2"/>',
  '<a xmlns:p="urn:x" xmlns:q="urn:x" p:k="1" q:k="2"/>',
  '<p:a/>',
  '<a p:k="1"/>',
  '<a b=1/>',
  '<a b="1"c="2"/>',
  '<a b="<"/>',
  '<a>&unknown;</a>',
  '<a>&#0;</a>',
  '<a>&#xD800;</a>',
  '<a>& </a>',
  '<a>]]></a>',
  '<a>\u0001</a>',
  '<a b="\u0000"/>',
  '<!DOCTYPE a><a/>',
  '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
  '<a><?pi x?></a>',
  '<?pi x?><a/>',
  '<a/><?xml version="1.0"?>',
  ' <?xml version="1.0"?><a/>',
  '<a><!-- c --></a>',
  '<a><![CDATA[x</a>',
  '<a xmlns:xmlns="urn:x"/>',
  '<a xmlns:xml="urn:x"/>',
  '<a xmlns:p=""/>',
  '<a:b:c xmlns:a="urn:a"/>',
  '<:a/>',
  '<1a/>',
  // QName parts must be NCNames: no empty, colon-holding or digit-first parts (Namespaces 1.0).
  '<a xmlns:="urn:x"><b/></a>',
  '<a xmlns::q="urn:x"/>',
  '<a xmlns:a:b="urn:x"/>',
  '<q:8-y xmlns:q="urn:q"/>',
  '<a xmlns:q="urn:q" q:-b="1"/>',
  '<a></a >x',
  '<a b="1"',
  '<a',
  '<a b',
  '<a b=',
  '</a>',
  '<a></ a>',
];

describe('soap/xml-scanner: the fast strict parser agrees with saxes', () => {
  VALID.forEach((text) => {
    it(`accepts and builds the same tree: ${JSON.stringify(text).slice(0, 70)}`, () => {
      const ref = reference(text);
      expect(ref.ok, `saxes refused its own corpus entry: ${ref.ok ? '' : ref.why}`).to.equal(true);
      expect(ours(text)).to.deep.equal(ref);
    });
  });

  INVALID.forEach((text) => {
    it(`refuses: ${JSON.stringify(text).slice(0, 70)}`, () => {
      expect(reference(text).ok, 'saxes accepted a corpus entry meant to be invalid').to.equal(false);
      const r = ours(text);
      expect(r.ok).to.equal(false);
    });
  });

  it('allows comments only when asked, and refuses "--" inside them', () => {
    expect(ours('<a><!-- c --></a>', true).ok).to.equal(true);
    expect(ours('<!-- c --><a/><!-- d -->', true)).to.deep.equal(reference('<!-- c --><a/><!-- d -->', true));
    expect(ours('<a><!-- c -- d --></a>', true).ok).to.equal(false);
  });

  it('classifies refusals: forbidden constructs, limits, malformed input', () => {
    const kind = (t: string, limits = DEFAULT_XML_LIMITS): string => {
      try {
        parseXml(t, limits);
      } catch (e) {
        if (e instanceof XmlRejected) return e.kind;
      }
      return 'accepted';
    };
    expect(kind('<!DOCTYPE a><a/>')).to.equal('forbidden');
    expect(kind('<a><?x y?></a>')).to.equal('forbidden');
    expect(kind('<a>' + '<b>'.repeat(100) + '</b>'.repeat(100) + '</a>')).to.equal('limit');
    expect(kind(`<a ${Array.from({ length: 100 }, (_, i) => `a${i}="1"`).join(' ')}/>`)).to.equal('limit');
    expect(kind('<a><b></a>')).to.equal('malformed');
  });

  it('agrees with saxes on 4,000 randomly mutated SOAP envelopes', () => {
    const base =
      '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:w="urn:w"><s:Header><w:T w:Id="t1" a="x &amp; y">2026</w:T></s:Header>' +
      '<s:Body w:Id="b1"><m:op xmlns:m="urn:m" xmlns="urn:d"><m:v>1 &lt; 2</m:v><x y="&#65;"/><![CDATA[c]]></m:op></s:Body></s:Envelope>';
    const alphabet = [
      '<',
      '>',
      '&',
      ';',
      '"',
      "'",
      '=',
      '/',
      ':',
      'x',
      ' ',
      '!',
      '?',
      '[',
      ']',
      '-',
      '#',
      '\u0001',
      'é',
    ];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const disagreements: string[] = [];
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      let t = base;
      for (let k = 1 + rand(3); k > 0; k--) {
        const at = rand(t.length);
        const op = rand(3);
        const ch = alphabet[rand(alphabet.length)]!;
        t =
          op === 0
            ? t.slice(0, at) + t.slice(at + 1)
            : op === 1
              ? t.slice(0, at) + ch + t.slice(at)
              : t.slice(0, at) + ch + t.slice(at + 1);
      }
      const a = ours(t);
      const b = reference(t);
      if (a.ok) accepted++;
      if (a.ok !== b.ok || (a.ok && b.ok && JSON.stringify(a.tree) !== JSON.stringify(b.tree))) {
        disagreements.push(`${JSON.stringify(t)} ours=${a.ok ? 'ok' : a.why} saxes=${b.ok ? 'ok' : b.why}`);
      }
    }
    expect(disagreements.slice(0, 5)).to.deep.equal([]);
    expect(accepted).to.be.greaterThan(100);
  });
});

describe('soap/xml: request bytes must be well-formed UTF-8, as libxml2 requires', () => {
  type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });
  let lib: Lib;
  before(async () => {
    lib = await import('libxml2-wasm');
  });

  /** libxml2's verdict on the same bytes, with no recovery and no network. */
  function libxml2Accepts(bytes: Buffer): boolean {
    try {
      lib.XmlDocument.fromBuffer(bytes, { option: lib.ParseOption.XML_PARSE_NONET }).dispose();
      return true;
    } catch {
      return false;
    }
  }

  function oursAccepts(bytes: Buffer): boolean {
    try {
      parseXmlBytes(bytes, WIDE);
      return true;
    } catch (e) {
      if (e instanceof XmlRejected) return false;
      throw e;
    }
  }

  const doc = (inner: number[]): Buffer =>
    Buffer.concat([Buffer.from('<a><b>'), Buffer.from(inner), Buffer.from('</b></a>')]);
  // [name, bytes, we accept, libxml2 accepts]: we never accept what libxml2 refuses, and refuse
  // the two cases where libxml2 would decode another encoding than UTF-8.
  const CASES: [string, Buffer, boolean, boolean?][] = [
    ['plain ASCII', doc([0x41]), true],
    [
      'two-, three- and four-byte sequences',
      doc([0xc3, 0xa9, 0xe6, 0xbc, 0xa2, 0xf0, 0x9f, 0x98, 0x80]),
      true,
    ],
    ['a UTF-8 byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), doc([0x41])]), true],
    [
      'a UTF-8 BOM before a UTF-8 declaration',
      Buffer.from('\uFEFF<?xml version="1.0" encoding="UTF-8"?><a/>'),
      true,
    ],
    ['a lone continuation byte', doc([0x80]), false],
    ['a Latin-1 byte', doc([0x63, 0x61, 0x66, 0xe9]), false],
    [
      'the bytes a firewall test sends: FF FE C3 28 A0 A1 F0 28 8C BC',
      doc([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]),
      false,
    ],
    ['a truncated three-byte sequence', doc([0xe6, 0xbc]), false],
    ['an overlong "/" (C0 AF)', doc([0xc0, 0xaf]), false],
    ['an overlong three-byte NUL (E0 80 80)', doc([0xe0, 0x80, 0x80]), false],
    ['a UTF-8 encoded surrogate (ED A0 80)', doc([0xed, 0xa0, 0x80]), false],
    ['a code point above U+10FFFF (F4 90 80 80)', doc([0xf4, 0x90, 0x80, 0x80]), false],
    ['an invalid lead byte (F8)', doc([0xf8, 0x88, 0x80, 0x80, 0x80]), false],
    [
      'a UTF-8 BOM contradicting a declared UTF-16',
      Buffer.from('\uFEFF<?xml version="1.0" encoding="UTF-16"?><a/>'),
      false,
      true, // libxml2 lets the BOM win over the declaration
    ],
    [
      'a declared ISO-8859-1 encoding',
      Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><a>caf\u00e9</a>', 'latin1'),
      false,
      true, // libxml2 decodes Latin-1; we take UTF-8 only
    ],
  ];

  for (const [name, bytes, accepted, libxml2 = accepted] of CASES) {
    it(`${accepted ? 'accepts' : 'refuses'} ${name} (libxml2 ${libxml2 ? 'accepts' : 'refuses'})`, () => {
      expect(oursAccepts(bytes), 'ours').to.equal(accepted);
      expect(libxml2Accepts(bytes), 'libxml2').to.equal(libxml2);
    });
  }

  // libxml2 reads UTF-16 by its byte order mark; a SOAP proxy behind an inspecting firewall takes
  // one encoding only, so both UTF-16 byte orders are refused with a message saying what to send.
  for (const [order, bom] of [
    ['little-endian', [0xff, 0xfe]],
    ['big-endian', [0xfe, 0xff]],
  ] as const) {
    it(`refuses a ${order} UTF-16 body, saying to send UTF-8`, () => {
      const text = '<a>x</a>';
      const body = Buffer.from(text, 'utf16le');
      if (order === 'big-endian') body.swap16();
      const bytes = Buffer.concat([Buffer.from(bom), body]);
      expect(() => parseXmlBytes(bytes)).to.throw(XmlRejected, /UTF-16.*send UTF-8/);
    });
  }

  it('names the offset of the first bad byte', () => {
    expect(() => parseXmlBytes(doc([0x41, 0x42, 0xc0, 0xaf]))).to.throw(XmlRejected, /at byte 8\b/);
  });
});
