import { expect } from 'chai';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { GatewayError } from '../errors/catalogue';
import { readEnvelope, type SoapVersion } from '../soap/envelope';
import { parseXml } from '../soap/xml';
import { EnvelopeSigner } from './envelope-signer';
import { TrustStore } from './truststore';
import { WssVerifier } from './verifier';

const POLICY = { ttlSeconds: 300, skewSeconds: 60, allowSha1: false, allowMd5: false };
const BODY = '<m:op xmlns:m="urn:m" b="2" a="1"><m:v>1 &amp; 2</m:v><m:e/></m:op>';

describe('security/verifier: in-process round trips with the envelope signer', () => {
  let pki: TestPki;
  let trust: TrustStore;

  before(async () => {
    pki = await makeTestPki();
    trust = await TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [pki.crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
  });

  function verifier(): WssVerifier {
    const seen = new Set<string>();
    return new WssVerifier(trust, POLICY, {
      claimOnce: async (k) => (seen.has(k) ? 'taken' : (seen.add(k), 'claimed')),
    });
  }

  async function verifyText(v: WssVerifier, xml: string, version: SoapVersion): Promise<string> {
    const root = parseXml(xml);
    const parts = readEnvelope(root, version);
    try {
      return (await v.verify(root, parts.header, parts.payload.parent!)).signer.subject;
    } catch (e) {
      if (e instanceof GatewayError) return e.code;
      throw e;
    }
  }

  for (const version of ['1.1', '1.2'] as const) {
    for (const kind of ['client', 'ecClient'] as const) {
      it(`accepts ${kind} envelopes in SOAP ${version} once, then calls the second a replay`, async () => {
        const signer = new EnvelopeSigner({ certFile: pki[kind].certFile, keyFile: pki[kind].keyFile });
        const v = verifier();
        const xml = signer.envelope(version, BODY);
        expect(await verifyText(v, xml, version)).to.match(/^CN=client-/);
        expect(await verifyText(v, xml, version)).to.equal('SSP_WSS_REPLAY');
      });
    }
  }

  it('refuses a signed Body moved into a header while a new Body is dispatched', async () => {
    const signer = new EnvelopeSigner({ certFile: pki.client.certFile, keyFile: pki.client.keyFile });
    const xml = signer.envelope('1.1', BODY);
    const body = /<soap:Body [^>]*>.*<\/soap:Body>/.exec(xml)![0];
    const wrapped = xml
      .replace(body, '<soap:Body wsu:Id="evil"><m:op xmlns:m="urn:m"><m:v>EVIL</m:v></m:op></soap:Body>')
      .replace('<soap:Header>', `<soap:Header><w:Wrapper xmlns:w="urn:w">${body}</w:Wrapper>`);
    expect(await verifyText(verifier(), wrapped, '1.1')).to.equal('SSP_WSS_STRUCTURE');
  });

  it('refuses a changed Body, and a certificate outside the trust store', async () => {
    const good = new EnvelopeSigner({ certFile: pki.client.certFile, keyFile: pki.client.keyFile });
    const changed = good.envelope('1.1', BODY).replace('1 &amp; 2', '1 &amp; 3');
    expect(await verifyText(verifier(), changed, '1.1')).to.equal('SSP_WSS_SIGNATURE');
    const rogue = new EnvelopeSigner({ certFile: pki.selfSigned.certFile, keyFile: pki.selfSigned.keyFile });
    expect(await verifyText(verifier(), rogue.envelope('1.1', BODY), '1.1')).to.equal('SSP_WSS_UNTRUSTED');
  });

  it('refuses a stale envelope by its Timestamp', async () => {
    const signer = new EnvelopeSigner({ certFile: pki.client.certFile, keyFile: pki.client.keyFile });
    const stale = signer.envelope('1.1', BODY, '', Date.now() - 10 * 60_000);
    expect(await verifyText(verifier(), stale, '1.1')).to.equal('SSP_WSS_TIMESTAMP');
  });
});
