import { expect } from 'chai';
import * as forge from 'node-forge';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { slashDn } from '../security/dn';
import { crlfCanonical } from './sign-worker';
import { encryptFor, forgeSigner, signerSubject, type SmimeSigner } from './smime';

const BODY = 'APEL-individual-job-message: v0.3\nSite: TEST-SITE\nLocalJobId: c1:s1:t1\n%%\n';
const ENTITY = `Content-Type: text/plain\r\n\r\n${BODY.replace(/\n/g, '\r\n')}`;

/** A message the size of a 1,000-record batch (~120 KB). */
function bigBody(): string {
  const lines: string[] = ['APEL-individual-job-message: v0.3'];
  for (let i = 0; i < 1000; i++) {
    lines.push(`Site: TEST-SITE\nLocalJobId: c1:s1:t${i}\nWallDuration: ${i}\nCpuDuration: ${i}\n%%`);
  }
  return `${lines.join('\n')}\n`;
}

interface Parsed {
  headers: string;
  boundary: string;
  preamble: string;
  signedPart: string;
  signaturePart: string;
  trailer: string;
}

function parse(msg: string): Parsed {
  const m = /boundary="(----[0-9A-F]{32})"/.exec(msg);
  expect(m, 'boundary parameter').to.not.equal(null);
  const boundary = m![1]!;
  const [head, signedPart, signaturePart, trailer] = msg.split(`\n--${boundary}`);
  const [headers, preamble] = head!.split('\n\n');
  return {
    headers: headers!,
    boundary,
    preamble: preamble!,
    signedPart: signedPart!,
    signaturePart: signaturePart!,
    trailer: trailer!,
  };
}

function signatureDer(signaturePart: string): Buffer {
  const b64 = signaturePart.split('\n\n')[1]!;
  return Buffer.from(b64.replace(/\n/g, ''), 'base64');
}

