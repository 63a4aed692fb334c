/**
 * Compiles the subset of XML Schema our contract uses (sequence, choice, any, element
 * occurrences, simple-type restrictions) into per-element decoders and encoders.
 * Decoding is also validation: anything the schema does not allow is refused with a path,
 * so a handler only ever sees well-typed values.
 */
import { readFileSync } from 'node:fs';
import { GatewayError } from '../errors/catalogue';
import {
  childElements,
  escapeText,
  lookupPrefix,
  parseXml,
  serializeStandalone,
  textOf,
  type XmlElement,
} from './xml';

export const XS = 'http://www.w3.org/2001/XMLSchema';

type Builtin = 'string' | 'int' | 'long' | 'boolean' | 'base64Binary' | 'unsignedInt' | 'dateTime';
const BUILTINS = new Set<string>([
  'string',
  'int',
  'long',
  'boolean',
  'base64Binary',
  'unsignedInt',
  'dateTime',
]);

interface SimpleType {
  kind: 'simple';
  name: string;
  base: Builtin;
  enums?: Set<string>;
  min?: number;
  max?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
}

interface ElementParticle {
  kind: 'element';
  name: string;
  ns: string;
  type: TypeDef;
  min: number;
  max: number;
}
interface GroupParticle {
  kind: 'sequence' | 'choice';
  items: Particle[];
}
interface AnyParticle {
  kind: 'any';
}
/**
 * A reference to a global element of another namespace (for example wsa:EndpointReference): its
 * value is the element as XML text, written and read whole, because its schema is not ours.
 */
interface ForeignParticle {
  kind: 'foreign';
  name: string;
  ns: string;
  min: number;
  max: number;
}
type Particle = ElementParticle | GroupParticle | AnyParticle | ForeignParticle;

interface ComplexType {
  kind: 'complex';
  name: string;
  content: GroupParticle | null;
  /** A sequence holding exactly one xs:any: its value is the serialized element. */
  anyPayload: boolean;
}

type TypeDef = SimpleType | ComplexType;

/** Values produced by decoding: plain JSON-like data plus Buffers for base64Binary. */
export type Decoded = string | number | boolean | Buffer | Decoded[] | DecodedFields;
/** A decoded complex element: what every operation's request element decodes to. */
export type DecodedFields = { [k: string]: Decoded };

export function isDecodedFields(v: Decoded): v is DecodedFields {
  return typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export interface ElementCodec {
  name: string;
  ns: string;
  decode(el: XmlElement): Decoded;
  /** The element with its content; the root declares the schema namespace as prefix `sym`. */
  encode(value: unknown): string;
  /** Other SOAPActions clients send for this request (spellings of a standard's action in the wild). */
  actionAliases?: readonly string[];
}

function bad(path: string, msg: string): GatewayError {
  return new GatewayError('SSP_INVALID_ARGUMENT', `${path}: ${msg}`);
}

const INT_RE = /^[+-]?\d+$/;

function parseSimple(t: SimpleType, raw: string, path: string): Decoded {
  let v: Decoded;
  switch (t.base) {
    case 'string':
      v = raw;
      break;
    case 'dateTime':
      v = raw.trim();
      if (Number.isNaN(Date.parse(v))) throw bad(path, `'${clip(raw)}' is not an xs:dateTime`);
      break;
    case 'boolean': {
      const s = raw.trim();
      if (s === 'true' || s === '1') v = true;
      else if (s === 'false' || s === '0') v = false;
      else throw bad(path, `'${clip(raw)}' is not an xs:boolean`);
      break;
    }
    case 'base64Binary': {
      const s = raw.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
        throw bad(path, 'is not valid base64');
      }
      v = Buffer.from(s, 'base64');
      break;
    }
    default: {
      const s = raw.trim();
      if (!INT_RE.test(s)) throw bad(path, `'${clip(raw)}' is not an xs:${t.base}`);
      const n = Number(s);
      const [lo, hi] =
        t.base === 'int'
          ? [-2147483648, 2147483647]
          : t.base === 'unsignedInt'
            ? [0, 4294967295]
            : [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
      if (n < lo || n > hi) throw bad(path, `${s} is out of range for xs:${t.base}`);
      v = n;
    }
  }
  if (t.enums && !t.enums.has(v as string)) {
    throw bad(path, `'${clip(raw)}' is not one of ${[...t.enums].join(', ')}`);
  }
  if (typeof v === 'number') {
    if (t.min !== undefined && v < t.min) throw bad(path, `${v} is less than ${t.min}`);
    if (t.max !== undefined && v > t.max) throw bad(path, `${v} is more than ${t.max}`);
  }
  if (typeof v === 'string') {
    if (t.minLength !== undefined && v.length < t.minLength) {
      throw bad(path, `must be at least ${t.minLength} characters`);
    }
    if (t.maxLength !== undefined && v.length > t.maxLength) {
      throw bad(path, `must be at most ${t.maxLength} characters`);
    }
    if (t.pattern && !t.pattern.test(v)) throw bad(path, `'${clip(raw)}' does not match the allowed pattern`);
  }
  return v;
}

function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}

