/** WS-Security: the request verifier (when required) and the response writer (signing, when configured). */
import type { ProxyConfig } from '../config';
import { log } from '../log';
import { EnvelopeSigner } from '../security/envelope-signer';
import { OcspChecker } from '../security/ocsp';
import { TrustStore } from '../security/truststore';
import { WssVerifier } from '../security/verifier';
import { envelope, type EnvelopeWriter } from '../soap/envelope';
import type { StateStore } from '../store/store';
import { watchFiles } from '../file-watch';
import type { Resources } from './resources';
import { replayCache } from './store';

export interface Security {
  verifier: WssVerifier | null;
  /** Reads the CRL files again (SIGHUP, file change); null without WS-Security. */
  reloadCrls: (() => Promise<CrlReload>) | null;
  signer: EnvelopeSigner | null;
  /** Writes every response and fault envelope; signs them when a signer is configured. */
  write: EnvelopeWriter;
}

export type CrlReload = { ok: true; crls: number } | { ok: false; error: string };

/** One reload at a time; a failure keeps the CRLs in effect and says which file is wrong. */
function crlReloader(trust: TrustStore): () => Promise<CrlReload> {
  let chain: Promise<CrlReload> = Promise.resolve({ ok: true, crls: 0 });
  return () => {
    chain = chain.then(async () => {
      try {
        const r = await trust.reloadCrls();
        log.info('CRLs reloaded', { crls: r.crls });
        return { ok: true, crls: r.crls };
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        log.error('CRL reload failed; the CRLs in effect stay', { error });
        return { ok: false, error };
      }
    });
    return chain;
  };
}

export async function loadSecurity(
  config: ProxyConfig,
  store: StateStore,
  res: Resources,
): Promise<Security> {
  const sec = config.security;
  let verifier: WssVerifier | null = null;
  let reloadCrls: Security['reloadCrls'] = null;
  if (sec.mode === 'wss') {
    const trust = await TrustStore.load(sec.trust, sec.algorithms);
    const ocsp = sec.trust.ocsp;
    const revocation = ocsp.enabled
      ? new OcspChecker(ocsp, { skewSeconds: sec.timestamp.skewSeconds, allowSha1: sec.algorithms.allowSha1 })
      : null;
    verifier = new WssVerifier(
      trust,
      { ...sec.timestamp, ...sec.algorithms },
      replayCache(store, sec),
      revocation,
    );
    log.info('WS-Security required', {
      trustAnchors: trust.anchorCount,
      crls: sec.trust.crlFiles.length,
      ocsp: ocsp.enabled ? { failMode: ocsp.failMode, responderUrl: ocsp.responderUrl ?? 'AIA' } : 'off',
    });
    const reload = crlReloader(trust);
    reloadCrls = reload;
    if (sec.trust.watchCrls && trust.crlPaths.length > 0) {
      res.add(
        'CRL watch',
        watchFiles(trust.crlPaths, 'CRL files', () => void reload()),
        (w) => w.close(),
      );
    }
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
  const write: EnvelopeWriter = signer ? (v, body, header) => signer.envelope(v, body, header) : envelope;
  return { verifier, reloadCrls, signer, write };
}