describe('accounting/smime: S/MIME signing as openssl smime -sign -text', function () {
  this.timeout(30000);
  let pki: TestPki;
  let signer: SmimeSigner;

  before(async () => {
    pki = await makeTestPki();
    signer = forgeSigner({ certPem: pki.proxyRsa.certPem, keyPem: pki.proxyRsa.keyPem });
  });
  after(() => signer.close());

  it('canonicalizes line ends the way openssl does', () => {
    // Observed from `openssl smime -sign -text`: CRs before LF dropped, trailing spaces kept,
    // a last line without LF stays without CRLF.
    expect(crlfCanonical('a \r\r\nb\n\n\nc')).to.equal('a \r\nb\r\n\r\n\r\nc');
    expect(crlfCanonical('x\r\ny\n')).to.equal('x\r\ny\r\n');
    expect(crlfCanonical('')).to.equal('');
  });

  it("writes openssl's multipart/signed layout with the CRLF entity and no transfer encoding", async () => {
    const msg = await signer.sign(BODY);
    const p = parse(msg);
    expect(p.headers).to.equal(
      'MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/x-pkcs7-signature"; ' +
        `micalg="sha-256"; boundary="${p.boundary}"`,
    );
    expect(p.preamble).to.equal('This is an S/MIME signed message\n');
    expect(p.signedPart).to.equal(`\n${ENTITY}`);
    expect(p.signedPart).to.not.match(/Content-Transfer-Encoding/i);
    const [sigHeaders, b64] = p.signaturePart.split('\n\n');
    expect(sigHeaders).to.equal(
      '\nContent-Type: application/x-pkcs7-signature; name="smime.p7s"\n' +
        'Content-Transfer-Encoding: base64\n' +
        'Content-Disposition: attachment; filename="smime.p7s"',
    );
    const lines = b64!.split('\n');
    expect(lines.pop()).to.equal('');
    expect(lines.slice(0, -1).every((l) => l.length === 64)).to.equal(true);
    expect(lines.at(-1)!.length).to.be.within(1, 64);
    expect(p.trailer).to.equal('--\n\n');
  });

  it('embeds the signer certificate in a detached SHA-256 SignedData', async () => {
    const der = signatureDer(parse(await signer.sign(BODY)).signaturePart);
    const p7 = forge.pkcs7.messageFromAsn1(
      forge.asn1.fromDer(der.toString('binary')),
    ) as forge.pkcs7.Captured<forge.pkcs7.PkcsSignedData>;
    expect(p7.certificates.map((c) => c.subject.getField('CN').value)).to.deep.equal(['proxy-signer-rsa']);
    expect(p7.rawCapture.content, 'detached: no content inside').to.equal(undefined);
    expect(
      der.includes(Buffer.from(forge.asn1.oidToDer(forge.pki.oids.sha256).getBytes(), 'binary')),
    ).to.equal(true);
  });

  it('embeds the chain when given', async () => {
    const withChain = forgeSigner({ ...pki.proxyRsa, chainPem: pki.ca.certPem });
    try {
      const der = signatureDer(parse(await withChain.sign(BODY)).signaturePart);
      const p7 = forge.pkcs7.messageFromAsn1(
        forge.asn1.fromDer(der.toString('binary')),
      ) as forge.pkcs7.PkcsSignedData;
      expect(p7.certificates.map((c) => c.subject.getField('CN').value)).to.deep.equal([
        'proxy-signer-rsa',
        'Symphony Test Root CA',
      ]);
    } finally {
      await withChain.close();
    }
  });

  it('keeps the event loop turning while a 1,000-record message is signed', async () => {
    await signer.sign('warm-up\n'); // the worker is started; what follows is signing only
    let ticks = 0;
    let done = false;
    const spin = async (): Promise<void> => {
      for (let i = 0; i < 10_000_000 && !done; i++) {
        await new Promise<void>((r) => setImmediate(r));
        ticks++;
      }
    };
    const spinning = spin();
    const signed = await signer.sign(bigBody());
    done = true;
    await spinning;
    expect(signed).to.include('This is an S/MIME signed message');
    // Signing on this thread would leave no turn at all until it finished.
    expect(ticks).to.be.greaterThan(10);
  });

  it('signs concurrently with several workers', async () => {
    const pool = forgeSigner({ ...pki.proxyRsa, workers: 2 });
    try {
      const out = await Promise.all([1, 2, 3, 4].map((i) => pool.sign(`record ${i}\n`)));
      out.forEach((msg, i) => expect(parse(msg).signedPart).to.include(`record ${i + 1}\r\n`));
    } finally {
      await pool.close();
    }
  });

  it('refuses non-ASCII text, naming the offset and what to do', async () => {
    let error: Error | undefined;
    await signer.sign('GlobalUserName: /CN=Zoë\n').catch((e: Error) => (error = e));
    expect(error?.message).to.match(/non-ASCII character at offset 22.*escape it/);
    expect(error?.message).to.not.include('Zo');
  });

  it('refuses an EC key with a hint to use the openssl signer', () => {
    expect(() => forgeSigner({ certPem: pki.proxyEc.certPem, keyPem: pki.proxyEc.keyPem })).to.throw(
      /RSA keys only.*ec.*use the 'openssl' signer/,
    );
  });

  it('refuses a key that does not belong to the certificate', () => {
    expect(() => forgeSigner({ certPem: pki.proxyRsa.certPem, keyPem: pki.client.keyPem })).to.throw(
      /does not belong/,
    );
  });

  it('refuses to sign once closed', async () => {
    const s = forgeSigner(pki.proxyRsa);
    await s.sign('x\n');
    await s.close();
    let error: Error | undefined;
    await s.sign('x\n').catch((e: Error) => (error = e));
    expect(error?.message).to.match(/closed/);
  });

  it('envelopes the canonical signed message with AES-256-CBC for an RSA recipient', async () => {
    const signed = await signer.sign(BODY);
    const enc = await encryptFor(signed, pki.proxyRsa.certPem);
    const [headers, b64] = enc.split('\n\n');
    expect(headers).to.equal(
      'MIME-Version: 1.0\nContent-Disposition: attachment; filename="smime.p7m"\n' +
        'Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n' +
        'Content-Transfer-Encoding: base64',
    );
    const der = Buffer.from(b64!.replace(/\n/g, ''), 'base64').toString('binary');
    const p7 = forge.pkcs7.messageFromAsn1(forge.asn1.fromDer(der)) as forge.pkcs7.PkcsEnvelopedData;
    const cert = forge.pki.certificateFromPem(pki.proxyRsa.certPem);
    p7.decrypt(
      p7.findRecipient(cert)!,
      forge.pki.privateKeyFromPem(pki.proxyRsa.keyPem) as forge.pki.rsa.PrivateKey,
    );
    expect((p7.content as forge.util.ByteBuffer).bytes()).to.equal(crlfCanonical(signed));
  });

  it('refuses a recipient certificate without an RSA key', async () => {
    let error: Error | undefined;
    await encryptFor('x\n', pki.proxyEc.certPem).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/must be a PEM certificate with an RSA key/);
  });
});

describe('security/dn: slashDn (OpenSSL legacy form)', () => {
  it('reverses RFC 4514 order and maps type names', () => {
    expect(slashDn('CN=host.example.org,OU=grid,O=Bank,C=UK')).to.equal(
      '/C=UK/O=Bank/OU=grid/CN=host.example.org',
    );
    expect(slashDn('cn=a, emailAddress=x@y.z, 2.5.4.10=Bank')).to.equal('/O=Bank/emailAddress=x@y.z/CN=a');
  });

  it("keeps Node's multi-line order and unescapes its RFC 2253 escapes", () => {
    expect(slashDn('C=UK\nO=Bank\nCN=a\\,b + UID=x7')).to.equal('/C=UK/O=Bank/CN=a,b+UID=x7');
  });

  it('escapes separators and writes non-ASCII bytes as \\xHH', () => {
    expect(slashDn('CN=Zoë,OU=A/B+UID=p\\+q')).to.equal('/OU=A\\/B+UID=p\\+q/CN=Zo\\xC3\\xAB');
    expect(slashDn('CN=Zo\\C3\\AB')).to.equal('/CN=Zo\\xC3\\xAB');
  });

  it("gives the signer certificate's subject in slash form", async () => {
    const pki = await makeTestPki();
    expect(signerSubject(pki.proxyRsa.certPem)).to.equal('/O=Symphony Test/CN=proxy-signer-rsa');
  });
});
