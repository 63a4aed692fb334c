import { expect } from 'chai';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCHEMA_DIR } from '../paths';
import { PayloadSchema } from './payload-schema';

type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });

const V1 = 'urn:example:mathserver:v1';
const V2 = 'urn:example:mathserver:v2';
const XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema"';

const add1 = (a: string, b: string) => `<m:add xmlns:m="${V1}"><m:a>${a}</m:a><m:b>${b}</m:b></m:add>`;
const add2 = (n: number) =>
  `<m:add xmlns:m="${V2}">${Array.from({ length: n }, (_, i) => `<m:operand>${i}</m:operand>`).join('')}</m:add>`;

/** Something from /etc/passwd that must never show up in a message. */
const PASSWD = existsSync('/etc/passwd') ? readFileSync('/etc/passwd', 'utf8').split('\n')[0]! : 'root:x:0:0';

async function compileError(file: string): Promise<string> {
  try {
    const s = await PayloadSchema.compile(file);
    s.dispose();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`${file} compiled`);
}

describe('policy/payload-schema: typed-XML payload validation', () => {
  let v1: PayloadSchema;
  let v2: PayloadSchema;
  let dir: string;

  before(async () => {
    v1 = await PayloadSchema.compile(join(SCHEMA_DIR, 'payloads', 'mathserver-v1.xsd'));
    v2 = await PayloadSchema.compile(join(SCHEMA_DIR, 'payloads', 'mathserver-v2.xsd'));
    dir = mkdtempSync(join(tmpdir(), 'payload-schema-'));
  });

  after(() => {
    v1.dispose();
    v2.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  function write(rel: string, text: string): string {
    const file = join(dir, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  describe('the MathServer example schemas', () => {
    it('accept valid inputs and outputs of both versions', () => {
      expect(v1.file).to.equal(join(SCHEMA_DIR, 'payloads', 'mathserver-v1.xsd'));
      expect(v1.validate(add1('1', '2'))).to.equal(null);
      expect(v1.validate(`<add xmlns="${V1}">\n  <a>-5</a>\n  <b>2147483647</b>\n</add>`)).to.equal(null);
      expect(v1.validate(`<m:sum xmlns:m="${V1}"><m:value>99999999999</m:value></m:sum>`)).to.equal(null);
      expect(v2.validate(add2(2))).to.equal(null);
      expect(v2.validate(add2(100))).to.equal(null);
      expect(v2.validate(`<m:sum xmlns:m="${V2}"><m:value>3</m:value></m:sum>`)).to.equal(null);
    });

    it('name the first error and its line', () => {
      const cases: [PayloadSchema, string, string][] = [
        [
          v1,
          add1('1', 'x'),
          `line 1: Element '{${V1}}b': 'x' is not a valid value of the atomic type 'xs:int'.`,
        ],
        [
          v1,
          add1('x', 'y'),
          `line 1: Element '{${V1}}a': 'x' is not a valid value of the atomic type 'xs:int'.`,
        ],
        [
          v1,
          `<m:add xmlns:m="${V1}"><m:a>1</m:a></m:add>`,
          `line 1: Element '{${V1}}add': Missing child element(s). Expected is ( {${V1}}b ).`,
        ],
        [
          v1,
          `<m:add xmlns:m="${V1}"><m:a>1</m:a><m:b>2</m:b><m:c/></m:add>`,
          `line 1: Element '{${V1}}c': This element is not expected.`,
        ],
        [
          v1,
          add2(2),
          `line 1: Element '{${V2}}add': No matching global declaration available for the validation root.`,
        ],
        [
          v1,
          `<m:add xmlns:m="${V1}">\n<m:a>1</m:a>\n<m:b>2.5</m:b>\n</m:add>`,
          `line 3: Element '{${V1}}b': '2.5' is not a valid value of the atomic type 'xs:int'.`,
        ],
        [
          v1,
          `<m:sum xmlns:m="${V1}"><m:value>99999999999999999999</m:value></m:sum>`,
          `line 1: Element '{${V1}}value': '99999999999999999999' is not a valid value of the atomic type 'xs:long'.`,
        ],
        [
          v2,
          add2(1),
          `line 1: Element '{${V2}}add': Missing child element(s). Expected is ( {${V2}}operand ).`,
        ],
        [v2, add2(101), `line 1: Element '{${V2}}operand': This element is not expected.`],
      ];
      for (const [schema, xml, problem] of cases) expect(schema.validate(xml), xml).to.equal(problem);
    });

    it('report XML that is not well-formed, with its line', () => {
      expect(v1.validate(`<m:add xmlns:m="${V1}">\n<m:a>1</m:b></m:add>`)).to.equal(
        'line 2: Opening and ending tag mismatch: a line 2 and b',
      );
      expect(v1.validate(`${add1('1', '2')}<m:add/>`)).to.equal(
        'line 1: Extra content at the end of the document',
      );
      expect(v1.validate(`<m:add xmlns:m="${V1}"><m:a>&e;</m:a><m:b>2</m:b></m:add>`)).to.equal(
        "line 1: Entity 'e' not defined",
      );
      expect(v1.validate('<n:add><n:a>1</n:a></n:add>')).to.match(
        /^line 1: Namespace prefix n on add is not defined/,
      );
      expect(v1.validate('')).to.equal('line 1: the payload is empty');
      expect(v1.validate('  \n')).to.equal('line 1: the payload is empty');
    });

    it('keep a long offending value out of the message', () => {
      expect(v1.validate(add1('1', '9'.repeat(1000)))).to.equal(
        `line 1: Element '{${V1}}b': '${'9'.repeat(40)}…' is not a valid value of the atomic type 'xs:int'.`,
      );
      // libxml2 itself cuts this one short, before the closing quote
      expect(v1.validate(add1('1', '9'.repeat(100_000)))).to.equal(
        `line 1: Element '{${V1}}b': '${'9'.repeat(40)}…`,
      );
    });
  });

  describe('untrusted payloads', () => {
    it('refuse a DOCTYPE before libxml2 reads it, so external entities are never loaded', () => {
      const xxe = `<!DOCTYPE m:add [<!ENTITY e SYSTEM "file:///etc/passwd">]>${add1('&e;', '2')}`;
      expect(v1.validate(xxe)).to.equal('line 1: a DOCTYPE is not allowed in a payload');
      const later = `<?xml version="1.0"?>\n<!-- x -->\n<!DOCTYPE m:add SYSTEM "/etc/passwd">\n${add1('1', '2')}`;
      expect(v1.validate(later)).to.equal('line 3: a DOCTYPE is not allowed in a payload');
      const laughs = `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>${add1('&b;', '1')}`;
      expect(v1.validate(laughs)).to.equal('line 1: a DOCTYPE is not allowed in a payload');
      // a DOCTYPE that is not in the prolog is no longer a DOCTYPE to libxml2, only bad XML
      const inner = `<m:add xmlns:m="${V1}"><!DOCTYPE x SYSTEM "/etc/passwd"><m:a>1</m:a></m:add>`;
      const problem = v1.validate(inner)!;
      expect(problem).to.match(/^line 1: /);
      for (const p of [xxe, later, laughs, inner]) expect(v1.validate(p)).not.to.include(PASSWD);
    });

    it('do not act on XInclude and ignore the encoding declaration of an already-decoded string', () => {
      const xi = `<m:add xmlns:m="${V1}" xmlns:xi="http://www.w3.org/2001/XInclude"><m:a><xi:include href="/etc/passwd" parse="text"/></m:a><m:b>2</m:b></m:add>`;
      const problem = v1.validate(xi)!;
      expect(problem).to.equal(
        `line 1: Element '{${V1}}a': Element content is not allowed, because the type definition is simple.`,
      );
      expect(v1.validate(`<?xml version="1.0" encoding="UTF-16"?>${add1('1', '2')}`)).to.equal(null);
      expect(v1.validate(`<?xml version="1.0" encoding="ISO-8859-1"?>${add1('1', '\u00e9')}`)).to.equal(
        `line 1: Element '{${V1}}b': '\u00e9' is not a valid value of the atomic type 'xs:int'.`,
      );
    });
  });

  describe('xs:include and xs:import', () => {
    const T = 'targetNamespace="urn:t" xmlns:t="urn:t" elementFormDefault="qualified"';

    it('load files under the schema directory, including subdirectories', async () => {
      write(
        'ok/types.xsd',
        `<xs:schema ${XS} ${T}><xs:simpleType name="Small"><xs:restriction base="xs:int"><xs:maxInclusive value="9"/></xs:restriction></xs:simpleType></xs:schema>`,
      );
      write(
        'ok/sub/other.xsd',
        `<xs:schema ${XS} targetNamespace="urn:o" elementFormDefault="qualified"><xs:element name="o" type="xs:string"/></xs:schema>`,
      );
      const main = write(
        'ok/main.xsd',
        `<xs:schema ${XS} ${T} xmlns:o="urn:o">
  <xs:include schemaLocation="types.xsd"/>
  <xs:import namespace="urn:o" schemaLocation="sub/other.xsd"/>
  <xs:element name="r"><xs:complexType><xs:sequence>
    <xs:element name="n" type="t:Small"/><xs:element ref="o:o"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>`,
      );
      const s = await PayloadSchema.compile(main);
      try {
        expect(s.validate('<r xmlns="urn:t"><n>3</n><o:o xmlns:o="urn:o">x</o:o></r>')).to.equal(null);
        expect(s.validate('<r xmlns="urn:t"><n>30</n><o:o xmlns:o="urn:o">x</o:o></r>')).to.equal(
          "line 1: Element '{urn:t}n': [facet 'maxInclusive'] The value '30' is greater than the maximum value allowed ('9').",
        );
      } finally {
        s.dispose();
      }
    });

    it('refuse files outside the schema directory, by path, by symlink or by absolute name', async () => {
      write(
        'outside.xsd',
        `<xs:schema ${XS} ${T}><xs:simpleType name="Small"><xs:restriction base="xs:int"/></xs:simpleType></xs:schema>`,
      );
      const up = write(
        'up/main.xsd',
        `<xs:schema ${XS} ${T}>\n  <xs:include schemaLocation="../outside.xsd"/>\n</xs:schema>`,
      );
      const msg = await compileError(up);
      expect(msg).to.match(new RegExp(`^payload schema ${up}: line 2: `));
      expect(msg).to.include(
        `refused ${join(dir, 'outside.xsd')}: only files under ${join(dir, 'up')} are read`,
      );

      mkdirSync(join(dir, 'link'));
      symlinkSync(join(dir, 'outside.xsd'), join(dir, 'link', 'types.xsd'));
      const link = write(
        'link/main.xsd',
        `<xs:schema ${XS} ${T}><xs:include schemaLocation="types.xsd"/></xs:schema>`,
      );
      expect(await compileError(link)).to.include(
        `refused ${join(dir, 'link', 'types.xsd')}: only files under`,
      );

      const abs = write(
        'abs/main.xsd',
        `<xs:schema ${XS} ${T}><xs:include schemaLocation="/etc/passwd"/></xs:schema>`,
      );
      const absMsg = await compileError(abs);
      expect(absMsg).to.include('refused /etc/passwd: only files under');
      expect(absMsg).not.to.include(PASSWD);
    });

    it('never fetch over the network, even for an xs:import libxml2 would only warn about', async () => {
      const inc = write(
        'net/inc.xsd',
        `<xs:schema ${XS} ${T}><xs:include schemaLocation="http://127.0.0.1:9/x.xsd"/></xs:schema>`,
      );
      expect(await compileError(inc)).to.include('refused http://127.0.0.1:9/x.xsd: only files under');
      const imp = write(
        'net/imp.xsd',
        `<xs:schema ${XS} ${T}><xs:import namespace="urn:o" schemaLocation="http://127.0.0.1:9/o.xsd"/><xs:element name="r" type="xs:int"/></xs:schema>`,
      );
      expect(await compileError(imp)).to.equal(
        `payload schema ${imp}: refused http://127.0.0.1:9/o.xsd: only files under ${join(dir, 'net')} are read, never the network`,
      );
    });

    it('do not resolve external entities of an included schema outside the directory', async () => {
      write(
        'ent/types.xsd',
        `<!DOCTYPE xs:schema [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<xs:schema ${XS} ${T}><xs:annotation><xs:documentation>&e;</xs:documentation></xs:annotation></xs:schema>`,
      );
      const main = write(
        'ent/main.xsd',
        `<xs:schema ${XS} ${T}><xs:include schemaLocation="types.xsd"/></xs:schema>`,
      );
      const msg = await compileError(main);
      expect(msg).to.include('refused file:///etc/passwd');
      expect(msg).not.to.include(PASSWD);
    });

    it('name a missing included file', async () => {
      const main = write(
        'missing/main.xsd',
        `<xs:schema ${XS} ${T}><xs:include schemaLocation="nope.xsd"/></xs:schema>`,
      );
      expect(await compileError(main)).to.include(
        `cannot load ${join(dir, 'missing', 'nope.xsd')}: no such file`,
      );
    });
  });

  describe('compile errors', () => {
    it('name the file and the first error with its line', async () => {
      expect(await compileError('schemas/x.xsd')).to.equal(
        'payload schema schemas/x.xsd: the path must be absolute',
      );
      const missing = join(dir, 'does-not-exist.xsd');
      expect(await compileError(missing)).to.equal(`payload schema ${missing}: cannot read it (ENOENT)`);

      const broken = write('broken.xsd', `<xs:schema ${XS}>\n<xs:element name="a">\n</xs:schema>`);
      expect(await compileError(broken)).to.match(
        new RegExp(
          `^payload schema ${broken}: line 3: Opening and ending tag mismatch: element line 2 and schema$`,
        ),
      );

      const unresolved = write(
        'unresolved.xsd',
        `<xs:schema ${XS}>\n  <xs:element name="a" type="nope"/>\n</xs:schema>`,
      );
      expect(await compileError(unresolved)).to.match(
        new RegExp(`^payload schema ${unresolved}: line 2: .*The QName value 'nope' does not resolve`),
      );

      const notSchema = write('not-schema.xsd', '<foo/>');
      expect(await compileError(notSchema)).to.match(
        new RegExp(`^payload schema ${notSchema}: line \\d+: .*not a schema`),
      );
    });

    it('report an error in an included file with that file and line', async () => {
      write(
        'incerr/types.xsd',
        `<xs:schema ${XS} targetNamespace="urn:t">\n\n  <xs:element name="a" type="nope"/>\n</xs:schema>`,
      );
      const main = write(
        'incerr/main.xsd',
        `<xs:schema ${XS} targetNamespace="urn:t"><xs:include schemaLocation="types.xsd"/></xs:schema>`,
      );
      expect(await compileError(main)).to.match(
        new RegExp(`^payload schema ${main}: ${join(dir, 'incerr', 'types.xsd')} line 3: `),
      );
    });
  });

  describe('wasm memory', () => {
    it('frees every parsed payload, on valid, invalid and malformed input alike', async () => {
      const lib: Lib = await import('libxml2-wasm');
      const inputs = [
        add1('1', '2'),
        add1('1', 'x'),
        `<m:add xmlns:m="${V1}"><m:a>`,
        `<!DOCTYPE x>${add1('1', '2')}`,
      ];
      lib.diag.configure({ enabled: true });
      try {
        const s = await PayloadSchema.compile(join(SCHEMA_DIR, 'payloads', 'mathserver-v1.xsd'));
        for (let i = 0; i < 20_000; i++) s.validate(inputs[i % inputs.length]!);
        const live = (): Record<string, { totalInstances: number }> => lib.diag.report();
        // only the schema document and its validator are still alive
        expect(live()['XmlDocument']?.totalInstances).to.equal(1);
        expect(live()['XsdValidator']?.totalInstances).to.equal(1);
        s.dispose();
        s.dispose();
        expect(live()['XmlDocument']?.totalInstances ?? 0).to.equal(0);
        expect(live()['XsdValidator']?.totalInstances ?? 0).to.equal(0);
        expect(() => s.validate(add1('1', '2'))).to.throw(/is disposed/);
      } finally {
        lib.diag.configure({ enabled: false });
      }
    });

    it('does not grow while validating 20,000 payloads', () => {
      const inputs = [add1('1', '2'), add1('1', 'x'), `<m:add xmlns:m="${V1}"><m:a>`];
      for (let i = 0; i < 2_000; i++) v1.validate(inputs[i % inputs.length]!);
      // wasm memory is counted in `external` and never shrinks; 20,000 leaked documents are >15 MB
      const before = process.memoryUsage().external;
      for (let i = 0; i < 20_000; i++) v1.validate(inputs[i % inputs.length]!);
      expect(process.memoryUsage().external - before).to.be.below(6 * 1024 * 1024);
    });
  });
});
