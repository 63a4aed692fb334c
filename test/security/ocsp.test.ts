/**
 * OCSP against a real responder: `openssl ocsp` serving an index.txt for a test CA built with
 * the openssl CLI (independent of the proxy's ASN.1 code), started on a free port and stopped in
 * after(). Note: OpenSSL 3.0's `ocsp -port` cannot bind to one address; it listens on every
 * interface for the few seconds the suite runs, and is only ever asked on 127.0.0.1.
 */
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { Resources } from '../../src/components/resources';
import { loadSecurity } from '../../src/components/security';
import { parseConfig } from '../../src/config';
import { GatewayError } from '../../src/errors/catalogue';
import { log } from '../../src/log';
import { OcspChecker, type OcspConfig } from '../../src/security/ocsp';
import { TrustStore, type TrustedSigner } from '../../src/security/truststore';
import { MemoryStore } from '../../src/store/memory-store';
import { op, runRequest, startHarness, type Harness } from '../helpers/in-process';
import { exited, freePort, stopProcess } from '../helpers/peer-process';
import { hasCommand, requirePeer } from '../helpers/peers';
import { signedEnvelope } from '../helpers/wss-client';

const CA_SUBJECT = '/O=Symphony Test/CN=OCSP Test CA';

interface Responder {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** The refusal a promise ends with (fails the test if it resolves or throws something else). */
async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

/**
 * Resolves when `openssl ocsp` reports its listening socket ("ACCEPT [::]:port"), printed after
 * listen(); rejects if it exits first or at the deadline. (A TCP connect probe is no good: the
 * 3.0 responder blocks on a connection that sends no request.)
 */
function waitForAccept(child: ChildProcess, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const done = (err?: Error): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (/^ACCEPT \S+:\d+/m.test(out)) done();
    };
    const onExit = (code: number | null): void => done(new Error(`openssl ocsp exited (${code})`));
    const timer = setTimeout(
      () => done(new Error(`openssl ocsp did not listen within ${deadlineMs} ms`)),
      deadlineMs,
    );
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    if (exited(child)) onExit(child.exitCode);
  });
}

/** Writable that collects JSON log lines, to assert on warnings. */
function captureLogs(): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const t = new winston.transports.Stream({ stream });
  log.add(t);
  return { lines, stop: () => log.remove(t) };
}