function formatSimple(t: SimpleType, v: unknown): string {
  if (t.base === 'base64Binary') {
    return Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v).toString('base64') : String(v);
  }
  if (t.base === 'boolean') return v ? 'true' : 'false';
  return escapeText(String(v));
}

/** A loaded schema: named types and global elements of one target namespace. */
export class Schema {
  readonly targetNamespace: string;
  private readonly simpleTypes = new Map<string, SimpleType>();
  private readonly complexTypes = new Map<string, ComplexType>();
  private readonly typeNodes = new Map<string, XmlElement>();
  private readonly elementNodes = new Map<string, XmlElement>();
  private readonly codecs = new Map<string, ElementCodec>();

  constructor(xsdText: string) {
    const root = parseXml(xsdText, undefined, { allowComments: true });
    if (root.uri !== XS || root.local !== 'schema') throw new Error('not an XML Schema document');
    this.targetNamespace = root.attrs.find((a) => a.local === 'targetNamespace')?.value ?? '';
    for (const c of childElements(root)) {
      const name = attr(c, 'name');
      if (!name) continue;
      if (c.local === 'simpleType' || c.local === 'complexType') this.typeNodes.set(name, c);
      else if (c.local === 'element') this.elementNodes.set(name, c);
    }
  }

  static fromFile(path: string): Schema {
    return new Schema(readFileSync(path, 'utf8'));
  }

  elementNames(): string[] {
    return [...this.elementNodes.keys()];
  }

  codec(elementName: string): ElementCodec {
    let c = this.codecs.get(elementName);
    if (!c) {
      const node = this.elementNodes.get(elementName);
      if (!node) throw new Error(`schema has no global element ${elementName}`);
      c = this.buildCodec(elementName, this.elementType(node));
      this.codecs.set(elementName, c);
    }
    return c;
  }

  // ---- model building ----------------------------------------------------------------

  private elementType(node: XmlElement): TypeDef {
    const typeRef = attr(node, 'type');
    if (typeRef) return this.resolveType(node, typeRef);
    const inline = childElements(node).find((c) => c.local === 'complexType' || c.local === 'simpleType');
    if (!inline) return { kind: 'simple', name: 'string', base: 'string' };
    return inline.local === 'complexType'
      ? this.buildComplex(`${attr(node, 'name')}#inline`, inline)
      : this.buildSimple(`${attr(node, 'name')}#inline`, inline);
  }

  private resolveType(ctx: XmlElement, qname: string): TypeDef {
    const [prefix, local] = qname.includes(':') ? qname.split(':', 2) : ['', qname];
    const uri = lookupPrefix(ctx, prefix!) ?? '';
    if (uri === XS) {
      if (!BUILTINS.has(local!)) throw new Error(`unsupported built-in type xs:${local}`);
      return { kind: 'simple', name: local!, base: local as Builtin };
    }
    if (uri !== this.targetNamespace) throw new Error(`type ${qname} is outside the schema namespace`);
    const known = this.simpleTypes.get(local!) ?? this.complexTypes.get(local!);
    if (known) return known;
    const node = this.typeNodes.get(local!);
    if (!node) throw new Error(`unknown type ${qname}`);
    return node.local === 'simpleType' ? this.buildSimple(local!, node) : this.buildComplex(local!, node);
  }

