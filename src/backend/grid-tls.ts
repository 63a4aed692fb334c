/**
 * TLS on the grid link (docs/protocol.md §2.1), shared by the proxy (client) and the reference
 * grid (server). Certificates, keys and CAs are read from files into a SecureContext; a reload
 * builds a new one that only new connections use, so open sockets and their grid sessions carry
 * on. A reload that fails keeps the material in effect and says which file is wrong.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import tls, { type PeerCertificate, type SecureContext } from 'node:tls';
import { rfc4514FromNode } from '../security/dn';

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Trust anchors for the peer's certificate (PEM, one or more certificates per file). */
  caFiles: string[];
  minVersion: TlsVersion;
}

export type TlsReload = { ok: true; notAfter: string } | { ok: false; error: string };

/** What is worth logging about loaded material: never the key. */
export interface TlsSummary {
  subject: string;
  notAfter: string;
  fingerprint256: string;
  cas: number;
}

/** Reads the files and checks that the key belongs to the certificate, before anything uses them. */
function readMaterial(files: TlsFiles): { options: tls.SecureContextOptions; summary: TlsSummary } {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`cannot read the ${what} ${file}: ${(e as Error).message}`, { cause: e });
    }
  };
  const cert = read(files.certFile, 'certificate');
  const key = read(files.keyFile, 'private key');
  const ca = files.caFiles.map((f) => read(f, 'CA file'));
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${files.certFile} holds no PEM certificate: ${(e as Error).message}`, { cause: e });
  }
  const options: tls.SecureContextOptions = { cert, key, ca, minVersion: files.minVersion };
  try {
    // createSecureContext refuses a key that does not match the certificate.
    tls.createSecureContext(options);
  } catch (e) {
    throw new Error(
      `${files.certFile} and ${files.keyFile} do not make a usable TLS identity: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const cas = ca.reduce(
    (n, pem) => n + (pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0),
    0,
  );
  if (cas === 0) throw new Error(`no CA certificate in ${files.caFiles.join(', ') || '(no caFiles)'}`);
  return {
    options,
    summary: {
      subject: rfc4514FromNode(leaf.subject),
      notAfter: leaf.validTo,
      fingerprint256: leaf.fingerprint256,
      cas,
    },
  };
}

/** The current TLS material of one end of a grid link, reloadable. */
export class TlsMaterial {
  private current: { options: tls.SecureContextOptions; context: SecureContext; summary: TlsSummary };

  constructor(readonly files: TlsFiles) {
    const m = readMaterial(files);
    this.current = { ...m, context: tls.createSecureContext(m.options) };
  }

  get context(): SecureContext {
    return this.current.context;
  }

  /** For a tls.Server: setSecureContext takes options, not a context. */
  get options(): tls.SecureContextOptions {
    return this.current.options;
  }

  get summary(): TlsSummary {
    return this.current.summary;
  }

  get paths(): string[] {
    return [this.files.certFile, this.files.keyFile, ...this.files.caFiles];
  }

  /** Reads the files again; on failure the material in effect stays. */
  reload(): TlsReload {
    try {
      const m = readMaterial(this.files);
      this.current = { ...m, context: tls.createSecureContext(m.options) };
      return { ok: true, notAfter: m.summary.notAfter };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }
}

/** "AB:CD:…" or "abcd…" → "ABCD…", so that pins compare whatever way they were written. */
export function normalizeFingerprint(fp: string): string {
  return fp.replace(/[:\s]/g, '').toUpperCase();
}

export interface GridTlsClientOptions {
  material: TlsMaterial;
  /** Name expected in the grid's certificate; default the host of the address dialled. */
  serverName?: string;
  /** SHA-256 fingerprints of grid certificates to accept; empty: any the CAs vouch for. */
  pinnedFingerprints256: string[];
}

/** The client side: what tls.connect needs to reach one grid address. */
export function gridTlsConnectOptions(
  opts: GridTlsClientOptions,
  host: string,
  port: number,
): tls.ConnectionOptions {
  const name = opts.serverName ?? host.replace(/^\[|\]$/g, '');
  const pins = new Set(opts.pinnedFingerprints256.map(normalizeFingerprint));
  return {
    host,
    port,
    secureContext: opts.material.context,
    // SNI carries host names only (RFC 6066 §3).
    servername: isIP(name) === 0 ? name : undefined,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const err = tls.checkServerIdentity(name, cert);
      if (err) return err;
      if (pins.size > 0 && !pins.has(normalizeFingerprint(cert.fingerprint256))) {
        return new Error(
          `the grid's certificate (SHA-256 ${cert.fingerprint256}) is not one of the pinned fingerprints`,
        );
      }
      return undefined;
    },
  };
}

/** Loopback hosts, where plain TCP never leaves the machine. Names other than localhost are not trusted to be. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Host part of "host:port" or "[v6]:port". */
export function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':'));
}
