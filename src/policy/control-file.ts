/**
 * Reads an SLA control file (schemas/sla-control.xsd) into the model of model.ts. Every problem
 * found is reported at once, each with its line and element, so an operator fixes the file in
 * one pass. Payload schemas are only checked to exist here; active-policy.ts compiles them.
 */
import { addDuration } from '../soap/xs-time';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_DIR } from '../paths';
import type {
  ControlFile,
  EndPoint,
  LimitPolicy,
  PayloadRules,
  PolicyProblem,
  ServiceVersion,
  Sla,
} from './model';
import { PolicyLoadError } from './model';
import { buildPolicy, type PolicyAttributes, type PolicyScope } from './policy-name';

type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });
type XmlElement = InstanceType<Lib['XmlElement']>;
type XmlDocument = InstanceType<Lib['XmlDocument']>;
type Validator = InstanceType<Lib['XsdValidator']>;
type ErrorDetail = InstanceType<Lib['XmlLibError']>['details'][number];

export interface LoadOptions {
  /** Maps an EndPoint URL to a configured cluster name; undefined = unknown. When omitted, clusters = urls unchecked. */
  resolveCluster?: (url: string) => string | undefined;
}

export const CONTROL_XSD = join(SCHEMA_DIR, 'sla-control.xsd');

/** Element named for problems that are about the XML syntax rather than one element. */
const SYNTAX = '?xml';
/** Reported by the semantic check instead, which can name both lines. */
const URI_CONSTRAINT = "identity-constraint 'uniqueServiceVersionUri'";

interface Compiled {
  lib: Lib;
  validator: Validator;
}

// Compiled once per process and never disposed: every load uses it.
let compiled: Promise<Compiled> | undefined;

function controlSchema(): Promise<Compiled> {
  compiled ??= (async () => {
    const lib: Lib = await import('libxml2-wasm');
    // The document stays alive with the validator: libxml2's compiled schema may point into it.
    const xsd = lib.XmlDocument.fromBuffer(await readFile(CONTROL_XSD), { url: CONTROL_XSD });
    try {
      return { lib, validator: lib.XsdValidator.fromDoc(xsd) };
    } catch (e) {
      xsd.dispose();
      throw e;
    }
  })();
  // A failed compile (file missing in a broken install) must not stick for the process.
  compiled.catch(() => (compiled = undefined));
  return compiled;
}

export async function loadControlFile(file: string, opts: LoadOptions = {}): Promise<ControlFile> {
  const abs = resolve(file);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (e) {
    throw new PolicyLoadError(abs, [{ line: 0, element: '(file)', message: `cannot read: ${errText(e)}` }]);
  }
  return parseBytes(bytes, abs, opts);
}

export async function parseControlFile(
  text: string,
  file: string,
  opts: LoadOptions = {},
): Promise<ControlFile> {
  return parseBytes(Buffer.from(text, 'utf8'), resolve(file), opts);
}

async function parseBytes(bytes: Buffer, file: string, opts: LoadOptions): Promise<ControlFile> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  // Refused before libxml2 sees it: a DTD brings entities, and a control file needs none.
  const doctype = doctypeLine(bytes.toString('latin1'));
  if (doctype !== null) {
    throw new PolicyLoadError(file, [
      {
        line: doctype,
        element: '!DOCTYPE',
        message: 'a DOCTYPE is not allowed in an SLA control file (no DTDs or entities); remove it',
      },
    ]);
  }

  const { lib, validator } = await controlSchema();
  let doc: XmlDocument;
  try {
    doc = lib.XmlDocument.fromBuffer(bytes, {
      url: file,
      option:
        lib.ParseOption.XML_PARSE_NONET |
        lib.ParseOption.XML_PARSE_NO_XXE |
        lib.ParseOption.XML_PARSE_BIG_LINES,
    });
  } catch (e) {
    throw new PolicyLoadError(file, [syntaxProblem(e, lib)]);
  }
  try {
    if (doc.dtd) {
      // Only reachable when the prolog scan could not read the encoding (e.g. UTF-16).
      throw new PolicyLoadError(file, [
        {
          line: 1,
          element: '!DOCTYPE',
          message: 'a DOCTYPE is not allowed in an SLA control file; remove it',
        },
      ]);
    }
    const problems = schemaProblems(validator, doc, lib);
    const reader = new Reader(lib, file, opts, problems);
    const model = await reader.read(doc.root);
    problems.push(...reader.problems);
    if (problems.length) throw new PolicyLoadError(file, sortByLine(problems));
    return { file, sha256, ...model };
  } finally {
    doc.dispose();
  }
}