  private buildSimple(name: string, node: XmlElement): SimpleType {
    const r = childElements(node).find((c) => c.local === 'restriction');
    if (!r) throw new Error(`simple type ${name}: only restrictions are supported`);
    const base = this.resolveType(r, attr(r, 'base') ?? 'xs:string');
    if (base.kind !== 'simple') throw new Error(`simple type ${name} restricts a complex type`);
    const t: SimpleType = { ...base, name, kind: 'simple' };
    for (const f of childElements(r)) {
      const v = attr(f, 'value') ?? '';
      switch (f.local) {
        case 'enumeration':
          (t.enums ??= new Set()).add(v);
          break;
        case 'minInclusive':
          t.min = Number(v);
          break;
        case 'maxInclusive':
          t.max = Number(v);
          break;
        case 'minLength':
          t.minLength = Number(v);
          break;
        case 'maxLength':
          t.maxLength = Number(v);
          break;
        case 'pattern':
          // XSD patterns are implicitly anchored.
          t.pattern = new RegExp(`^(?:${v})$`, 'u');
          break;
      }
    }
    this.simpleTypes.set(name, t);
    return t;
  }

  private buildComplex(name: string, node: XmlElement): ComplexType {
    const t: ComplexType = { kind: 'complex', name, content: null, anyPayload: false };
    this.complexTypes.set(name, t);
    const group = childElements(node).find((c) => c.local === 'sequence' || c.local === 'choice');
    if (group) {
      t.content = this.buildGroup(group);
      t.anyPayload = t.content.items.length === 1 && t.content.items[0]!.kind === 'any';
    }
    return t;
  }

  private buildGroup(node: XmlElement): GroupParticle {
    const items: Particle[] = [];
    for (const c of childElements(node)) {
      const ref = c.local === 'element' ? attr(c, 'ref') : undefined;
      if (ref !== undefined) {
        const [prefix, local] = ref.includes(':') ? ref.split(':', 2) : ['', ref];
        const ns = lookupPrefix(c, prefix!) ?? '';
        if (ns === this.targetNamespace) {
          const global = this.elementNodes.get(local!);
          if (!global) throw new Error(`element ref ${ref}: no such global element`);
          items.push({
            kind: 'element',
            name: local!,
            ns,
            type: this.elementType(global),
            min: Number(attr(c, 'minOccurs') ?? 1),
            max: occurs(attr(c, 'maxOccurs')),
          });
          continue;
        }
        items.push({
          kind: 'foreign',
          name: local!,
          ns,
          min: Number(attr(c, 'minOccurs') ?? 1),
          max: occurs(attr(c, 'maxOccurs')),
        });
      } else if (c.local === 'element') {
        items.push({
          kind: 'element',
          name: attr(c, 'name')!,
          ns: this.targetNamespace,
          type: this.elementType(c),
          min: Number(attr(c, 'minOccurs') ?? 1),
          max: occurs(attr(c, 'maxOccurs')),
        });
      } else if (c.local === 'sequence' || c.local === 'choice') {
        items.push(this.buildGroup(c));
      } else if (c.local === 'any') {
        items.push({ kind: 'any' });
      }
    }
    return { kind: node.local as 'sequence' | 'choice', items };
  }

  // ---- codecs --------------------------------------------------------------------------

  private buildCodec(name: string, type: TypeDef): ElementCodec {
    const ns = this.targetNamespace;
    return {
      name,
      ns,
      decode: (el) => {
        if (el.uri !== ns || el.local !== name) {
          throw bad(`/${el.local}`, `expected element {${ns}}${name}`);
        }
        return this.decodeValue(el, type, `/${name}`);
      },
      encode: (value) => {
        const inner = this.encodeContent(type, value);
        return inner === ''
          ? `<sym:${name} xmlns:sym="${ns}"/>`
          : `<sym:${name} xmlns:sym="${ns}">${inner}</sym:${name}>`;
      },
    };
  }

  private decodeValue(el: XmlElement, type: TypeDef, path: string): Decoded {
    if (type.kind === 'simple') {
      for (const c of el.children) {
        if (typeof c !== 'string') throw bad(path, `element ${c.local} is not allowed in a simple value`);
      }
      return parseSimple(type, textOf(el), path);
    }
    const kids: XmlElement[] = [];
    for (const c of el.children) {
      if (typeof c !== 'string') kids.push(c);
      else if (c.trim() !== '') throw bad(path, 'text is not allowed here');
    }
    if (type.anyPayload) {
      if (kids.length !== 1) throw bad(path, 'must contain exactly one XML element');
      const payload = kids[0]!;
      if (payload.uri === '' || payload.uri === this.targetNamespace) {
        throw bad(`${path}/${payload.local}`, 'the payload element must be in its own namespace');
      }
      return serializeStandalone(payload);
    }
    const out: { [k: string]: Decoded } = {};
    const next = type.content ? this.match(type.content, kids, 0, out, path) : 0;
    if (next < kids.length) {
      const k = kids[next]!;
      throw bad(
        path,
        `unexpected element ${k.local}${k.uri !== this.targetNamespace ? ` in {${k.uri}}` : ''}`,
      );
    }
    return out;
  }

