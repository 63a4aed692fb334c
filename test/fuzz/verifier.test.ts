/**
 * Fuzz target 3: the WS-Security verifier (parseXmlBytes → readEnvelope → WssVerifier.verify,
 * as the pipeline runs them) on signed envelopes attacked by wrapping and byte mutations.
 *
 * The envelopes are signed by test/helpers/wss-client.ts (xml-crypto and xmldom, no code shared
 * with the proxy), and the signed Body's canonical form is taken from xml-crypto too.
 *
 * Property: the verifier refuses with a GatewayError, or the Body at the dispatch position is,
 * after exclusive c14n, byte-identical to the Body the client signed. Never another Body, and
 * never an exception other than a GatewayError.
 */
import { expect } from 'chai';
import { ExclusiveCanonicalization } from 'xml-crypto';
import { GatewayError } from '../../src/errors/catalogue';
import { excC14n } from '../../src/security/c14n';
import { TrustStore } from '../../src/security/truststore';
import { WssVerifier } from '../../src/security/verifier';
import { readEnvelope } from '../../src/soap/envelope';
import { parseXmlBytes, XmlRejected } from '../../src/soap/xml';
import { makeTestPki } from '../helpers/pki';
import { signedEnvelope, signedParts } from '../helpers/wss-client';
import { attackedEnvelopeArb, SYM, type AttackedEnvelope, type SignedSample } from './arbitraries';
import { fuzz, mochaTimeoutMs } from './runner';

const POLICY = { ttlSeconds: 300, skewSeconds: 60, allowSha1: false, allowMd5: false };

/** Payloads the signer puts in the Body: prefixed, default-namespaced, with entities and whitespace. */
const PAYLOADS = [
  `<sym:getSessionStatus xmlns:sym="${SYM}"><sym:sessionId>s-1</sym:sessionId></sym:getSessionStatus>`,
  `<getSessionStatus xmlns="${SYM}"><sessionId>s-2</sessionId></getSessionStatus>`,
  `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>s-3</sym:sessionId><sym:taskSubmissionAttributes><sym:tag>a &amp; b &lt; c</sym:tag><sym:taskInput><sym:text>x\ny</sym:text></sym:taskInput></sym:taskSubmissionAttributes></sym:sendTaskInput>`,
  `\n  <sym:closeSession xmlns:sym="${SYM}" xmlns:unused="urn:u" a="1"><sym:sessionId>s-4</sym:sessionId></sym:closeSession>\n`,
];

interface Signed extends SignedSample {
  /** Exclusive c14n of the signed Body, by xml-crypto. */
  bodyC14n: string;
}

describe('fuzz: WS-Security verifier never accepts another Body than the signed one', function () {
  this.timeout(mochaTimeoutMs());
  const created = new Date();
  const now = created.getTime() + 1000;
  let verifier: WssVerifier;
  const pool: Signed[] = [];

  before(async () => {
    const pki = await makeTestPki();
    const trust = await TrustStore.load(
      { caFiles: [pki.ca.certFile], intermediateFiles: [], crlFiles: [pki.crlFile], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
    // Every message is new to the replay cache: the property is about what is signed, and a
    // replay refusal would hide an acceptance.
    verifier = new WssVerifier(trust, POLICY, { claimOnce: async () => 'claimed' });
    for (const soapVersion of ['1.1', '1.2'] as const) {
      for (const signer of ['rsa', 'ec'] as const) {
        for (const payload of PAYLOADS) {
          const pair = signer === 'rsa' ? pki.client : pki.ecClient;
          const xml = signedEnvelope(payload, {
            soapVersion,
            certPem: pair.certPem,
            keyPem: pair.keyPem,
            signatureAlgorithm: signer === 'rsa' ? 'rsa-sha256' : 'ecdsa-sha256',
            created,
          });
          const node = signedParts(xml).body as unknown as Parameters<
            ExclusiveCanonicalization['process']
          >[0];
          const bodyC14n = new ExclusiveCanonicalization().process(node, {}) as string;
          pool.push({ xml, version: soapVersion, bodyC14n });
        }
      }
    }
  });

  type Verdict = { accepted: true; bodyC14n: string } | { accepted: false; code: string };

  async function verdict(bytes: Buffer, version: '1.1' | '1.2'): Promise<Verdict> {
    try {
      const root = parseXmlBytes(bytes);
      const { header, payload } = readEnvelope(root, version);
      const body = payload.parent!;
      await verifier.verify(root, header, body, now);
      return { accepted: true, bodyC14n: excC14n(body) };
    } catch (e) {
      if (e instanceof XmlRejected) return { accepted: false, code: `xml:${e.kind}` };
      if (e instanceof GatewayError) return { accepted: false, code: e.code };
      throw e; // a crash: the property fails with it
    }
  }

  it('accepts every unattacked envelope of the pool (the fuzzer starts from valid messages)', async () => {
    for (const s of pool) {
      const v = await verdict(Buffer.from(s.xml), s.version);
      expect(v).to.deep.equal({ accepted: true, bodyC14n: s.bodyC14n });
    }
  });

  it('refuses, or dispatches exactly the signed Body', async () => {
    const stats = { accepted: 0, acceptedAttacked: 0, refused: {} as Record<string, number> };
    await fuzz(
      attackedEnvelopeArb(pool),
      async (input: AttackedEnvelope) => {
        const sample = pool[input.sample]!;
        const v = await verdict(input.bytes, sample.version);
        if (!v.accepted) {
          stats.refused[v.code] = (stats.refused[v.code] ?? 0) + 1;
          return;
        }
        stats.accepted++;
        if (input.attacks.length || input.mutations.length) stats.acceptedAttacked++;
        if (v.bodyC14n !== sample.bodyC14n) {
          throw new Error(
            `ACCEPTED with a different Body at the dispatch position\n  signed:     ${JSON.stringify(sample.bodyC14n)}\n  dispatched: ${JSON.stringify(v.bodyC14n)}`,
          );
        }
      },
      {
        name: 'WS-Security verifier',
        seed: 0x5157,
        chunk: 50,
        stats: () =>
          `accepted ${stats.accepted} (${stats.acceptedAttacked} of them changed but with the signed Body intact), refused ${JSON.stringify(stats.refused)}`,
      },
    );
    expect(stats.accepted, 'some envelopes must get through, or the property says nothing').to.be.greaterThan(
      0,
    );
  });
});
