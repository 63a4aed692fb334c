import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { eventually, startTestGrid } from '../../test/grid/helpers';
import { makeTestPki, type TestPki } from '../../test/helpers/pki';
import { issueCert, PROFILES, writeCertPair, type CertPair } from '../commands/dev-pki';
import { ConfigError, parseConfig } from '../config';
import { parseGridConfig } from '../grid/config';
import type { Grid } from '../grid/server';
import { GridClient, GridCallError } from './client';
import { GridRouter } from './grid-router';
import { gridTlsConnectOptions, isLoopbackHost, TlsMaterial, type TlsFiles } from './grid-tls';

/** Connects with the proxy's options and reports what was negotiated, or the error. */
function probe(
  material: TlsMaterial,
  port: number,
  extra: { serverName?: string; pins?: string[] } = {},
): Promise<{ protocol: string | null; peerFingerprint: string } | Error> {
  return new Promise((resolve) => {
    const socket = tls.connect(
      gridTlsConnectOptions(
        { material, serverName: extra.serverName, pinnedFingerprints256: extra.pins ?? [] },
        '127.0.0.1',
        port,
      ),
    );
    socket.once('secureConnect', () => {
      const out = {
        protocol: socket.getProtocol(),
        peerFingerprint: socket.getPeerCertificate().fingerprint256,
      };
      socket.destroy();
      resolve(out);
    });
    socket.once('error', (e) => resolve(e));
  });
}

function clientFor(
  grid: Grid,
  material: TlsMaterial | undefined,
  extra: { pins?: string[] } = {},
): GridClient {
  return new GridClient({
    name: 'tls-test',
    addresses: [`127.0.0.1:${grid.address.port}`],
    poolSize: 1,
    requestTimeoutMs: 3000,
    backoffMinMs: 20,
    backoffMaxMs: 200,
    tls: material ? { material, pinnedFingerprints256: extra.pins ?? [] } : undefined,
  });
}

function linkErrors(client: GridClient): string[] {
  const seen: string[] = [];
  client.on('linkError', (m: string) => seen.push(m));
  return seen;
}

