/**
 * Worker thread body for forgeSigner (smime.ts): node-forge assembles the PKCS#7 (its ASN.1 work
 * for a 1,000-record message is still milliseconds), so it runs here instead of on the proxy's
 * event loop; the hashing and RSA are node:crypto's. Also holds the
 * byte-level S/MIME layout shared with the main thread, written exactly as `openssl smime -sign
 * -text` and `openssl smime -encrypt` write it.
 */
import { createHash, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as forge from 'node-forge';

/** workerData of a signing worker; the key stays in memory and is never posted back. */
export interface SignWorkerData {
  kind: 'smime-sign';
  certPem: string;
  keyPem: string;
  chainPem?: string;
}

export interface SignJob {
  id: number;
  text: string;
}

export type SignReply = { id: number; signed: string } | { id: number; error: string };

/** The part header openssl's `-text` adds; it is part of what is signed. */
export const TEXT_PLAIN_HEADER = 'Content-Type: text/plain\r\n\r\n';

/**
 * OpenSSL's canonical text form (SMIME_crlf_copy): every line ends in CRLF, any CRs before a line
 * end are dropped, and a last line without a newline stays without one.
 */
export function crlfCanonical(text: string): string {
  const lines = text.split('\n').map((line) => line.replace(/\r+$/, ''));
  const last = lines.pop() as string;
  return lines.map((line) => `${line}\r\n`).join('') + last;
}

/** Base64 in 64-character lines, each ending in LF, as OpenSSL's base64 BIO writes it. */
export function base64Lines(der: Buffer): string {
  const b64 = der.toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
  return out;
}

/** 32 upper-case hex digits, like OpenSSL's boundary. */
export function newBoundary(): string {
  return `----${randomBytes(16).toString('hex').toUpperCase()}`;
}

/** The multipart/signed message, byte for byte in openssl's layout (LF outside the signed part). */
export function multipartSigned(entity: string, signatureDer: Buffer, boundary: string): string {
  return (
    'MIME-Version: 1.0\n' +
    'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; micalg="sha-256"; ' +
    `boundary="${boundary}"\n\n` +
    'This is an S/MIME signed message\n\n' +
    `--${boundary}\n${entity}\n` +
    `--${boundary}\n` +
    'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\n' +
    'Content-Transfer-Encoding: base64\n' +
    'Content-Disposition: attachment; filename="smime.p7s"\n\n' +
    `${base64Lines(signatureDer)}\n` +
    `--${boundary}--\n\n`
  );
}

/** Every certificate in a PEM bundle, in order. */
export function pemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Loaded once per worker: parsing the key on every message would double the cost. */
export interface ForgeIdentity {
  cert: forge.pki.Certificate;
  /** Node's key: forge builds the PKCS#7 structure, OpenSSL (through node:crypto) does the RSA. */
  key: KeyObject;
  chain: forge.pki.Certificate[];
}

export function loadIdentity(data: SignWorkerData): ForgeIdentity {
  // forge parses it too, so that a key forge could not use is refused the same way as before.
  forge.pki.privateKeyFromPem(data.keyPem);
  return {
    cert: forge.pki.certificateFromPem(data.certPem),
    key: createPrivateKey(data.keyPem),
    chain: pemCertificates(data.chainPem ?? '').map((pem) => forge.pki.certificateFromPem(pem)),
  };
}

/**
 * A SHA-256 message digest with forge's interface, computed by node:crypto. forge's own SHA-256
 * and RSA are pure JavaScript: for a 1,000-record message they cost ~70 ms of CPU, native ones
 * ~1 ms, and the bytes are the same (the openssl oracle tests check them).
 */
class NativeSha256 {
  readonly algorithm = 'sha256';
  readonly digestLength = 32;
  readonly blockLength = 64;
  private chunks: Buffer[] = [];

  start(): this {
    this.chunks = [];
    return this;
  }

  /** forge passes binary strings (one byte per char). */
  update(bytes: string): this {
    this.chunks.push(Buffer.from(bytes, 'latin1'));
    return this;
  }

  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  digest(): forge.util.ByteStringBuffer {
    return forge.util.createBuffer(createHash('sha256').update(this.data()).digest().toString('latin1'));
  }
}

/** Runs forge with node:crypto's SHA-256 in place of its own (the worker is single-threaded). */
function withNativeSha256<T>(run: () => T): T {
  const sha256 = forge.md.sha256 as unknown as { create: () => unknown };
  const original = sha256.create;
  sha256.create = () => new NativeSha256();
  try {
    return run();
  } finally {
    sha256.create = original;
  }
}

/** Detached SignedData over the entity, DER. */
export function detachedSignature(entity: string, id: ForgeIdentity): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  // A binary-string buffer: forge would UTF-8 encode a plain string (harmless for ASCII, but explicit).
  p7.content = forge.util.createBuffer(entity, 'raw');
  p7.addCertificate(id.cert);
  for (const cert of id.chain) p7.addCertificate(cert);
  // RSASSA-PKCS1-v1_5 over the signed attributes, which the digest object has kept.
  const key = {
    sign: (md: NativeSha256): string => sign('sha256', md.data(), id.key).toString('latin1'),
  } as unknown as forge.pki.rsa.PrivateKey;
  p7.addSigner({
    key,
    certificate: id.cert,
    digestAlgorithm: forge.pki.oids.sha256,
    // DER order of the SET OF (by encoded length here): contentType, signingTime, messageDigest.
    // forge cannot encode smimeCapabilities; receivers do not need it.
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType, value: forge.pki.oids.data },
      { type: forge.pki.oids.signingTime },
      { type: forge.pki.oids.messageDigest },
    ],
  });
  withNativeSha256(() => p7.sign({ detached: true }));
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

/** The whole job: canonical entity, signature, MIME layout. */
export function signText(text: string, id: ForgeIdentity): string {
  const entity = TEXT_PLAIN_HEADER + crlfCanonical(text);
  return multipartSigned(entity, detachedSignature(entity, id), newBoundary());
}

function serve(data: SignWorkerData): void {
  const port = parentPort!;
  let identity: ForgeIdentity | undefined;
  let loadError = 'the signing certificate or key could not be loaded in the worker';
  try {
    identity = loadIdentity(data);
  } catch (e) {
    // Not the key itself: forge's message names the PEM problem only.
    loadError += ` (${e instanceof Error ? e.message : String(e)})`;
  }
  port.on('message', (job: SignJob) => {
    if (identity === undefined) {
      port.postMessage({ id: job.id, error: loadError } satisfies SignReply);
      return;
    }
    try {
      port.postMessage({ id: job.id, signed: signText(job.text, identity) } satisfies SignReply);
    } catch (e) {
      const error = `S/MIME signing failed: ${e instanceof Error ? e.message : String(e)}`;
      port.postMessage({ id: job.id, error } satisfies SignReply);
    }
  });
}

// Only our own workers serve: other worker threads may import this module for its helpers.
const data = workerData as Partial<SignWorkerData> | null;
if (!isMainThread && parentPort !== null && data?.kind === 'smime-sign') serve(data as SignWorkerData);
