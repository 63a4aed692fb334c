/**
 * Exclusive XML Canonicalization 1.0 (without comments) over the tree our hardened parser
 * already built, so a signed request is parsed once and canonicalized without a second DOM.
 * The parser refuses comments, processing instructions and DOCTYPE, so the only node kinds
 * left are elements, attributes, namespace declarations and text — the subset c14n needs.
 *
 * https://www.w3.org/TR/xml-exc-c14n/ — a namespace is rendered on an element when the element
 * or one of its attributes visibly uses it (or it is in the InclusiveNamespaces PrefixList) and
 * the nearest rendered ancestor did not already render the same binding.
 */
import { lookupPrefix, type XmlElement } from '../soap/xml';

/** Rendered prefix → uri bindings of the output ancestors; '' is the default namespace. */
type Rendered = ReadonlyMap<string, string>;
const NOTHING_RENDERED: Rendered = new Map([['', '']]);

export function excC14n(el: XmlElement, inclusivePrefixes: readonly string[] = []): string {
  const out: string[] = [];
  const inclusive = inclusivePrefixes.map((p) => (p === '#default' ? '' : p));
  render(el, NOTHING_RENDERED, inclusive, out);
  return out.join('');
}

function render(el: XmlElement, rendered: Rendered, inclusive: readonly string[], out: string[]): void {
  let decls: [string, string][] | null = null;
  let scope: Map<string, string> | null = null;
  const want = (prefix: string, uri: string): void => {
    if (prefix === 'xml') return;
    const current = (scope ?? rendered).get(prefix);
    // An empty default namespace counts as already rendered at the apex.
    if (current === uri || (current === undefined && prefix === '' && uri === '')) return;
    scope ??= new Map(rendered);
    scope.set(prefix, uri);
    (decls ??= []).push([prefix, uri]);
  };
  want(el.prefix, el.uri);
  for (const a of el.attrs) if (a.prefix) want(a.prefix, a.uri);
  for (const p of inclusive) {
    const uri = p === el.prefix ? el.uri : lookupPrefix(el, p);
    if (uri !== undefined) want(p, uri);
  }

  const name = el.prefix ? `${el.prefix}:${el.local}` : el.local;
  let s = '<' + name;
  if (decls) {
    (decls as [string, string][]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [p, uri] of decls as [string, string][]) {
      s += (p ? ` xmlns:${p}="` : ' xmlns="') + escapeAttr(uri) + '"';
    }
  }
  if (el.attrs.length === 1) {
    const a = el.attrs[0]!;
    s += ` ${a.prefix ? a.prefix + ':' : ''}${a.local}="${escapeAttr(a.value)}"`;
  } else if (el.attrs.length > 1) {
    const sorted = [...el.attrs].sort((a, b) =>
      a.uri !== b.uri ? (a.uri < b.uri ? -1 : 1) : a.local < b.local ? -1 : a.local > b.local ? 1 : 0,
    );
    for (const a of sorted) s += ` ${a.prefix ? a.prefix + ':' : ''}${a.local}="${escapeAttr(a.value)}"`;
  }
  out.push(s + '>');
  const childScope: Rendered = scope ?? rendered;
  for (const c of el.children) {
    if (typeof c === 'string') out.push(escapeText(c));
    else render(c, childScope, inclusive, out);
  }
  out.push(`</${name}>`);
}

function escapeText(s: string): string {
  return /[&<>\r]/.test(s)
    ? s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#xD;')
    : s;
}

function escapeAttr(s: string): string {
  return /[&<"\t\n\r]/.test(s)
    ? s
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/"/g, '&quot;')
        .replace(/\t/g, '&#x9;')
        .replace(/\n/g, '&#xA;')
        .replace(/\r/g, '&#xD;')
    : s;
}
