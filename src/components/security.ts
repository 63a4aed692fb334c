/** WS-Security: the request verifier (when required) and the response writer (signing, when configured). */
import type { ProxyConfig } from '../config';
import { log } from '../log';
import { EnvelopeSigner } from '../security/envelope-signer';
import { TrustStore } from '../security/truststore';
import { WssVerifier } from '../security/verifier';
import { envelope, type EnvelopeWriter } from '../soap/envelope';
import type { StateStore } from '../store/store';
import { replayCache } from './store';

export interface Security {
  verifier: WssVerifier | null;
  signer: EnvelopeSigner | null;
  /** Writes every response and fault envelope; signs them when a signer is configured. */
  write: EnvelopeWriter;
}

export async function loadSecurity(config: ProxyConfig, store: StateStore): Promise<Security> {
  const sec = config.security;
  let verifier: WssVerifier | null = null;
  if (sec.mode === 'wss') {
    const trust = await TrustStore.load(sec.trust, sec.algorithms);
    verifier = new WssVerifier(trust, { ...sec.timestamp, ...sec.algorithms }, replayCache(store, sec));
    log.info('WS-Security required', { trustAnchors: trust.anchorCount, crls: sec.trust.crlFiles.length });
  }
  const rs = sec.responseSigning;
  const signer =
    rs.enabled && rs.certFile && rs.keyFile
      ? new EnvelopeSigner({
          certFile: rs.certFile,
          keyFile: rs.keyFile,
          ttlSeconds: sec.timestamp.ttlSeconds,
        })
      : null;
  if (signer?.algorithm === 'ecdsa-sha256') {
    log.warn(
      'responses are signed with ECDSA-SHA256; the WSDL policy (Basic256Sha256) promises RSA-SHA256, so policy-enforcing clients (WSS4J/CXF) must be configured for ECDSA',
      { certFile: rs.certFile },
    );
  }
  const write: EnvelopeWriter = signer ? (v, body) => signer.envelope(v, body) : envelope;
  return { verifier, signer, write };
}