/** Line of a DOCTYPE in the prolog (the only place one can be), or null. */
export function doctypeLine(text: string): number | null {
  let i = 0;
  if (text.startsWith('\uFEFF')) i = 1;
  else if (text.startsWith('\xEF\xBB\xBF')) i = 3;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text.startsWith('<?', i)) {
      const end = text.indexOf('?>', i + 2);
      if (end < 0) return null;
      i = end + 2;
    } else if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0) return null;
      i = end + 3;
    } else if (text.slice(i, i + 9).toUpperCase() === '<!DOCTYPE') {
      return lineAt(text, i);
    } else {
      return null;
    }
  }
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

function syntaxProblem(e: unknown, lib: Lib): PolicyProblem {
  const detail = e instanceof lib.XmlLibError ? e.details[0] : undefined;
  const message = clean(detail?.message ?? errText(e));
  // libxml2 names the open element in its commonest complaints; use it when it does.
  const named = /(?:tag mismatch: |Start Tag |Premature end of data in tag )(\S+) line/.exec(message);
  return {
    line: detail?.line ?? 1,
    element: named?.[1] ?? SYNTAX,
    message: `not well-formed XML: ${message}`,
  };
}

function schemaProblems(validator: Validator, doc: XmlDocument, lib: Lib): PolicyProblem[] {
  try {
    validator.validate(doc);
    return [];
  } catch (e) {
    if (!(e instanceof lib.XmlLibError) || e.details.length === 0) {
      return [{ line: 1, element: SYNTAX, message: `schema validation failed: ${clean(errText(e))}` }];
    }
    return e.details.filter((d) => d.level >= 2 && !d.message.includes(URI_CONSTRAINT)).map(schemaProblem);
  }
}

/** "Element 'SLA', attribute 'x': msg" → element SLA, message "attribute 'x': msg". */
export function schemaProblem(d: ErrorDetail): PolicyProblem {
  const text = clean(d.message);
  const m = /^Element '(?:\{[^}]*\})?([^']+)'(, attribute '[^']+')?: ([\s\S]*)$/.exec(text);
  if (!m) return { line: d.line, element: SYNTAX, message: text };
  const attr = m[2] ? `${m[2].slice(2)}: ` : '';
  return { line: d.line, element: m[1]!, message: `${attr}${m[3]}` };
}

function sortByLine(problems: PolicyProblem[]): PolicyProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.i - b.i)
    .map((x) => x.p);
}

