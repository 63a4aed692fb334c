/** Validates response elements against schemas/symphony.xsd with libxml2 (libxml2-wasm). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Lib = typeof import('libxml2-wasm', { with: { 'resolution-mode': 'import' } });

const XSD_PATH = join(__dirname, '..', '..', '..', 'schemas', 'symphony.xsd');

export interface EnvelopeValidator {
  /** Throws with libxml2's message when the Body's element is not valid. */
  validateBody(envelopeXml: string): string;
  dispose(): void;
}

export async function envelopeValidator(): Promise<EnvelopeValidator> {
  const lib: Lib = await import('libxml2-wasm');
  const schemaDoc = lib.XmlDocument.fromString(readFileSync(XSD_PATH, 'utf8'));
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
