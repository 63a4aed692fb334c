/** Validates response elements against schemas/symphony.xsd with libxml2 (libxml2-wasm). */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });

const XSD_PATH = join(__dirname, '..', '..', '..', 'schemas', 'symphony.xsd');
const WS_DIR = join(dirname(XSD_PATH), 'ws');

/**
 * The standards' schemas import each other by their canonical URLs: those are read from the
 * stored copies in schemas/ws/, as the proxy serves them, never from the network.
 */
function localCopy(name: string): string | null {
  if (/^https?:\/\//.test(name)) {
    const copy = join(WS_DIR, basename(new URL(name).pathname));
    return existsSync(copy) ? copy : null;
  }
  const path = name.startsWith('file:') ? fileURLToPath(name) : name;
  // Only our contract's own schemas: the payload-schema loader keeps its rules for everything else.
  const ours = path === XSD_PATH || dirname(path) === WS_DIR;
  return ours && isAbsolute(path) && existsSync(path) ? path : null;
}

let registered = false;
function registerLocalSchemas(lib: Lib): void {
  if (registered) return;
  registered = true;
  lib.xmlRegisterInputProvider({
    match: (name) => localCopy(name) !== null,
    open: (name) => {
      const path = localCopy(name);
      return path === null ? undefined : openSync(path, 'r');
    },
    read: (fd, buf) => readSync(fd, buf, 0, buf.byteLength, null),
    close: (fd) => {
      closeSync(fd);
      return true;
    },
  });
}

export interface EnvelopeValidator {
  /** Throws with libxml2's message when the Body's element is not valid. */
  validateBody(envelopeXml: string): string;
  dispose(): void;
}

export async function envelopeValidator(): Promise<EnvelopeValidator> {
  const lib: Lib = await import('libxml2-wasm');
  registerLocalSchemas(lib);
  const schemaDoc = lib.XmlDocument.fromString(readFileSync(XSD_PATH, 'utf8'), { url: XSD_PATH });
  const validator = lib.XsdValidator.fromDoc(schemaDoc);
  return {
    validateBody(envelopeXml) {
      const doc = lib.XmlDocument.fromString(envelopeXml);
      try {
        const ns = {
          s11: 'http://schemas.xmlsoap.org/soap/envelope/',
          s12: 'http://www.w3.org/2003/05/soap-envelope',
        };
        const body = doc.get('/s11:Envelope/s11:Body/*', ns) ?? doc.get('/s12:Envelope/s12:Body/*', ns);
        if (!body || !(body instanceof lib.XmlElement)) throw new Error('no Body element');
        const fault = body.name === 'Fault';
        const target = fault
          ? (body.get('.//*[local-name()="detail" or local-name()="Detail"]/*') as InstanceType<
              Lib['XmlElement']
            > | null)
          : body;
        if (!target) throw new Error('fault without detail');
        validator.validate(target);
        return target.name;
      } finally {
        doc.dispose();
      }
    },
    dispose() {
      validator.dispose();
      schemaDoc.dispose();
    },
  };
}

let contractValidator: Promise<{ validate(xml: string): string[] }> | null = null;

/**
 * Validates one element (a Body's content, a payload) against our schema and the standards' it
 * imports, WS-BaseNotification's b-2.xsd included; resolves with libxml2's errors ([] = valid).
 */
export function validateAgainstContract(elementXml: string): Promise<string[]> {
  contractValidator ??= (async () => {
    const lib: Lib = await import('libxml2-wasm');
    registerLocalSchemas(lib);
    const wrapper =
      `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:symphony-soap-proxy:test">` +
      `<xs:import namespace="http://soapproxy.symphony/v1" schemaLocation="${XSD_PATH}"/>` +
      `<xs:import namespace="http://docs.oasis-open.org/wsn/b-2" schemaLocation="${join(WS_DIR, 'b-2.xsd')}"/>` +
      `</xs:schema>`;
    const schemaDoc = lib.XmlDocument.fromString(wrapper, { url: join(WS_DIR, 'test-wrapper.xsd') });
    const validator = lib.XsdValidator.fromDoc(schemaDoc);
    return {
      validate(xml: string): string[] {
        const doc = lib.XmlDocument.fromString(xml);
        try {
          validator.validate(doc);
          return [];
        } catch (e) {
          return [e instanceof Error ? e.message : String(e)];
        } finally {
          doc.dispose();
        }
      },
    };
  })();
  return contractValidator.then((v) => v.validate(elementXml));
}
