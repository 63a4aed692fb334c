import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { envelope11, fakeCall, op } from '../../test/helpers/in-process';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { signedEnvelope } from '../../test/helpers/wss-client';
import { GatewayError } from '../errors/catalogue';
import type { ParsedCall } from '../pipeline/context';
import { TrustStore } from '../security/truststore';
import { WssVerifier } from '../security/verifier';
import type { SoapVersion } from '../soap/envelope';
import { MemoryStore } from '../store/memory-store';
import { parse } from './parse';
import { wssecurity } from './wssecurity';

const POLICY = { ttlSeconds: 300, skewSeconds: 60, allowSha1: false, allowMd5: false };
const LIMITS = { maxDepth: 64, maxAttributes: 64, maxNameLength: 256, maxElements: 200_000, maxHeaders: 32 };
const WSA = 'http://www.w3.org/2005/08/addressing';
const PAYLOAD = op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>');

const messageIdHeader = (id: string): string => `<wsa:MessageID xmlns:wsa="${WSA}">${id}</wsa:MessageID>`;

/** A call as the envelope phase leaves it (the real parse stage, so messageId is set as in production). */
async function parsedCall(xml: string, version: SoapVersion = '1.1'): Promise<ParsedCall> {
  const ctx = Object.assign(fakeCall(), { raw: Buffer.from(xml) });
  ctx.soapVersion = version;
  await parse(LIMITS)(ctx);
  const { envelope, header, payload } = ctx;
  if (!envelope || header === undefined || !payload)
    throw new Error('the envelope phase established nothing');
  return Object.assign(ctx, { envelope, header, payload });
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

describe('stages/wssecurity: verifying the signature before anything reads the message', () => {
  let pki: TestPki;
  let trust: TrustStore;
  let store: MemoryStore;
  let hook: ReturnType<typeof wssecurity>;

  before(async () => {
    pki = await makeTestPki();
    trust = await TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [pki.crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
  });
  beforeEach(() => {
    store = new MemoryStore();
    hook = wssecurity(new WssVerifier(trust, POLICY, store));
  });
  afterEach(() => store.close());

  const signed = (
    headerXml = '',
    kind: 'client' | 'ecClient' | 'selfSigned' = 'client',
    version: SoapVersion = '1.1',
  ) =>
    signedEnvelope(PAYLOAD, {
      soapVersion: version,
      signatureAlgorithm: kind === 'ecClient' ? 'ecdsa-sha256' : 'rsa-sha256',
      certPem: pki[kind].certPem,
      keyPem: pki[kind].keyPem,
      headerXml,
    });

  it('sets ctx.signer to the verified certificate and resend=false for a good signed envelope', async () => {
    const ctx = await parsedCall(signed(messageIdHeader('msg-good-1')));
    await hook(ctx);
    const cert = new X509Certificate(pki.client.certPem);
    expect(ctx.signer?.subject).to.match(/^CN=client-a,/);
    expect(ctx.signer?.fingerprint256).to.equal(cert.fingerprint256);
    expect(ctx.signer?.keyType).to.equal('rsa');
    expect(ctx.resend).to.equal(false);
  });

  it('verifies a SOAP 1.2 envelope signed with an EC key', async () => {
    const ctx = await parsedCall(signed('', 'ecClient', '1.2'), '1.2');
    await hook(ctx);
    expect(ctx.signer?.subject).to.match(/^CN=client-ec,/);
    expect(ctx.signer?.keyType).to.equal('ec');
    expect(ctx.resend).to.equal(false);
  });

  it('refuses an unsigned envelope with SSP_WSS_MISSING, with or without a Header', async () => {
    for (const xml of [
      envelope11(PAYLOAD),
      envelope11(PAYLOAD).replace(
        '<s:Body>',
        `<s:Header>${messageIdHeader('msg-unsigned-1')}</s:Header><s:Body>`,
      ),
    ]) {
      const ctx = await parsedCall(xml);
      const err = await refusal(hook(ctx));
      expect(err.code).to.equal('SSP_WSS_MISSING');
      expect(err.detail).to.equal('AuthenticationFault');
      expect(ctx.signer).to.equal(undefined);
    }
  });

  it('calls a resend of the same signed envelope with the same MessageID a resend', async () => {
    const xml = signed(messageIdHeader('msg-resend-1'));
    const first = await parsedCall(xml);
    await hook(first);
    expect(first.resend).to.equal(false);
    const again = await parsedCall(xml);
    await hook(again);
    expect(again.resend).to.equal(true);
    expect(again.messageId).to.equal('msg-resend-1');
    expect(again.signer?.fingerprint256).to.equal(first.signer?.fingerprint256);
  });

  it('calls an identical resend a resend when neither copy carries a MessageID', async () => {
    const xml = signed();
    await hook(await parsedCall(xml));
    const again = await parsedCall(xml);
    await hook(again);
    expect(again.messageId).to.equal(undefined);
    expect(again.resend).to.equal(true);
  });

  it('refuses the same signed envelope under a different MessageID with SSP_WSS_REPLAY', async () => {
    // The MessageID header is outside the signature, so the copy still verifies: only the
    // replay cache can tell that this is not the message it was.
    const xml = signed(messageIdHeader('msg-replay-1'));
    await hook(await parsedCall(xml));
    const replayed = await parsedCall(xml.replace('msg-replay-1', 'msg-replay-2'));
    expect(replayed.messageId).to.equal('msg-replay-2');
    const err = await refusal(hook(replayed));
    expect(err.code).to.equal('SSP_WSS_REPLAY');
    expect(replayed.signer).to.equal(undefined);
    expect(replayed.resend).to.equal(false);
  });

  it('refuses a copy that drops the MessageID of the first with SSP_WSS_REPLAY', async () => {
    const xml = signed(messageIdHeader('msg-replay-3'));
    await hook(await parsedCall(xml));
    const stripped = await parsedCall(xml.replace(messageIdHeader('msg-replay-3'), ''));
    expect(stripped.messageId).to.equal(undefined);
    expect((await refusal(hook(stripped))).code).to.equal('SSP_WSS_REPLAY');
  });

  it('passes on the verifier’s other refusals: a changed Body, an untrusted signer, a stale Timestamp', async () => {
    const changed = signed().replace('<sym:sessionId>s-1<', '<sym:sessionId>s-2<');
    expect((await refusal(hook(await parsedCall(changed)))).code).to.equal('SSP_WSS_SIGNATURE');
    const rogue = signed('', 'selfSigned');
    expect((await refusal(hook(await parsedCall(rogue)))).code).to.equal('SSP_WSS_UNTRUSTED');
    const stale = signedEnvelope(PAYLOAD, {
      certPem: pki.client.certPem,
      keyPem: pki.client.keyPem,
      created: new Date(Date.now() - 10 * 60_000),
    });
    expect((await refusal(hook(await parsedCall(stale)))).code).to.equal('SSP_WSS_TIMESTAMP');
  });
});
