/**
 * Establishes who is calling. With WS-Security the consumer is the signing certificate
 * (optionally mapped to a consumer id); with security off every caller is one anonymous
 * consumer. When the TLS client presented a certificate, it must be the signer's, so a
 * stolen signed message cannot be replayed over someone else's TLS session.
 */
import type { TLSSocket } from 'node:tls';
import { GatewayError } from '../errors/catalogue';
import type { Consumer, ParsedCall } from '../pipeline/context';
import type { Hook } from '../pipeline/phases';
import { dnKey } from '../security/dn';

export const ANONYMOUS: Consumer = { id: 'anonymous', via: 'anonymous' };

export interface ConsumerMapping {
  id: string;
  subject?: string | undefined;
  fingerprint256?: string | undefined;
}

export interface IdentifyOptions {
  consumers: ConsumerMapping[];
  requireMappedConsumer: boolean;
}

const normalizeFingerprint = (f: string): string => f.replace(/[^0-9a-f]/gi, '').toUpperCase();

/** The TLS peer's SHA-256 fingerprint, read once per connection. */
const peerFingerprints = new WeakMap<TLSSocket, string | null>();
function tlsPeerFingerprint(socket: TLSSocket): string | null {
  let fp = peerFingerprints.get(socket);
  if (fp === undefined) {
    const peer = socket.getPeerCertificate();
    fp = peer && peer.fingerprint256 ? normalizeFingerprint(peer.fingerprint256) : null;
    peerFingerprints.set(socket, fp);
  }
  return fp;
}

export function identify(
  opts: IdentifyOptions = { consumers: [], requireMappedConsumer: false },
): Hook<ParsedCall> {
  const bySubject = new Map<string, string>();
  const byFingerprint = new Map<string, string>();
  for (const m of opts.consumers) {
    if (m.subject) bySubject.set(dnKey(m.subject), m.id);
    if (m.fingerprint256) byFingerprint.set(normalizeFingerprint(m.fingerprint256), m.id);
  }
  // Mapping a certificate costs a DN normalization; remember the answer per certificate.
  const cache = new Map<string, Consumer>();

  return async (ctx) => {
    const signer = ctx.signer ?? null;
    ctx.signer = signer;
    if (!signer) {
      ctx.consumer ??= ANONYMOUS;
      return;
    }
    const fingerprint = normalizeFingerprint(signer.fingerprint256);
    const socket = ctx.req.socket as TLSSocket;
    if (socket.encrypted) {
      const peer = tlsPeerFingerprint(socket);
      if (peer !== null && peer !== fingerprint) {
        throw new GatewayError(
          'SSP_TLS_SIGNER_MISMATCH',
          'the TLS client certificate is not the certificate that signed the request',
        );
      }
    }
    let consumer = cache.get(fingerprint);
    if (!consumer) {
      const mapped = byFingerprint.get(fingerprint) ?? bySubject.get(dnKey(signer.subject));
      if (!mapped && opts.requireMappedConsumer) {
        throw new GatewayError(
          'SSP_UNKNOWN_CONSUMER',
          `the certificate ${signer.subject} is not mapped to a consumer`,
        );
      }
      consumer = {
        id: mapped ?? signer.subject,
        via: 'certificate',
        subject: signer.subject,
        fingerprint256: fingerprint,
      };
      if (cache.size > 10_000) cache.clear();
      cache.set(fingerprint, consumer);
    }
    ctx.consumer = consumer;
  };
}
