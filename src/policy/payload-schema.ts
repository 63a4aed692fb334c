/**
 * Validates typed-XML task payloads (the one element inside `<xml>`) against an operator's XSD,
 * with libxml2 (libxml2-wasm). The payload is untrusted: it is parsed without DTDs, external
 * entities or network, and a DOCTYPE is refused before libxml2 sees it. The schema may
 * xs:include / xs:import files under its own directory, and nothing else.
 */
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });
type XmlDoc = InstanceType<Lib['XmlDocument']>;
type Validator = InstanceType<Lib['XsdValidator']>;
type ErrorDetail = InstanceType<Lib['XmlLibError']>['details'][number];

/** libxml2's xmlErrorLevel for an error (1 is a warning). */
const LEVEL_ERROR = 2;
/** libxml2 quotes offending values in full; a client needs the gist, not its payload back. */
const MAX_QUOTED = 40;
const MAX_MESSAGE = 300;
/** Quoted pairs, left to right; '{uri}name' is a name and stays whole. */
const QUOTED = /'([^']*)'/g;

/** Set only for the synchronous stretch of one compile(), so payload parses can never load a file. */
interface LoadGate {
  root: string;
  /** Why a load did not happen, first one first. */
  failures: string[];
}
let gate: LoadGate | null = null;
let loading: Promise<Lib> | undefined;

function loadLib(): Promise<Lib> {
  loading ??= import('libxml2-wasm').then((lib) => {
    // libxml2 asks every registered loader in turn; claiming all names while compiling keeps
    // its built-in loaders (and anyone else's) out of schema loading.
    const ok = lib.xmlRegisterInputProvider({
      match: () => gate !== null,
      open: openGated,
      read: (fd, buf) => {
        try {
          return readSync(fd, buf, 0, buf.byteLength, null);
        } catch {
          return -1;
        }
      },
      close: (fd) => {
        try {
          closeSync(fd);
        } catch {
          // nothing useful to do: libxml2 is done with it either way
        }
        return true;
      },
    });
    if (!ok) throw new Error('libxml2-wasm refused the payload schema loader (input callback table full)');
    return lib;
  });
  return loading;
}

function openGated(name: string): number | undefined {
  const g = gate;
  if (!g) return undefined;
  const path = localPath(name);
  if (path === null) {
    g.failures.push(`refused ${name}: only files under ${g.root} are read, never the network`);
    return undefined;
  }
  let real: string;
  try {
    real = realpathSync(path);
    if (!statSync(real).isFile()) throw new Error('not a file');
  } catch {
    g.failures.push(`cannot load ${name}: no such file`);
    return undefined;
  }
  if (!real.startsWith(g.root + sep)) {
    g.failures.push(`refused ${name}: only files under ${g.root} are read`);
    return undefined;
  }
  try {
    return openSync(real, 'r');
  } catch (e) {
    g.failures.push(`cannot load ${name}: ${(e as NodeJS.ErrnoException).code ?? 'cannot open'}`);
    return undefined;
  }
}

/** libxml2 hands over plain paths when the base was a path, file: URLs when it was a URL. */
function localPath(name: string): string | null {
  if (isAbsolute(name)) return name;
  if (!name.startsWith('file:')) return null;
  try {
    return fileURLToPath(name);
  } catch {
    return null;
  }
}

function firstError(details: readonly ErrorDetail[]): ErrorDetail | undefined {
  return details.find((d) => d.level >= LEVEL_ERROR) ?? details[0];
}

function clip(message: string): string {
  let m = message
    .trimEnd()
    .replace(QUOTED, (q, v: string) =>
      v.length > MAX_QUOTED && v[0] !== '{' ? `'${v.slice(0, MAX_QUOTED)}…'` : q,
    );
  // libxml2 cuts its messages at 64000 characters, which can leave a value's quote open
  const open = m.lastIndexOf("'");
  if (m.split("'").length % 2 === 0 && m.length - open > MAX_QUOTED + 1)
    m = `${m.slice(0, open + 1 + MAX_QUOTED)}…`;
  return m.length > MAX_MESSAGE ? `${m.slice(0, MAX_MESSAGE)}…` : m;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * Line of a DOCTYPE in the prolog, or 0. It can only follow the XML declaration, comments and
 * PIs, so this stops at the first other markup and costs nothing for an ordinary payload.
 */
function doctypeLine(xml: string): number {
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (i < xml.length && isSpace(xml.charCodeAt(i))) i++;
    let open: string;
    let close: string;
    if (xml.startsWith('<?', i)) [open, close] = ['<?', '?>'];
    else if (xml.startsWith('<!--', i)) [open, close] = ['<!--', '-->'];
    else if (xml.startsWith('<!DOCTYPE', i)) return xml.slice(0, i).split('\n').length;
    else return 0;
    const end = xml.indexOf(close, i + open.length);
    // unterminated: the parser will say so
    if (end < 0) return 0;
    i = end + close.length;
  }
}