  /** Matches a particle against children from index i; returns the next unconsumed index. */
  private match(
    p: Particle,
    kids: XmlElement[],
    i: number,
    out: { [k: string]: Decoded },
    path: string,
  ): number {
    if (p.kind === 'element') {
      const many = p.max > 1;
      const list: Decoded[] = [];
      let n = 0;
      while (n < p.max && i < kids.length && kids[i]!.local === p.name && kids[i]!.uri === p.ns) {
        const value = this.decodeValue(
          kids[i]!,
          p.type,
          many ? `${path}/${p.name}[${n + 1}]` : `${path}/${p.name}`,
        );
        if (many) list.push(value);
        else out[p.name] = value;
        i++;
        n++;
      }
      if (n < p.min) throw bad(path, `missing element ${p.name}`);
      if (many) out[p.name] = list;
      if (n === p.max && i < kids.length && kids[i]!.local === p.name && kids[i]!.uri === p.ns) {
        throw bad(path, `more than ${p.max} ${p.name} elements`);
      }
      return i;
    }
    if (p.kind === 'foreign') {
      const list: Decoded[] = [];
      while (list.length < p.max && i < kids.length && kids[i]!.local === p.name && kids[i]!.uri === p.ns) {
        list.push(serializeStandalone(kids[i]!));
        i++;
      }
      if (list.length < p.min) throw bad(path, `missing element {${p.ns}}${p.name}`);
      if (list.length > 0) out[p.name] = p.max > 1 ? list : list[0]!;
      return i;
    }
    if (p.kind === 'sequence') {
      for (const item of p.items) i = this.match(item, kids, i, out, path);
      return i;
    }
    if (p.kind === 'choice') {
      const k = kids[i];
      for (const item of p.items) {
        if (item.kind === 'element' && k && k.local === item.name && k.uri === item.ns) {
          return this.match(item, kids, i, out, path);
        }
      }
      const names = p.items.map((x) => (x.kind === 'element' ? x.name : x.kind)).join(', ');
      throw bad(path, `expected one of ${names}`);
    }
    throw bad(path, 'xs:any is only supported as a whole payload');
  }

  private encodeContent(type: TypeDef, value: unknown): string {
    if (type.kind === 'simple') return formatSimple(type, value);
    if (type.anyPayload) return typeof value === 'string' ? value : '';
    if (!type.content || value === null || typeof value !== 'object') return '';
    return this.encodeParticle(type.content, value as Record<string, unknown>);
  }

  private encodeParticle(p: Particle, obj: Record<string, unknown>): string {
    if (p.kind === 'foreign') {
      // The handler built this element itself (it declares its own namespaces).
      const v = obj[p.name];
      if (typeof v === 'string') return v;
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').join('') : '';
    }
    if (p.kind === 'element') {
      const v = obj[p.name];
      if (v === undefined || v === null) return '';
      const one = (x: unknown): string => {
        const inner = this.encodeContent(p.type, x);
        return inner === '' && p.type.kind === 'complex'
          ? `<sym:${p.name}/>`
          : `<sym:${p.name}>${inner}</sym:${p.name}>`;
      };
      if (Array.isArray(v)) {
        let s = '';
        for (const x of v) s += one(x);
        return s;
      }
      return one(v);
    }
    if (p.kind === 'sequence') {
      let s = '';
      for (const item of p.items) s += this.encodeParticle(item, obj);
      return s;
    }
    if (p.kind === 'choice') {
      for (const item of p.items) {
        if (item.kind === 'element' && obj[item.name] !== undefined) return this.encodeParticle(item, obj);
      }
    }
    return '';
  }
}

function attr(el: XmlElement, name: string): string | undefined {
  for (const a of el.attrs) if (a.local === name && a.uri === '') return a.value;
  return undefined;
}

function occurs(v: string | undefined): number {
  if (v === undefined) return 1;
  return v === 'unbounded' ? Number.POSITIVE_INFINITY : Number(v);
}
