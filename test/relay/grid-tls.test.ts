/**
 * The grid link over mutual TLS between real processes: a proxy (cli serve) and the reference
 * grid (main.js), each reloading its certificate on SIGHUP while a session carries on.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { issueCert, PROFILES, writeCertPair } from '../../src/commands/dev-pki';
import { eventually } from '../grid/helpers';
import { makeTestPki, type TestPki } from '../helpers/pki';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { callOk, op, openSessionAt, pick } from '../helpers/soap-http';

function submit(sessionId: string, texts: string[]): string {
  const tasks = texts
    .map(
      (t) =>
        `<sym:taskSubmissionAttributes><sym:taskInput><sym:text>${t}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
    )
    .join('');
  return op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${tasks}`);
}

/** Fetches (bounded: 20 long-polls) until every text came back; returns the texts seen. */
async function outputs(url: string, sessionId: string, want: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 20 && seen.length < want; i++) {
    const text = await callOk(
      url,
      op(
        'fetchTaskOutput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>100</sym:countMax><sym:timeoutMillis>1000</sym:timeoutMillis>`,
      ),
    );
    seen.push(...[...text.matchAll(/<(?:\w+:)?text>([^<]*)</g)].map((m) => m[1]!));
  }
  return seen.sort();
}

/** The fingerprint of the certificate a TLS server presents now. */
function servedFingerprint(port: number, pki: TestPki): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pki.ca.certPem,
      cert: pki.client.certPem,
      key: pki.client.keyPem,
      servername: 'localhost',
    });
    s.once('secureConnect', () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });
}

async function readyz(proxy: ProxyProcess): Promise<string> {
  return (await fetch(`${proxy.adminUrl!}/readyz`)).text();
}

describe('relay: the grid link over mutual TLS, reloaded without dropping the session', function () {
  this.timeout(60000);
  let pki: TestPki;
  let dir: string;
  let grid: GridProcess;
  let proxy: ProxyProcess;
  let gridPort: number;

  before(async () => {
    pki = await makeTestPki();
    dir = mkdtempSync(join(tmpdir(), 'grid-tls-relay-'));
    for (const [from, to] of [
      [pki.server.certFile, 'grid.pem'],
      [pki.server.keyFile, 'grid.key'],
      [pki.client.certFile, 'proxy.pem'],
      [pki.client.keyFile, 'proxy.key'],
      [join(pki.dir, 'ca.pem'), 'ca.pem'],
    ] as const)
      copyFileSync(from, join(dir, to));
    const gridJson = join(dir, 'grid.json');
    writeFileSync(
      gridJson,
      JSON.stringify({
        host: '127.0.0.1',
        port: 0,
        applications: [{ name: 'echo', service: 'echo', workers: 1 }],
        tls: {
          certFile: join(dir, 'grid.pem'),
          keyFile: join(dir, 'grid.key'),
          caFiles: [join(dir, 'ca.pem')],
        },
      }),
    );
    grid = await spawnGrid(['--config', gridJson], { ...process.env, GRID_SHARED_SECRET: 'tls-and-hmac' });
    gridPort = Number(grid.address.split(':')[1]);
    const config = proxyConfig([grid.address], 'tls-and-hmac');
    const cluster = (config['grid'] as { clusters: Record<string, unknown>[] }).clusters[0]!;
    cluster['tls'] = {
      caFiles: [join(dir, 'ca.pem')],
      certFile: join(dir, 'proxy.pem'),
      keyFile: join(dir, 'proxy.key'),
      serverName: 'localhost',
      // SIGHUP is what this test drives; the file watch would race it.
      watch: false,
    };
    proxy = await startProxyProcess(config);
  });
  after(async () => {
    await proxy?.stop();
    await grid?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/readyz names the link as mutual TLS 1.3 with the proxy certificate', async () => {
    expect(
      await eventually(async () => (await fetch(`${proxy.adminUrl!}/readyz`)).status === 200, 10000),
    ).to.equal(true);
    expect(await readyz(proxy)).to.match(
      /^ready\ngrid link default: mutual TLS \(TLSv1\.3 or later\), client certificate CN=client-a,O=Symphony Test valid until /,
    );
  });

  it('relays a session through, and keeps it across a grid certificate renewal and a proxy one', async () => {
    const { sessionId } = await openSessionAt(proxy.url);
    await callOk(proxy.url, submit(sessionId, ['before-1', 'before-2']));
    expect(await outputs(proxy.url, sessionId, 2)).to.deep.equal(['before-1', 'before-2']);

    // The grid's certificate is renewed and the grid told with SIGHUP: new handshakes get it.
    const oldFingerprint = await servedFingerprint(gridPort, pki);
    const renewedGrid = await issueCert({
      ...PROFILES.tlsServer,
      subject: { CN: 'localhost', OU: 'renewed' },
      issuer: pki.ca,
    });
    writeCertPair(dir, 'grid', renewedGrid);
    grid.child.kill('SIGHUP');
    const newFingerprint = new X509Certificate(renewedGrid.certPem).fingerprint256;
    expect(
      await eventually(async () => (await servedFingerprint(gridPort, pki)) === newFingerprint, 5000),
    ).to.equal(true);
    expect(newFingerprint).not.to.equal(oldFingerprint);

    // The proxy's client certificate is renewed and the proxy told with SIGHUP.
    const renewedProxy = await issueCert({
      ...PROFILES.client,
      subject: { CN: 'proxy-renewed', O: 'Symphony Test' },
      issuer: pki.ca,
    });
    writeCertPair(dir, 'proxy', renewedProxy);
    proxy.child.kill('SIGHUP');
    expect(await eventually(async () => (await readyz(proxy)).includes('CN=proxy-renewed'), 5000)).to.equal(
      true,
    );

    // The session opened before both renewals carries on through the same proxy and grid.
    await callOk(proxy.url, submit(sessionId, ['after-1', 'after-2', 'after-3']));
    expect(await outputs(proxy.url, sessionId, 3)).to.deep.equal(['after-1', 'after-2', 'after-3']);
    const status = await callOk(
      proxy.url,
      op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`),
    );
    expect(pick(status, 'doneTasks')).to.equal('5');
  });
});