export class PayloadSchema {
  readonly file: string;
  private validator: Validator | null;
  private schemaDoc: XmlDoc | null;
  private readonly lib: Lib;
  private readonly parseOptions: { option: number; encoding: string };

  private constructor(file: string, lib: Lib, schemaDoc: XmlDoc, validator: Validator) {
    this.file = file;
    this.lib = lib;
    this.schemaDoc = schemaDoc;
    this.validator = validator;
    const P = lib.ParseOption;
    // No NOENT/DTDLOAD: entities stay unexpanded and nothing external is read. validate() hands
    // over UTF-8 whatever the payload's XML declaration claims, so the encoding is fixed.
    this.parseOptions = { option: P.XML_PARSE_NONET | P.XML_PARSE_NO_XXE, encoding: 'utf-8' };
  }

  /** Compiles the XSD at `file` (absolute). Throws an Error naming the file and libxml2's first message with its line. */
  static async compile(file: string): Promise<PayloadSchema> {
    if (!isAbsolute(file)) throw new Error(`payload schema ${file}: the path must be absolute`);
    const lib = await loadLib();
    let bytes: Buffer;
    let root: string;
    try {
      bytes = await readFile(file);
      root = realpathSync(dirname(file));
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new Error(`payload schema ${file}: cannot read it (${why})`, { cause: e });
    }

    // From here to the end nothing awaits, so the gate is ours alone.
    const g: LoadGate = { root, failures: [] };
    gate = g;
    let doc: XmlDoc | null = null;
    let validator: Validator | null = null;
    try {
      doc = lib.XmlDocument.fromBuffer(bytes, { url: file, option: lib.ParseOption.XML_PARSE_NONET });
      validator = lib.XsdValidator.fromDoc(doc);
      // libxml2 only warns when an xs:import cannot be loaded; a schema that silently lost part
      // of itself is not what the operator wrote.
      if (g.failures.length > 0) throw new Error(g.failures[0]);
    } catch (e) {
      validator?.dispose();
      doc?.dispose();
      throw new Error(PayloadSchema.compileMessage(lib, file, e, g.failures[0]), { cause: e });
    } finally {
      gate = null;
    }
    return new PayloadSchema(file, lib, doc, validator);
  }

  private static compileMessage(lib: Lib, file: string, e: unknown, failure: string | undefined): string {
    let what = e instanceof Error ? e.message : String(e);
    if (e instanceof lib.XmlLibError) {
      const d = firstError(e.details);
      if (d) {
        const where = d.file && d.file !== file ? `${d.file} line ${d.line}` : `line ${d.line}`;
        what = `${where}: ${d.message.trimEnd()}`;
        // libxml2 only says that a load failed, not why
        if (failure) what += ` (${failure})`;
      }
    }
    // operator-facing: paths in it must stay whole, so no clipping
    return `payload schema ${file}: ${what.trimEnd()}`;
  }

  /** null when `xml` is valid; otherwise the first problem, e.g. "line 1: Element '{urn:x}b': 'x' is not a valid value of the atomic type 'xs:int'." Also for XML that is not well-formed. */
  validate(xml: string): string | null {
    const validator = this.validator;
    if (!validator) throw new Error(`payload schema ${this.file} is disposed`);
    const dt = doctypeLine(xml);
    if (dt > 0) return `line ${dt}: a DOCTYPE is not allowed in a payload`;

    let doc: XmlDoc;
    try {
      // fromString's string marshalling costs more than Buffer.from plus a plain copy.
      doc = this.lib.XmlDocument.fromBuffer(Buffer.from(xml, 'utf8'), this.parseOptions);
    } catch (e) {
      // libxml2 gives no diagnostic at all for empty input
      return xml.trim() === '' ? 'line 1: the payload is empty' : this.problem(e);
    }
    try {
      // The prolog check above should make this unreachable; it is a cheap pointer test.
      if (doc.dtd !== null) return 'line 1: a DOCTYPE is not allowed in a payload';
      validator.validate(doc);
      return null;
    } catch (e) {
      return this.problem(e);
    } finally {
      doc.dispose();
    }
  }

  private problem(e: unknown): string {
    if (e instanceof this.lib.XmlLibError) {
      const d = firstError(e.details);
      if (d) return `line ${d.line}: ${clip(d.message)}`;
    }
    return `line 1: ${clip(e instanceof Error ? e.message : String(e))}`;
  }

  /** Frees the compiled schema's wasm memory; validate() throws afterwards. Safe to call twice. */
  dispose(): void {
    this.validator?.dispose();
    this.validator = null;
    // The compiled schema points into the schema document (annotations), so it goes last.
    this.schemaDoc?.dispose();
    this.schemaDoc = null;
  }
}
