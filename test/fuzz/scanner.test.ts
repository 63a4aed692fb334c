/**
 * Fuzz target 1: the proxy's XML scanner (strict UTF-8 decoding + src/soap/xml-scanner.ts, as
 * parseXmlBytes runs them on every request) against libxml2 on grammar-built, mutated documents.
 *
 * Property: both accept and build the same tree (names, namespaces, namespace declarations,
 * attributes, text), or both refuse. The proxy may refuse what libxml2 accepts only for the
 * deliberate, documented differences listed in `documentedRefusal`; it may never accept what
 * libxml2 refuses.
 */
import { expect } from 'chai';
import { xmlDocumentArb, type FuzzBytes } from './arbitraries';
import {
  expectSameShape,
  libxml2Parse,
  loadLibxml2,
  oursParse,
  ourShape,
  type Constructs,
  type Lib,
} from './libxml2';
import { fuzz, mochaTimeoutMs } from './runner';

/**
 * The deliberate differences, each documented (docs/security.md §2 step 1, the scanner's header
 * comment, src/soap/xml-scanner.test.ts): returns the name of the one that explains the proxy
 * refusing a document libxml2 accepts, or null when none does.
 */
function documentedRefusal(
  ours: { kind: string; why: string },
  c: Constructs,
  bytes: Uint8Array,
): string | null {
  // DOCTYPE (so entity declarations and references), processing instructions and comments are
  // refused outright by the proxy; libxml2 accepts them. Only when libxml2 saw one of them.
  if (ours.kind === 'forbidden' && (c.dtd || c.pi || c.comment || c.entityRef)) return 'forbidden construct';
  // A processing instruction whose target merely starts with 'xml' ('<?xml😀 …?>', a PI to
  // libxml2) is refused too, as a malformed XML declaration rather than as a PI.
  if (/malformed XML declaration/.test(ours.why) && c.pi) return 'forbidden construct';
  // The depth/attribute/name/element limits are enforced while parsing; libxml2's are higher.
  if (ours.kind === 'limit') return 'limit';
  // The proxy takes UTF-8 only: a declared other encoding (ISO-8859-1, UTF-16, even the alias
  // 'utf8') or a UTF-16 byte order mark is refused, while libxml2 decodes it.
  const head = Buffer.from(bytes.subarray(0, 200)).toString('latin1');
  if (/encoding \S+ is not supported; send UTF-8|the body is UTF-16/.test(ours.why)) return 'not UTF-8';
  if (
    /not well-formed UTF-8/.test(ours.why) &&
    /^(\xef\xbb\xbf)?<\?xml[^>]*encoding[ \t\r\n]*=[ \t\r\n]*["'](?!utf-8["'])/i.test(head)
  ) {
    return 'not UTF-8';
  }
  // XML 1.0 §2.8 allows only VersionNum '1.' [0-9]+; libxml2 accepts any version with a
  // warning ('Unsupported version'). Only when the declaration really carries another version.
  if (
    /malformed XML declaration/.test(ours.why) &&
    /^(\xef\xbb\xbf)?<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*["'](?!1\.[0-9]+["'])/.test(head)
  ) {
    return 'XML version other than 1.x';
  }
  return null;
}

/**
 * Checks libxml2 makes beyond XML 1.0 and Namespaces well-formedness, which the proxy does not
 * make. Each is excepted only when it is libxml2's sole complaint, and each is a reported finding:
 *
 * F1  a namespace name that is not a URI reference (a space in it, say): libxml2 reports
 *     "xmlns:p: '…' is not a valid URI" as an error; Namespaces in XML makes it a MUST but not a
 *     well-formedness constraint, and the proxy accepts it.
 * F2  xml:id (the xml:id 1.0 Recommendation, not XML 1.0): libxml2 refuses a value that is not an
 *     NCName and the same xml:id twice; the proxy's scanner accepts both. Its verifier treats
 *     xml:id as an id attribute and refuses a Reference to an id carried twice, so a repeated
 *     xml:id cannot make a signature ambiguous.
 */
const LAX_FINDINGS: [string, RegExp][] = [
  ['F1 namespace name not a URI', /^xmlns(:[^:]+)?: '.*' is not a valid URI$/s],
  ['F2 xml:id', /^(xml:id : attribute value .* is not an NCName|ID .* already defined)$/s],
];

/** The finding that explains every error libxml2 reported, or null. */
function knownLaxFinding(errors: { message: string; level: number }[]): string | null {
  const errs = errors.filter((e) => e.level >= 2);
  if (errs.length === 0) return null;
  const labels = new Set<string>();
  for (const e of errs) {
    const hit = LAX_FINDINGS.find(([, re]) => re.test(e.message));
    if (!hit) return null;
    labels.add(hit[0]);
  }
  return [...labels].sort().join(' + ');
}

describe('fuzz: XML scanner against libxml2', function () {
  this.timeout(mochaTimeoutMs());
  let lib: Lib;
  before(async () => {
    lib = await loadLibxml2();
  });

  it('agrees with libxml2 on accept/reject and on the tree', async () => {
    const stats = { bothAccept: 0, bothRefuse: 0, exceptions: {} as Record<string, number> };
    const check = (input: FuzzBytes): void => {
      const bytes = input.bytes;
      const ref = libxml2Parse(lib, bytes);
      try {
        const ours = oursParse(bytes, false);
        if (!ref.ok) {
          const lax = ours.ok ? knownLaxFinding(ref.errors) : null;
          if (lax) {
            // See LAX_FINDINGS. libxml2-wasm discards the document on any error, even in
            // recovery mode, so there is no libxml2 tree to compare in this case.
            stats.exceptions[lax] = (stats.exceptions[lax] ?? 0) + 1;
            return;
          }
          expect(ours.ok, `the proxy accepted what libxml2 refuses (${ref.why})`).to.equal(false);
          stats.bothRefuse++;
          return;
        }
        if (ours.ok) {
          expectSameShape(ourShape(ours.root), ref.shape, 'the trees differ');
          stats.bothAccept++;
          return;
        }
        const why = documentedRefusal(ours, ref.constructs, bytes);
        expect(why, `the proxy refused (${ours.kind}: ${ours.why}) what libxml2 accepts`).to.not.equal(null);
        stats.exceptions[why!] = (stats.exceptions[why!] ?? 0) + 1;
        // Comments only: with comments allowed (as for the proxy's own WSDL and XSDs) the tree
        // must then be libxml2's.
        if (
          !ref.constructs.dtd &&
          !ref.constructs.pi &&
          !ref.constructs.entityRef &&
          ref.constructs.comment
        ) {
          const again = oursParse(bytes, true);
          if (again.ok)
            expectSameShape(ourShape(again.root), ref.shape, 'the trees differ (comments allowed)');
          else {
            const why2 = documentedRefusal(again, ref.constructs, bytes);
            expect(why2, `with comments allowed the proxy refused (${again.why})`).to.not.equal(null);
            expect(why2).to.not.equal('forbidden construct');
          }
        }
      } finally {
        if (ref.ok) ref.doc.dispose();
      }
    };
    await fuzz(xmlDocumentArb, check, {
      name: 'scanner vs libxml2',
      seed: 0x5ca77e1,
      stats: () =>
        `both accept ${stats.bothAccept}, both refuse ${stats.bothRefuse}, documented refusals ${JSON.stringify(stats.exceptions)}`,
    });
    expect(stats.bothAccept, 'the generator must produce documents both accept').to.be.greaterThan(0);
  });
});
