/**
 * libxml2 (libxml2-wasm, in process) as the reference parser and canonicalizer of the fuzz
 * targets, and the comparable shape of a tree both sides produce: element and attribute names
 * with their namespaces, namespace declarations, attribute values and merged text (CDATA is
 * text; comments are not part of the data model compared).
 */
import {
  decodeUtf8,
  type XmlElement as OurElement,
  type XmlLimits,
  type XmlNode as OurNode,
} from '../../src/soap/xml';
import { scanXml, XmlRejected } from '../../src/soap/xml-scanner';

export type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });
type LibNode = InstanceType<Lib['XmlNode']>;
type LibElement = InstanceType<Lib['XmlElement']>;
type LibDocument = InstanceType<Lib['XmlDocument']>;

let loading: Promise<Lib> | undefined;
/** Whether strings read from libxml2-wasm keep a leading U+FEFF (see loadLibxml2). */
let keepsBom = false;

/**
 * Loads libxml2-wasm. Its emscripten glue decodes every string longer than 16 bytes with a
 * default TextDecoder, which drops a leading U+FEFF (as if it were a byte order mark): an
 * attribute value "\uFEFFa\uFEFFaaa\u00A0aéaa" comes back without its first character. The
 * decoder is made once when the module loads, so it is loaded here with a TextDecoder that keeps
 * the character. When another test loaded the module first, that is too late: a probe finds out
 * and `comparable` then removes U+FEFF from the strings of both sides, a narrow blind spot rather
 * than false alarms.
 */
export function loadLibxml2(): Promise<Lib> {
  loading ??= (async () => {
    const Original = globalThis.TextDecoder;
    class KeepBom extends Original {
      constructor(label?: string, options?: ConstructorParameters<typeof TextDecoder>[1]) {
        super(label, { ignoreBOM: true, ...options });
      }
    }
    globalThis.TextDecoder = KeepBom as typeof TextDecoder;
    let lib: Lib;
    try {
      lib = await import('libxml2-wasm');
    } finally {
      globalThis.TextDecoder = Original;
    }
    const probe = lib.XmlDocument.fromString('<a b="\uFEFF0123456789abcdef"/>');
    keepsBom = probe.root.attrs[0]!.value.startsWith('\uFEFF');
    probe.dispose();
    if (!keepsBom)
      console.warn('      (libxml2-wasm was loaded earlier: U+FEFF is left out of the comparison)');
    return lib;
  })();
  return loading;
}

/** A string as compared; identity unless libxml2-wasm's strings lose U+FEFF (loadLibxml2). */
export function comparable(s: string): string {
  return keepsBom ? s : s.replace(/\uFEFF/g, '');
}

/**
 * Wide limits, so that they rarely decide; depth stays below libxml2's own limit of 256 so that
 * a depth refusal is always ours (a documented difference, below).
 */
export const LIMITS: XmlLimits = {
  maxDepth: 200,
  maxAttributes: 1000,
  maxNameLength: 10_000,
  maxElements: 1_000_000,
};

export type Ours = { ok: true; root: OurElement } | { ok: false; kind: XmlRejected['kind']; why: string };

export function oursParse(bytes: Uint8Array, allowComments: boolean): Ours {
  try {
    return { ok: true, root: scanXml(decodeUtf8(bytes), LIMITS, { allowComments }) };
  } catch (e) {
    if (e instanceof XmlRejected) return { ok: false, kind: e.kind, why: e.message };
    throw e; // anything else is a crash of the scanner: the property fails with it
  }
}

export interface Shape {
  name: string;
  ns: [string, string][];
  attrs: string[];
  children: (Shape | string)[];
}

/** The comparable shape of one of our elements. */
export function ourShape(el: OurElement): Shape {
  const children: (Shape | string)[] = [];
  for (const c of el.children as OurNode[]) {
    const last = children[children.length - 1];
    if (typeof c === 'string') {
      const t = comparable(c);
      if (typeof last === 'string') children[children.length - 1] = last + t;
      else if (t !== '') children.push(t);
    } else children.push(ourShape(c));
  }
  return {
    name: comparable(`{${el.uri}}${el.prefix}:${el.local}`),
    // libxml2 keeps no declaration of the xml prefix (bound by definition; declaring it to its
    // own namespace is allowed and means nothing), so it is left out here too.
    ns: Object.entries(el.nsDecls ?? {})
      .filter(([p]) => p !== 'xml')
      .map(([p, u]) => [comparable(p), comparable(u)] as [string, string])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    attrs: el.attrs.map((a) => comparable(`{${a.uri}}${a.prefix}:${a.local}=${a.value}`)).sort(),
    children,
  };
}

/** Constructs in the document that the proxy refuses by design (it accepts comments only when told). */
export interface Constructs {
  dtd: boolean;
  pi: boolean;
  comment: boolean;
  entityRef: boolean;
}

