/**
 * saxes, a strict namespace-aware SAX parser, configured with the proxy's refusals, as the
 * reference the fast scanner is compared against. It is far slower, which is why the proxy
 * does not use it, but it is independently written and conformance-tested.
 */
import { SaxesParser } from 'saxes';
import type { XmlAttr, XmlElement } from '../../src/soap/xml';

/**
 * A QName part that starts with a NameChar that is not a NameStartChar (a digit, '-', '.', …):
 * saxes lets it through, Namespaces in XML 1.0 (NCName) and libxml2 do not.
 */
// eslint-disable-next-line no-misleading-character-class -- ranges of combining marks, as XML defines them
const NOT_NCNAME_START = /^[-.0-9\u00B7\u0300-\u036F\u203F-\u2040]/u;

function checkNcNames(...parts: string[]): void {
  for (const p of parts) if (NOT_NCNAME_START.test(p)) throw new Error(`'${p}' is not an NCName`);
}

export function saxesParse(text: string, allowComments = false): XmlElement {
  const parser = new SaxesParser({ xmlns: true, position: false });
  let root: XmlElement | null = null;
  let current: XmlElement | null = null;
  const refuse = (what: string) => () => {
    throw new Error(`${what} refused`);
  };
  parser.on('doctype', refuse('doctype'));
  parser.on('processinginstruction', refuse('pi'));
  if (!allowComments) parser.on('comment', refuse('comment'));
  parser.on('opentag', (tag) => {
    checkNcNames(tag.prefix, tag.local);
    const attrs: XmlAttr[] = [];
    let nsDecls: Record<string, string> | null = null;
    for (const key in tag.attributes) {
      const a = tag.attributes[key]!;
      checkNcNames(a.prefix, a.local);
      if (a.prefix === 'xmlns' || (a.prefix === '' && a.local === 'xmlns')) {
        nsDecls ??= {};
        nsDecls[a.prefix === 'xmlns' ? a.local : ''] = a.value;
      } else attrs.push({ uri: a.uri, local: a.local, prefix: a.prefix, value: a.value });
    }
    const el: XmlElement = {
      uri: tag.uri,
      local: tag.local,
      prefix: tag.prefix,
      attrs,
      nsDecls,
      children: [],
      parent: current,
    };
    if (current) current.children.push(el);
    else root = el;
    current = el;
  });
  parser.on('closetag', () => {
    current = current ? current.parent : null;
  });
  const onText = (t: string): void => {
    if (!current) return;
    const last = current.children[current.children.length - 1];
    // Adjacent text and CDATA are one text run in the data model.
    if (typeof last === 'string') current.children[current.children.length - 1] = last + t;
    else current.children.push(t);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.write(text).close();
  if (!root) throw new Error('no root');
  return root;
}