describe('backend/grid-tls: mutual TLS on the grid link', function () {
  this.timeout(20000);
  let pki: TestPki;
  let dir: string;
  /** A second CA, outside both trust stores, with a server and a client certificate of its own. */
  let rogueServer: CertPair;
  let rogueClient: CertPair;
  let gridFiles: TlsFiles;
  let proxyFiles: TlsFiles;

  before(async () => {
    pki = await makeTestPki();
    dir = mkdtempSync(join(tmpdir(), 'grid-tls-'));
    const rogueCa = issueCert({ ...PROFILES.rootCa, subject: { CN: 'Rogue CA' } });
    const [s, c] = await Promise.all([
      issueCert({ ...PROFILES.tlsServer, subject: { CN: 'localhost' }, issuer: rogueCa }),
      issueCert({ ...PROFILES.client, subject: { CN: 'rogue-proxy' }, issuer: rogueCa }),
    ]);
    rogueServer = writeCertPair(dir, 'rogue-server', s);
    rogueClient = writeCertPair(dir, 'rogue-client', c);
    // Copies, so that a test may replace them as a certificate rotation would.
    for (const name of ['server.pem', 'server.key', 'client.pem', 'client.key', 'ca.pem'])
      copyFileSync(join(pki.dir, name), join(dir, name));
    gridFiles = {
      certFile: join(dir, 'server.pem'),
      keyFile: join(dir, 'server.key'),
      caFiles: [join(dir, 'ca.pem')],
      minVersion: 'TLSv1.3',
    };
    proxyFiles = {
      certFile: join(dir, 'client.pem'),
      keyFile: join(dir, 'client.key'),
      caFiles: [join(dir, 'ca.pem')],
      minVersion: 'TLSv1.3',
    };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('configuration', () => {
    const proxyWith = (cluster: Record<string, unknown>): unknown =>
      parseConfig({
        security: { mode: 'off' },
        grid: { defaultCluster: 'g', clusters: [{ name: 'g', ...cluster }] },
      });

    it('refuses plain TCP to a grid that is not on loopback, naming the key and both ways out', () => {
      expect(() => proxyWith({ addresses: ['10.1.2.3:7000'] }))
        .to.throw(ConfigError)
        .with.property('message')
        .that.matches(/grid\.clusters\.0\.tls: is required: 10\.1\.2\.3:7000 is not a loopback address/)
        .and.matches(/plaintext: true/);
      expect(() => proxyWith({ addresses: ['127.0.0.1:7000', 'grid-b.bank:7000'] })).to.throw(
        /grid-b\.bank:7000/,
      );
    });

    it('accepts plain TCP on loopback, or elsewhere when plaintext is stated', () => {
      expect(() =>
        proxyWith({ addresses: ['127.0.0.1:7000', 'localhost:7001', '[::1]:7002'] }),
      ).not.to.throw();
      expect(() => proxyWith({ addresses: ['10.1.2.3:7000'], plaintext: true })).not.to.throw();
    });

    it('refuses tls and plaintext together, and a malformed pin', () => {
      const tlsKeys = { caFiles: ['ca.pem'], certFile: 'c.pem', keyFile: 'c.key' };
      expect(() => proxyWith({ addresses: ['10.1.2.3:7000'], plaintext: true, tls: tlsKeys })).to.throw(
        /plaintext: is true but tls is configured too/,
      );
      expect(() =>
        proxyWith({ addresses: ['10.1.2.3:7000'], tls: { ...tlsKeys, pinnedFingerprints256: ['abc'] } }),
      ).to.throw(/pinnedFingerprints256/);
    });

    it('defaults to TLS 1.3', () => {
      const c = proxyWith({
        addresses: ['10.1.2.3:7000'],
        tls: { caFiles: ['ca.pem'], certFile: 'c.pem', keyFile: 'c.key' },
      }) as { grid: { clusters: { tls: { minVersion: string } }[] } };
      expect(c.grid.clusters[0]!.tls.minVersion).to.equal('TLSv1.3');
    });

    it('the reference grid refuses to listen in clear on a non-loopback address', () => {
      expect(() => parseGridConfig({ host: '0.0.0.0' })).to.throw(
        /tls: is required: host 0\.0\.0\.0 is not loopback/,
      );
      expect(() => parseGridConfig({ host: '0.0.0.0', plaintext: true })).not.to.throw();
      expect(
        parseGridConfig({ host: '0.0.0.0', tls: { certFile: 'a', keyFile: 'b', caFiles: ['c'] } }).tls,
      ).to.include({
        requireClientCert: true,
        minVersion: 'TLSv1.3',
      });
    });

    it('a TLS file that cannot be read fails the start, naming it, before any socket is opened', () => {
      const cluster = (name: string, certFile: string) => ({
        name,
        urls: [],
        addresses: ['127.0.0.1:1'],
        sharedSecret: '',
        poolSize: 1,
        connectTimeoutMs: 100,
        requestTimeoutMs: 100,
        plaintext: false,
        tls: {
          caFiles: proxyFiles.caFiles,
          certFile,
          keyFile: proxyFiles.keyFile,
          pinnedFingerprints256: [],
          minVersion: 'TLSv1.3' as const,
          watch: false,
        },
      });
      expect(
        () =>
          new GridRouter([cluster('a', proxyFiles.certFile), cluster('b', join(dir, 'missing.pem'))], 'a'),
      ).to.throw(/cannot read the certificate .*missing\.pem/);
    });

    it('knows loopback when it sees it, and trusts no other name to be', () => {
      for (const h of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', 'LOCALHOST'])
        expect(isLoopbackHost(h), h).to.equal(true);
      for (const h of ['10.0.0.1', '0.0.0.0', '::', 'grid.bank', '128.0.0.1', 'localhost.evil'])
        expect(isLoopbackHost(h), h).to.equal(false);
    });
  });

  describe('with a TLS grid', () => {
    let grid: Grid;
    before(async () => {
      grid = await startTestGrid({ tls: gridFiles });
    });
    after(() => grid.close());

    it('relays calls over TLS 1.3, with the grid verifying the proxy certificate', async () => {
      const material = new TlsMaterial(proxyFiles);
      const seen = await probe(material, grid.address.port);
      expect(seen).not.to.be.instanceOf(Error);
      expect(seen).to.have.property('protocol', 'TLSv1.3');
      const client = clientFor(grid, material);
      try {
        const { connectionId } = await client.call('connect', {
          applicationName: 'echo',
          username: 'u',
          password: 'p',
        });
        expect(connectionId).to.be.a('string').and.not.equal('');
      } finally {
        client.close();
      }
    });

    it('the grid refuses a proxy with no certificate or one from a CA it does not trust', async () => {
      const noCert = await new Promise<Error | null>((resolve) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: grid.address.port,
          ca: pki.ca.certPem,
          servername: 'localhost',
        });
        s.once('error', (e) => resolve(e));
        s.once('data', () => resolve(null));
        s.once('close', () => resolve(new Error('closed')));
      });
      expect(noCert, 'a client without a certificate gets no ServerHello').to.be.instanceOf(Error);

      const rogue = clientFor(
        grid,
        new TlsMaterial({ ...proxyFiles, certFile: rogueClient.certFile, keyFile: rogueClient.keyFile }),
      );
      try {
        const err = await rogue
          .call('connect', { applicationName: 'echo', username: 'u', password: 'p' }, 1500)
          .then(
            () => null,
            (e: unknown) => e,
          );
        expect(err).to.be.instanceOf(GridCallError).with.property('kind', 'unavailable');
        expect(rogue.connectedCount).to.equal(0);
      } finally {
        rogue.close();
      }
    });

    it('the proxy refuses a grid whose certificate its CAs do not vouch for, and says why', async () => {
      const impostor = await startTestGrid({
        tls: { ...gridFiles, certFile: rogueServer.certFile, keyFile: rogueServer.keyFile },
      });
      const client = clientFor(impostor, new TlsMaterial(proxyFiles));
      const errors = linkErrors(client);
      try {
        expect(await eventually(() => errors.length > 0, 5000)).to.equal(true);
        expect(errors[0]).to.match(/^TLS: .*(self[- ]signed|unable to (get|verify)|certificate)/i);
        expect(client.connectedCount).to.equal(0);
      } finally {
        client.close();
        await impostor.close();
      }
    });

    it('honours a pinned fingerprint: the right pin connects, any other is refused', async () => {
      const material = new TlsMaterial(proxyFiles);
      const fp = new X509Certificate(pki.server.certPem).fingerprint256;
      expect(
        await probe(material, grid.address.port, { pins: [fp.replace(/:/g, '').toLowerCase()] }),
      ).to.have.property('protocol');
      const wrong = await probe(material, grid.address.port, { pins: ['AB'.repeat(32)] });
      expect(wrong)
        .to.be.instanceOf(Error)
        .with.property('message')
        .that.matches(/not one of the pinned fingerprints/);
    });

    it('checks the grid certificate against the configured server name', async () => {
      const wrong = await probe(new TlsMaterial(proxyFiles), grid.address.port, {
        serverName: 'grid-b.bank',
      });
      expect(wrong)
        .to.be.instanceOf(Error)
        .with.property('message')
        .that.matches(/grid-b\.bank/);
    });

    it('a plain TCP client gets nothing from a TLS grid, and no hang', async () => {
      const client = clientFor(grid, undefined);
      try {
        const err = await client
          .call('connect', { applicationName: 'echo', username: 'u', password: 'p' }, 1500)
          .then(
            () => null,
            (e: unknown) => e,
          );
        expect(err).to.be.instanceOf(GridCallError);
      } finally {
        client.close();
      }
    });
  });

  it('a proxy at TLS 1.3 refuses a grid that offers only TLS 1.2', async () => {
    const old = tls.createServer({
      cert: pki.server.certPem,
      key: pki.server.keyPem,
      ca: pki.ca.certPem,
      maxVersion: 'TLSv1.2',
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    try {
      const port = (old.address() as { port: number }).port;
      const seen = await probe(new TlsMaterial(proxyFiles), port);
      expect(seen)
        .to.be.instanceOf(Error)
        .with.property('code')
        .that.matches(/PROTOCOL|VERSION/);
    } finally {
      old.close();
    }
  });

  describe('reloading certificates without dropping sessions', () => {
    /** A copy of `from`'s certificate and key as <base>.pem/.key, which a case may then replace. */
    function rotatable(from: TlsFiles, base: string): TlsFiles {
      const files = { ...from, certFile: join(dir, `${base}.pem`), keyFile: join(dir, `${base}.key`) };
      copyFileSync(from.certFile, files.certFile);
      copyFileSync(from.keyFile, files.keyFile);
      return files;
    }

    it('the grid serves a renewed certificate to new sockets while open sockets and their sessions carry on', async () => {
      const files = rotatable(gridFiles, 'rotating-server');
      const grid = await startTestGrid({ tls: files });
      const material = new TlsMaterial(proxyFiles);
      const client = clientFor(grid, material);
      try {
        const { connectionId } = await client.call('connect', {
          applicationName: 'echo',
          username: 'u',
          password: 'p',
        });
        const { sessionId } = await client.call('createSession', { connectionId });
        const before = await probe(material, grid.address.port);

        const renewed = await issueCert({
          ...PROFILES.tlsServer,
          subject: { CN: 'localhost', OU: 'renewed' },
          issuer: pki.ca,
        });
        writeCertPair(dir, 'rotating-server', renewed);
        expect(grid.reloadTls()).to.have.property('ok', true);

        const after = await probe(material, grid.address.port);
        expect(after).to.have.property(
          'peerFingerprint',
          new X509Certificate(renewed.certPem).fingerprint256,
        );
        expect(after).not.to.deep.equal(before);
        // The socket opened before the reload still serves the session created on it.
        const { taskIds } = await client.call('sendTasks', {
          sessionId,
          tasks: [{ payload: { text: 'x' } }],
        });
        expect(taskIds).to.have.length(1);
        expect(client.connectedCount).to.equal(1);
      } finally {
        client.close();
        await grid.close();
      }
    });

    it('a failed reload keeps the material in effect and says which file is wrong', async () => {
      const files = rotatable(proxyFiles, 'broken-later');
      const material = new TlsMaterial(files);
      const context = material.context;
      writeFileSync(files.certFile, 'not a certificate\n');
      const r = material.reload();
      expect(r).to.have.property('ok', false);
      expect(r).to.have.property('error').that.contains('broken-later.pem');
      expect(material.context).to.equal(context);
      // A key that belongs to another certificate is refused too.
      copyFileSync(rogueClient.certFile, files.certFile);
      expect(material.reload()).to.have.property('ok', false);
      expect(material.context).to.equal(context);
    });

    it('the proxy picks up a new client certificate on reload; its open sockets carry on', async () => {
      const grid = await startTestGrid({ tls: gridFiles });
      const { certFile: cert, keyFile: key } = rotatable(proxyFiles, 'proxy-rotating');
      const router = new GridRouter(
        [
          {
            name: 'g',
            urls: [],
            addresses: [`127.0.0.1:${grid.address.port}`],
            sharedSecret: '',
            poolSize: 1,
            connectTimeoutMs: 2000,
            requestTimeoutMs: 3000,
            plaintext: false,
            tls: {
              caFiles: proxyFiles.caFiles,
              certFile: cert,
              keyFile: key,
              pinnedFingerprints256: [],
              minVersion: 'TLSv1.3',
              watch: false,
            },
          },
        ],
        'g',
      );
      const timing = { gridMs: 0 };
      try {
        expect(router.links()[0]).to.include({ transport: 'tls' });
        const { connectionId } = await router.call(timing, 'g', 'connect', {
          applicationName: 'echo',
          username: 'u',
          password: 'p',
        });
        const renewed = await issueCert({
          ...PROFILES.client,
          subject: { CN: 'proxy-renewed' },
          issuer: pki.ca,
        });
        writeCertPair(dir, 'proxy-rotating', renewed);
        const [r] = router.reloadTls();
        expect(r).to.deep.include({ cluster: 'g' });
        expect(r!.result).to.have.property('ok', true);
        const { sessionId } = await router.call(timing, 'g', 'createSession', { connectionId });
        expect(sessionId).to.be.a('string');
        expect(grid.stats().sockets).to.equal(1);
      } finally {
        router.close();
        await grid.close();
      }
    });
  });
});