export type LibOutcome =
  | { ok: true; shape: Shape; elements: LibElement[]; constructs: Constructs; doc: LibDocument }
  | { ok: false; why: string; errors: { message: string; level: number }[] };

/**
 * libxml2's verdict on the bytes and its tree. Parsed as a security gate would: no network, no
 * entity substitution, no DTD loading, no recovery. The caller disposes `doc`.
 */
export function libxml2Parse(lib: Lib, bytes: Uint8Array): LibOutcome {
  let doc: LibDocument;
  try {
    doc = lib.XmlDocument.fromBuffer(bytes, {
      option: lib.ParseOption.XML_PARSE_NONET | lib.ParseOption.XML_PARSE_NO_XXE,
    });
  } catch (e) {
    const details = (e as { details?: { message: string; level: number }[] }).details ?? [];
    return {
      ok: false,
      why: (e as Error).message.trim(),
      errors: details.map((d) => ({ message: d.message.trim(), level: d.level })),
    };
  }
  const constructs: Constructs = { dtd: doc.dtd !== null, pi: false, comment: false, entityRef: false };
  const elements: LibElement[] = [];
  const note = (n: LibNode): boolean => {
    if (n instanceof lib.XmlComment) constructs.comment = true;
    else if (n instanceof lib.XmlEntityReference) constructs.entityRef = true;
    else if (!(n instanceof lib.XmlTreeNode)) {
      // A processing instruction (libxml2-wasm gives it no sibling links, so the walk stops
      // there; the proxy refuses any document holding one, so nothing further is compared).
      constructs.pi = true;
      return false;
    }
    return true;
  };
  const walk = (el: LibElement): Shape => {
    elements.push(el);
    const children: (Shape | string)[] = [];
    for (let c: LibNode | null = el.firstChild; c; c = c instanceof lib.XmlTreeNode ? c.next : null) {
      if (!note(c)) break;
      if (c instanceof lib.XmlElement) children.push(walk(c));
      else if (c instanceof lib.XmlText || c instanceof lib.XmlCData) {
        const t = comparable(c.content);
        const last = children[children.length - 1];
        if (typeof last === 'string') children[children.length - 1] = last + t;
        else if (t !== '') children.push(t);
      }
    }
    const decls = el.nsDeclarations;
    return {
      name: comparable(`{${el.namespaceUri}}${el.prefix}:${el.name}`),
      ns: Object.keys(decls)
        .map((p) => [comparable(p), comparable(decls[p]!)] as [string, string])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      attrs: el.attrs.map((a) => comparable(`{${a.namespaceUri}}${a.prefix}:${a.name}=${a.value}`)).sort(),
      children,
    };
  };
  const root = doc.root;
  for (let n: LibNode | null = root.prev; n; n = n instanceof lib.XmlTreeNode ? n.prev : null)
    if (!note(n)) break;
  for (let n: LibNode | null = root.next; n; n = n instanceof lib.XmlTreeNode ? n.next : null)
    if (!note(n)) break;
  const shape = walk(root);
  return { ok: true, shape, elements, constructs, doc };
}

/**
 * libxml2's exclusive c14n (without comments) of one element, or the reason it refused. The
 * output is collected as bytes and decoded once: libxml2-wasm's own string handler decodes each
 * output chunk separately, which breaks a character split across chunks and drops U+FEFF at the
 * start of a chunk.
 */
export function libxml2ExcC14n(
  lib: Lib,
  el: LibElement,
  prefixes: string[],
): { ok: true; bytes: Buffer } | { ok: false; why: string } {
  const chunks: Buffer[] = [];
  try {
    el.canonicalize(
      {
        write(buf: Uint8Array): number {
          chunks.push(Buffer.from(buf));
          return buf.byteLength;
        },
        close: () => true,
      },
      {
        mode: lib.XmlC14NMode.XML_C14N_EXCLUSIVE_1_0,
        withComments: false,
        ...(prefixes.length ? { inclusiveNamespacePrefixes: prefixes } : {}),
      },
    );
    return { ok: true, bytes: Buffer.concat(chunks) };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

/** Elements of our tree in document order (the order libxml2Parse lists its own). */
export function ourElements(root: OurElement): OurElement[] {
  const out: OurElement[] = [];
  const visit = (el: OurElement): void => {
    out.push(el);
    for (const c of el.children) if (typeof c !== 'string') visit(c);
  };
  visit(root);
  return out;
}

/** Throws with both trees in the message when they differ (chai would elide the depth). */
export function expectSameShape(ours: Shape, ref: Shape, what: string): void {
  const a = JSON.stringify(ours);
  const b = JSON.stringify(ref);
  if (a === b) return;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 80);
  throw new Error(
    `${what}: first difference at character ${i}\n  proxy:   …${a.slice(from, i + 160)}\n  libxml2: …${b.slice(from, i + 160)}`,
  );
}