describe('security: OCSP against an openssl ocsp responder', function () {
  this.timeout(60_000);
  let dir: string;
  const f = (name: string): string => join(dir, name);
  let port: number;
  let trust: TrustStore;
  const responders: Responder[] = [];
  const quietConsole: winston.transport[] = [];

  /** A fresh unencrypted EC P-256 key, for `openssl req`. */
  const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };

  /** An EC P-256 key and a certificate for it signed by `ca` (files <name>.key/.pem) with `ext` lines. */
  function issue(name: string, subject: string, serial: string, ext: string[], ca = 'ca'): void {
    writeFileSync(f(`${name}.ext`), ['[x]', ...ext, ''].join('\n'));
    openssl('req', '-new', ...NEW_EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      `0x${serial}`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-extensions',
      'x',
      '-out',
      `${name}.pem`,
    );
  }

  function rootCa(name: string): void {
    openssl(
      'req',
      '-x509',
      ...NEW_EC_KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-subj',
      CA_SUBJECT,
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  }

  /** `openssl ocsp` for ca.pem's index, signing with the given responder certificate and key. */
  async function startResponder(rsigner: string, listenPort: number): Promise<Responder> {
    const child = spawn(
      'openssl',
      [
        'ocsp',
        '-index',
        'index.txt',
        '-port',
        String(listenPort),
        '-rsigner',
        `${rsigner}.pem`,
        '-rkey',
        `${rsigner}.key`,
        '-CA',
        'ca.pem',
        '-nmin',
        '5',
        '-ignore_err',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const r: Responder = { child, url: `http://127.0.0.1:${listenPort}/`, stop: () => stopProcess(child) };
    responders.push(r);
    try {
      await waitForAccept(child, 10_000);
      child.stdout!.resume();
    } catch (e) {
      throw new Error(`${(e as Error).message}; stderr: ${stderr.trim()}`, { cause: e });
    }
    return r;
  }

  let genuine: Responder;
  let rogue: Responder;

  const signer = (name: string): TrustedSigner => {
    const der = new X509Certificate(readFileSync(f(`${name}.pem`))).raw;
    return trust.check(der, der.toString('base64'), Date.now());
  };
  const checker = (o: Partial<OcspConfig> = {}): OcspChecker =>
    new OcspChecker(
      { enabled: true, failMode: 'closed', timeoutMs: 2000, cacheSeconds: 60, nonce: true, ...o },
      { skewSeconds: 60, allowSha1: false },
    );

  before(async function () {
    requirePeer(this, 'openssl', hasCommand('openssl', ['version']), 'apt-get install -y openssl');
    for (const t of log.transports) {
      if (t instanceof winston.transports.Console && !t.silent) {
        t.silent = true;
        quietConsole.push(t);
      }
    }
    const started = Date.now();
    dir = mkdtempSync(join(tmpdir(), 'ssp-ocsp-'));
    port = await freePort();
    const aia = `authorityInfoAccess=OCSP;URI:http://127.0.0.1:${port}/`;
    const client = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=clientAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      aia,
    ];
    const responder = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=OCSPSigning',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
    ];
    rootCa('ca');
    issue('responder', '/O=Symphony Test/CN=OCSP Responder', '2001', responder);
    issue('good', '/O=Symphony Test/CN=ocsp-good', '1001', client);
    issue('revoked', '/O=Symphony Test/CN=ocsp-revoked', '1002', client);
    issue('unlisted', '/O=Symphony Test/CN=ocsp-unlisted', '1003', client);
    issue('cached', '/O=Symphony Test/CN=ocsp-cached', '1004', client);
    // The attacker: a CA of the same name (not trusted) and a responder certificate from it.
    rootCa('rogue-ca');
    issue('rogue-responder', '/O=Symphony Test/CN=OCSP Responder', '2001', responder, 'rogue-ca');

    const exp = '991231235959Z';
    const revokedAt = '250101000000Z';
    writeFileSync(
      f('index.txt'),
      [
        `V\t${exp}\t\t1001\tunknown\t/O=Symphony Test/CN=ocsp-good`,
        `R\t${exp}\t${revokedAt},keyCompromise\t1002\tunknown\t/O=Symphony Test/CN=ocsp-revoked`,
        `V\t${exp}\t\t1004\tunknown\t/O=Symphony Test/CN=ocsp-cached`,
        '',
      ].join('\n'),
    );
    trust = await TrustStore.load(
      { caFiles: [f('ca.pem')], intermediateFiles: [], crlFiles: [], signerCertFiles: [] },
      { minRsaBits: 2048 },
    );
    genuine = await startResponder('responder', port);
    rogue = await startResponder('rogue-responder', await freePort());
    console.log(`      (test PKI and two responders ready in ${Date.now() - started} ms)`);
  });

  after(async () => {
    for (const r of responders) await r.stop();
    for (const t of quietConsole) t.silent = false;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a good certificate (responder from the AIA extension, nonce echoed, delegated signer)', async () => {
    const c = checker();
    await c.check(signer('good'));
    expect(c.cached).to.equal(1);
  });

  it('refuses a revoked certificate with SSP_WSS_UNTRUSTED, naming the reason', async () => {
    const e = await refusal(checker().check(signer('revoked')));
    expect(e.code).to.equal('SSP_WSS_UNTRUSTED');
    expect(e.message).to.match(
      /^CN=ocsp-revoked,O=Symphony Test has been revoked by CN=OCSP Test CA,O=Symphony Test \(OCSP responder http:\/\/127\.0\.0\.1:\d+\/: keyCompromise, since 2025-01-01T00:00:00\.000Z\)$/,
    );
  });

  it('status unknown (not in the index): closed refuses with SSP_WSS_UNTRUSTED, open accepts', async () => {
    const e = await refusal(checker().check(signer('unlisted')));
    expect(e.code).to.equal('SSP_WSS_UNTRUSTED');
    expect(e.message).to.match(/does not know the certificate CN=ocsp-unlisted.*\(status unknown\)/);
    await checker({ failMode: 'open' }).check(signer('unlisted'));
  });

  it('refuses a response signed by a responder the CA did not certify (rogue CA of the same name)', async () => {
    const e = await refusal(checker({ responderUrl: rogue.url }).check(signer('good')));
    expect(e.code).to.equal('SSP_WSS_REVOCATION_UNAVAILABLE');
    expect(e.message).to.match(
      /sent no usable answer for CN=ocsp-good.*: the response is signed by CN=OCSP Responder,O=Symphony Test, which was not issued by CN=OCSP Test CA,O=Symphony Test$/,
    );
  });

  it('through the in-process pipeline: the good client is served, the revoked one gets a coded fault', async () => {
    const res = new Resources();
    let h: Harness | undefined;
    try {
      const config = parseConfig({
        security: {
          trust: { caFiles: [f('ca.pem')], ocsp: { enabled: true, nonce: true, timeoutMs: 2000 } },
          responseSigning: { enabled: false },
        },
        grid: { embedded: true },
      });
      const security = await loadSecurity(config, new MemoryStore(), res);
      h = await startHarness({ verifier: security.verifier! });
      const call = async (name: string): Promise<{ code: string | undefined; body: string }> => {
        const pair = {
          certPem: readFileSync(f(`${name}.pem`), 'utf8'),
          keyPem: readFileSync(f(`${name}.key`), 'utf8'),
        };
        const body = signedEnvelope(op('getSessionStatus', '<sym:sessionId>s</sym:sessionId>'), {
          ...pair,
          signatureAlgorithm: 'ecdsa-sha256',
        });
        const r = await runRequest(h!.pipeline, { body });
        return { code: r.code, body: r.answer.body };
      };
      expect((await call('good')).code, 'trusted, so it reaches the operation').to.equal(
        'SSP_UNKNOWN_SESSION',
      );
      const refused = await call('revoked');
      expect(refused.code).to.equal('SSP_WSS_UNTRUSTED');
      expect(refused.body).to.include('AuthenticationFault');
      expect(refused.body).to.match(/has been revoked by CN=OCSP Test CA.*keyCompromise/);
    } finally {
      await h?.close();
      await res.closeAll();
    }
  });

  it('uses a cached good answer after its responder is gone (until nextUpdate, capped by cacheSeconds)', async () => {
    const own = await startResponder('responder', await freePort());
    const c = checker({ responderUrl: own.url });
    await c.check(signer('cached'));
    await own.stop();
    await c.check(signer('cached')); // from the cache
    const e = await refusal(checker({ responderUrl: own.url }).check(signer('cached')));
    expect(e.code, 'a fresh checker proves the responder is really gone').to.equal(
      'SSP_WSS_REVOCATION_UNAVAILABLE',
    );
    const uncached = checker({ responderUrl: own.url, cacheSeconds: 0 });
    expect((await refusal(uncached.check(signer('cached')))).code, 'cacheSeconds 0: not cached').to.equal(
      'SSP_WSS_REVOCATION_UNAVAILABLE',
    );
  });

  it('responder down: closed refuses (retryable SSP_WSS_REVOCATION_UNAVAILABLE), open accepts with a warning', async () => {
    const deadUrl = `http://127.0.0.1:${await freePort()}/`;
    const t0 = Date.now();
    const e = await refusal(checker({ responderUrl: deadUrl }).check(signer('good')));
    expect(e.code).to.equal('SSP_WSS_REVOCATION_UNAVAILABLE');
    expect(e.retryable).to.equal(true);
    expect(e.status).to.equal(503);
    expect(e.message).to.match(/did not answer for CN=ocsp-good.*ECONNREFUSED/);
    expect(Date.now() - t0, 'a refused connection does not wait for the timeout').to.be.below(1500);

    const logs = captureLogs();
    try {
      await checker({ responderUrl: deadUrl, failMode: 'open' }).check(signer('good'));
    } finally {
      logs.stop();
    }
    const warning = logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['level'] === 'warn');
    expect(warning?.['message']).to.equal(
      'OCSP: no revocation status for a signing certificate; accepting it (failMode open)',
    );
    expect(warning?.['subject']).to.equal('CN=ocsp-good,O=Symphony Test');
    expect(JSON.stringify(logs.lines)).not.to.include('PRIVATE KEY');
  });

  it('a responder that accepts but never answers: refused after timeoutMs', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const addr = silent.address() as { port: number };
    try {
      const t0 = Date.now();
      const e = await refusal(
        checker({ responderUrl: `http://127.0.0.1:${addr.port}/`, timeoutMs: 300 }).check(signer('good')),
      );
      const took = Date.now() - t0;
      expect(e.code).to.equal('SSP_WSS_REVOCATION_UNAVAILABLE');
      expect(e.message).to.match(/timeout|aborted/i);
      expect(took).to.be.within(250, 2000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('the genuine responder is still serving (the suite did not lean on a dead one)', () => {
    expect(exited(genuine.child)).to.equal(false);
  });
});
