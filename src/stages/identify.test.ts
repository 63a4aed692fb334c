import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { envelope11, fakeCall, op, type FakeRequestOptions } from '../../test/helpers/in-process';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { GatewayError } from '../errors/catalogue';
import type { ParsedCall } from '../pipeline/context';
import { TrustStore, type TrustedSigner } from '../security/truststore';
import { readEnvelope } from '../soap/envelope';
import { parseXml } from '../soap/xml';
import { ANONYMOUS, identify } from './identify';

const XML = envelope11(op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>'));

/** A call as the envelope phase leaves it, with the signer WS-Security verified (if any). */
function securedCall(signer: TrustedSigner | null | undefined, o: FakeRequestOptions = {}): ParsedCall {
  const root = parseXml(XML);
  const { header, payload } = readEnvelope(root, '1.1');
  const ctx = Object.assign(fakeCall({ ...o, body: XML }), {
    raw: Buffer.from(XML),
    envelope: root,
    header,
    payload,
  });
  if (signer !== undefined) ctx.signer = signer;
  return ctx;
}

/** The fault a hook ended the call with; fails the test when it did not throw a GatewayError. */
async function refusal(run: Promise<unknown>): Promise<GatewayError> {
  try {
    await run;
  } catch (e) {
    expect(e).to.be.instanceOf(GatewayError);
    if (e instanceof GatewayError) return e;
  }
  throw new Error('expected the stage to refuse the call');
}

/** "AB:CD:…" → "abcd…": another spelling of the same fingerprint. */
const bare = (fingerprint: string): string => fingerprint.replace(/:/g, '').toLowerCase();

describe('stages/identify: who is calling', () => {
  let pki: TestPki;
  let clientA: TrustedSigner;
  let clientB: TrustedSigner;

  before(async () => {
    pki = await makeTestPki();
    const trust = await TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [pki.crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
    const signerOf = (pem: string): TrustedSigner => {
      const der = new X509Certificate(pem).raw;
      return trust.check(der, der.toString('base64'), Date.now());
    };
    clientA = signerOf(pki.client.certPem);
    clientB = signerOf(pki.otherClient.certPem);
  });

  describe('without a signer (WS-Security off)', () => {
    it('makes every caller the anonymous consumer and sets signer to null', async () => {
      for (const ctx of [securedCall(undefined), securedCall(null)]) {
        await identify()(ctx);
        expect(ctx.signer).to.equal(null);
        expect(ctx.consumer).to.equal(ANONYMOUS);
        expect(ctx.consumer).to.deep.equal({ id: 'anonymous', via: 'anonymous' });
      }
    });

    it('does not require a mapping, nor check a TLS client certificate, for the anonymous consumer', async () => {
      const ctx = securedCall(undefined, { tlsPeerFingerprint256: clientB.fingerprint256 });
      await identify({ consumers: [], requireMappedConsumer: true })(ctx);
      expect(ctx.consumer?.id).to.equal('anonymous');
    });
  });

  describe('with a signer', () => {
    it('uses the certificate subject as the consumer id when no mapping names it', async () => {
      const ctx = securedCall(clientA);
      await identify()(ctx);
      expect(ctx.signer).to.equal(clientA);
      expect(ctx.consumer).to.deep.equal({
        id: clientA.subject,
        via: 'certificate',
        subject: clientA.subject,
        fingerprint256: bare(clientA.fingerprint256).toUpperCase(),
      });
      expect(ctx.consumer?.id).to.match(/^CN=client-a,/);
    });

    it('maps a subject to its consumer id, ignoring RDN order, case and spacing', async () => {
      const hook = identify({
        consumers: [{ id: 'client-a-app', subject: 'o=symphony test, cn=CLIENT-A' }],
        requireMappedConsumer: false,
      });
      const ctx = securedCall(clientA);
      await hook(ctx);
      expect(ctx.consumer).to.deep.include({
        id: 'client-a-app',
        via: 'certificate',
        subject: clientA.subject,
      });
      const other = securedCall(clientB);
      await hook(other);
      expect(other.consumer?.id).to.equal(clientB.subject);
    });

    it('maps a fingerprint in any spelling to its consumer id, before a subject mapping', async () => {
      const hook = identify({
        consumers: [
          { id: 'by-subject', subject: clientA.subject },
          { id: 'by-fingerprint', fingerprint256: bare(clientA.fingerprint256) },
        ],
        requireMappedConsumer: true,
      });
      const ctx = securedCall(clientA);
      await hook(ctx);
      expect(ctx.consumer?.id).to.equal('by-fingerprint');
    });

    it('refuses an unmapped certificate with SSP_UNKNOWN_CONSUMER when a mapping is required', async () => {
      const hook = identify({
        consumers: [{ id: 'client-a-app', subject: clientA.subject }],
        requireMappedConsumer: true,
      });
      const mapped = securedCall(clientA);
      await hook(mapped);
      expect(mapped.consumer?.id).to.equal('client-a-app');
      const ctx = securedCall(clientB);
      const err = await refusal(hook(ctx));
      expect(err.code).to.equal('SSP_UNKNOWN_CONSUMER');
      expect(err.message).to.contain('client-b');
      expect(ctx.consumer).to.equal(undefined);
      // Asked again (the answer is cached per certificate only when it succeeds).
      expect((await refusal(hook(securedCall(clientB)))).code).to.equal('SSP_UNKNOWN_CONSUMER');
    });

    it('gives the same certificate the same consumer on every call', async () => {
      const hook = identify();
      const first = securedCall(clientA);
      const second = securedCall(clientA);
      await hook(first);
      await hook(second);
      expect(second.consumer).to.deep.equal(first.consumer);
    });
  });

  describe('over mutual TLS', () => {
    it('accepts a TLS client certificate that is the signer’s, in any fingerprint spelling', async () => {
      for (const fp of [clientA.fingerprint256, bare(clientA.fingerprint256)]) {
        const ctx = securedCall(clientA, { tlsPeerFingerprint256: fp });
        await identify()(ctx);
        expect(ctx.consumer?.id, fp).to.equal(clientA.subject);
      }
    });

    it('refuses a TLS client certificate other than the signer’s with SSP_TLS_SIGNER_MISMATCH', async () => {
      const hook = identify({
        consumers: [{ id: 'client-a-app', fingerprint256: clientA.fingerprint256 }],
        requireMappedConsumer: false,
      });
      // The mismatch is refused even after the signer's consumer was cached by a good call.
      await hook(securedCall(clientA));
      const ctx = securedCall(clientA, { tlsPeerFingerprint256: clientB.fingerprint256 });
      const err = await refusal(hook(ctx));
      expect(err.code).to.equal('SSP_TLS_SIGNER_MISMATCH');
      expect(ctx.consumer).to.equal(undefined);
    });

    it('accepts a TLS connection without a client certificate', async () => {
      const ctx = securedCall(clientA);
      Object.assign(ctx.req.socket, { encrypted: true, getPeerCertificate: () => ({}) });
      await identify()(ctx);
      expect(ctx.consumer?.id).to.equal(clientA.subject);
    });
  });
});
