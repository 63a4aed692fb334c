import { expect } from 'chai';
import { parseXml, serializeStandalone, XmlRejected, DEFAULT_XML_LIMITS, childElements } from './xml';

function rejection(text: string, limits = DEFAULT_XML_LIMITS): XmlRejected {
  try {
    parseXml(text, limits);
  } catch (e) {
    if (e instanceof XmlRejected) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('soap/xml: hardened parse', () => {
  it('refuses DOCTYPE, entities, processing instructions and comments', () => {
    expect(rejection('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>').kind).to.equal('forbidden');
    expect(rejection('<a>&undefined;</a>').kind).to.equal('malformed');
    expect(rejection('<a><?pi data?></a>').kind).to.equal('forbidden');
    expect(rejection('<a><!-- c --></a>').kind).to.equal('forbidden');
  });

  it('enforces depth, attribute and name limits while parsing', () => {
    const limits = { ...DEFAULT_XML_LIMITS, maxDepth: 10, maxAttributes: 3, maxNameLength: 20 };
    expect(rejection('<a>'.repeat(11) + '</a>'.repeat(11), limits).message).to.contain('deeper than 10');
    expect(rejection('<a b="1" c="2" d="3" e="4"/>', limits).message).to.contain('more than 3 attributes');
    expect(rejection(`<${'n'.repeat(21)}/>`, limits).message).to.contain('longer than 20');
  });

  it('refuses non-UTF-8 declarations and garbage', () => {
    expect(rejection('<?xml version="1.0" encoding="ISO-8859-1"?><a/>').message).to.contain('UTF-8');
    expect(rejection('\u0000\u0001garbage').kind).to.equal('malformed');
    expect(rejection('<a><b></a>').kind).to.equal('malformed');
  });

  it('stays usable after a rejection (the reused parser is replaced)', () => {
    rejection('<a><b></a>');
    expect(parseXml('<ok xmlns="urn:x"/>').uri).to.equal('urn:x');
  });

  it('serializes a payload with the namespaces it inherits', () => {
    const root = parseXml(
      '<e xmlns:p="urn:p" xmlns:q="urn:q"><w><p:a q:k="1"><p:b>t&amp;</p:b></p:a></w></e>',
    );
    const payload = childElements(childElements(root)[0]!)[0]!;
    const text = serializeStandalone(payload);
    expect(text).to.equal('<p:a xmlns:p="urn:p" xmlns:q="urn:q" q:k="1"><p:b>t&amp;</p:b></p:a>');
    expect(parseXml(text).uri).to.equal('urn:p');
  });
});