function clean(message: string): string {
  return message.replace(/\s+$/, '').replace(/\n/g, '; ');
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Walks the document after validation. It tolerates a structure the schema refused (those
 * problems are already reported) so that the semantic problems come in the same report.
 */
class Reader {
  readonly problems: PolicyProblem[] = [];
  private readonly baseDir: string;
  private readonly schemaFiles = new Map<string, string | null>();
  private readonly schemaInvalid: boolean;
  /** line:element of schema problems, so that an attribute the schema refused is not reported twice. */
  private readonly schemaFlagged: Set<string>;

  constructor(
    private readonly lib: Lib,
    file: string,
    private readonly opts: LoadOptions,
    schemaProblems: PolicyProblem[],
  ) {
    this.baseDir = dirname(file);
    this.schemaInvalid = schemaProblems.length > 0;
    this.schemaFlagged = new Set(schemaProblems.map((p) => `${p.line}:${p.element}`));
  }

  /** BusinessService/@sessionIdleTimeout and @connectionIdleTimeout, as ms. */
  private readIdle(bs: XmlElement): { sessionMs?: number; connectionMs?: number } | undefined {
    const out: { sessionMs?: number; connectionMs?: number } = {};
    for (const [name, key] of [
      ['sessionIdleTimeout', 'sessionMs'],
      ['connectionIdleTimeout', 'connectionMs'],
    ] as const) {
      const v = attr(bs, name);
      if (v === undefined) continue;
      const ms = durationMs(v);
      if (ms === null) this.problem(bs, `${name} "${v}" is not a non-negative xs:duration such as PT30M`);
      else out[key] = ms;
    }
    return out.sessionMs === undefined && out.connectionMs === undefined ? undefined : out;
  }

  async read(root: XmlElement): Promise<Pick<ControlFile, 'domain' | 'version' | 'versions'>> {
    const versions = new Map<string, ServiceVersion>();
    const uriLines = new Map<string, number>();
    for (const bs of this.children(root, 'BusinessService')) {
      const service = attr(bs, 'name') ?? '';
      const application = attr(bs, 'application') ?? service;
      const idle = this.readIdle(bs);
      for (const sv of this.children(bs, 'ServiceVersion')) {
        const uri = attr(sv, 'uri');
        if (uri !== undefined) this.checkUri(uri, sv, uriLines);
        const slas = this.readSlas(this.child(sv, 'SLAs'));
        const sldEl = this.child(sv, 'SLD');
        const sld = sldEl ? await this.readSld(sldEl) : null;
        if (uri === undefined || !sld) {
          this.missing(sv, uri === undefined ? 'a uri attribute' : 'an SLD element');
          continue;
        }
        if (!versions.has(uri)) {
          versions.set(uri, {
            uri,
            service,
            application,
            slas,
            sld,
            line: sv.line,
            ...(idle ? { idle } : {}),
          });
        }
      }
    }
    return { domain: attr(root, 'domain'), version: attr(root, 'version'), versions };
  }

  private checkUri(uri: string, sv: XmlElement, seen: Map<string, number>): void {
    const bad = !uri.startsWith('/')
      ? "must start with '/'"
      : /[?#]/.test(uri)
        ? "must be a path only, without '?' or '#'"
        : /\s/.test(uri)
          ? 'must not contain spaces'
          : !/^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/.test(uri) || /\/\.{1,2}(\/|$)/.test(uri)
            ? "must be plain path segments (letters, digits and -._~!$&'()*+,;=:@), without '//', '.' or '..' segments or a trailing '/'"
            : null;
    if (bad) {
      this.problem(sv, `uri "${uri}" ${bad}; it is the request path a client sends SOAP calls to`);
    }
    const first = seen.get(uri);
    if (first !== undefined) {
      this.problem(
        sv,
        `uri "${uri}" is already used by the ServiceVersion at line ${first}; each uri selects one version`,
      );
    } else {
      seen.set(uri, sv.line);
    }
  }

  private readSlas(slasEl: XmlElement | null): Sla[] {
    const slas: Sla[] = [];
    if (!slasEl) return slas;
    const seen = new Map<string, number>();
    for (const el of this.children(slasEl, 'SLA')) {
      const consumerId = attr(el, 'consumerId');
      const contextId = attr(el, 'contextId');
      const policyEl = this.child(el, 'Policy');
      const policy = policyEl ? this.readPolicy(policyEl, 'sla') : null;
      if (consumerId === undefined) continue;
      const key = `${consumerId}\u0000${contextId ?? ''}`;
      const first = seen.get(key);
      if (first !== undefined) {
        const who =
          contextId === undefined
            ? `consumer "${consumerId}" (no contextId)`
            : `consumer "${consumerId}" with contextId "${contextId}"`;
        this.problem(el, `${who} already has an SLA at line ${first} in this ServiceVersion`);
        continue;
      }
      seen.set(key, el.line);
      slas.push({ consumerId, ...(contextId !== undefined ? { contextId } : {}), policy, line: el.line });
    }
    return slas;
  }

  private async readSld(
    sldEl: XmlElement,
  ): Promise<{ policy: LimitPolicy | null; endpoint: EndPoint; line: number } | null> {
    const policyEl = this.child(sldEl, 'Policy');
    const policy = policyEl ? this.readPolicy(policyEl, 'sld') : null;
    const epEl = this.child(sldEl, 'EndPoint');
    if (!epEl) {
      this.missing(sldEl, 'an EndPoint element');
      return null;
    }
    return { policy, endpoint: await this.readEndPoint(epEl), line: sldEl.line };
  }

  private readPolicy(el: XmlElement, scope: PolicyScope): LimitPolicy | null {
    const name = el.content.trim();
    const attrs: PolicyAttributes = {};
    for (const key of [
      'threshold',
      'intervalSeconds',
      'intervalType',
      'action',
      'maxDelayMs',
      'onStoreFailure',
    ] as const) {
      const v = attr(el, key);
      if (v !== undefined) attrs[key] = v;
    }
    // An empty name or a bad attribute value is already a schema problem.
    if (name === '' || this.schemaFlagged.has(`${el.line}:${el.name}`)) return null;
    const built = buildPolicy(name, attrs, scope, el.line);
    if (built.ok) return built.policy;
    for (const message of built.problems) this.problem(el, message);
    return null;
  }

  private async readEndPoint(el: XmlElement): Promise<EndPoint> {
    const urls: string[] = [];
    const clusters: string[] = [];
    for (const u of this.children(el, 'URL')) {
      const url = u.content.trim();
      if (url === '') continue;
      urls.push(url);
      const cluster = this.opts.resolveCluster ? this.opts.resolveCluster(url) : url;
      if (cluster === undefined) {
        this.problem(
          u,
          `"${url}" names no configured grid cluster; add it to grid.clusters[].urls in the proxy config`,
        );
      } else if (!clusters.includes(cluster)) {
        // Two URLs of one cluster: trying it twice in a row gains nothing.
        clusters.push(cluster);
      }
    }
    const req = this.child(el, 'Request');
    const res = this.child(el, 'Response');
    return {
      urls,
      clusters,
      request: req ? await this.readPayloadRules(req) : {},
      response: res ? await this.readPayloadRules(res) : {},
      line: el.line,
    };
  }

  private async readPayloadRules(el: XmlElement): Promise<PayloadRules> {
    const rules: PayloadRules = {};
    const input = this.child(el, 'InputSchemaURL');
    if (input) {
      const file = await this.schemaFile(input);
      if (file) {
        rules.inputSchema = file;
        rules.inputSchemaLine = input.line;
      }
    }
    for (const x of this.children(el, 'XForm')) {
      this.problem(
        x,
        'XForm (XSLT) is not supported by this proxy; remove it or transform in the client — see docs/policy.md',
      );
    }
    const output = this.child(el, 'OutputSchemaURL');
    if (output) {
      const file = await this.schemaFile(output);
      if (file) {
        rules.outputSchema = file;
        rules.outputSchemaLine = output.line;
      }
    }
    return rules;
  }

  /** The absolute path a schema URL names, after checking the file can be read. */
  private async schemaFile(el: XmlElement): Promise<string | null> {
    const ref = el.content.trim();
    if (ref === '') return null;
    const target = resolveSchemaRef(ref, this.baseDir);
    if ('refused' in target) {
      this.problem(el, target.refused);
      return null;
    }
    const path = target.path;
    if (!this.schemaFiles.has(path)) this.schemaFiles.set(path, await unreadable(path));
    const why = this.schemaFiles.get(path);
    if (why) {
      this.problem(el, `schema "${ref}" (${path}) ${why}`);
      return null;
    }
    return path;
  }

  private children(el: XmlElement | null, name: string): XmlElement[] {
    const out: XmlElement[] = [];
    for (let c = el?.firstChild ?? null; c; c = c.next) {
      if (c instanceof this.lib.XmlElement && c.name === name) out.push(c);
    }
    return out;
  }

  private child(el: XmlElement, name: string): XmlElement | null {
    return this.children(el, name)[0] ?? null;
  }

  private problem(el: XmlElement, message: string): void {
    this.problems.push({ line: el.line, element: el.name, message });
  }

  /** Said only if the schema passed, which should make it unreachable; else the schema said it. */
  private missing(el: XmlElement, what: string): void {
    if (!this.schemaInvalid) this.problem(el, `needs ${what}`);
  }
}

function attr(el: XmlElement, name: string): string | undefined {
  return el.attr(name)?.value.trim();
}

/**
 * Where a schema URL points. local:/// is the pattern's name for the gateway's own files: here,
 * the control file's directory.
 */
export function resolveSchemaRef(ref: string, baseDir: string): { path: string } | { refused: string } {
  if (/^https?:\/\//i.test(ref)) {
    return {
      refused: `remote schemas are not fetched ("${ref}"); copy the file next to the control file and use local:///name.xsd`,
    };
  }
  if (ref.startsWith('local:///')) return { path: resolve(baseDir, decodePath(ref.slice(9))) };
  if (/^file:/i.test(ref)) {
    try {
      return { path: fileURLToPath(ref) };
    } catch (e) {
      return { refused: `"${ref}" is not a usable file URL: ${errText(e)}` };
    }
  }
  if (isAbsolute(ref)) return { path: resolve(ref) };
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) {
    return {
      refused: `"${ref}": only local:///, file:///, absolute and relative paths are supported; copy the file next to the control file and use local:///name.xsd`,
    };
  }
  return { path: resolve(baseDir, ref) };
}

function decodePath(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    // A stray '%' is more likely part of the file name than a broken escape.
    return p;
  }
}

/** Why a schema file cannot be used, or null when it can be read. */
async function unreadable(path: string): Promise<string | null> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return 'is not a file';
    await access(path, constants.R_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'does not exist';
    if (code === 'EACCES') return 'cannot be read (permission denied)';
    return `cannot be read: ${errText(e)}`;
  }
}

/** An xs:duration as ms (years and months from the epoch's calendar), or null if it is not one or negative. */
function durationMs(text: string): number | null {
  try {
    const ms = addDuration(0, text, 'duration');
    return ms >= 0 ? ms : null;
  } catch {
    return null;
  }
}
