/**
 * One command, one run, one table: the proxy next to its baselines on this machine.
 *   npm run bench            (BENCH_SECONDS=3 BENCH_RUNS=5 by default)
 * Every server runs in its own process; the load generator (autocannon) runs here. The
 * machine has 2 cores shared by all of them, so figures are medians and ratios matter most.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GridClient } from '../src/backend/client';
import { TlsMaterial } from '../src/backend/grid-tls';
import { spawnGrid, startProxyProcess, proxyConfig } from '../test/helpers/processes';
import { ECHO_REQUEST } from './baseline-servers';
import { signedPool } from './signed-pool';
import { generateDevPki } from '../src/commands/dev-pki';
import { EnvelopeSigner } from '../src/security/envelope-signer';
import { startRedis } from '../test/helpers/redis';
import { freePort, hasHaproxy, startHaproxy, type HaproxyProcess } from '../test/helpers/haproxy';
import { randomUUID } from 'node:crypto';
import { median } from './sessions';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SYM = 'http://soapproxy.symphony/v1';

function startBaseline(kind: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(__dirname, 'baseline-servers.js'), kind], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /listening on (\d+)/.exec(l);
      if (m) resolve({ port: Number(m[1]), child });
    });
    child.once('exit', (c) => reject(new Error(`${kind} exited ${c}`)));
  });
}

/** One measurement of `seconds`; returns calls/s. */
type Probe = (seconds: number) => Promise<number>;

function http(url: string, body: string, headers: Record<string, string>): Probe {
  return async (seconds) => {
    const r = await autocannon({
      url,
      method: 'POST',
      headers,
      body,
      connections: CONNECTIONS,
      duration: seconds,
    });
    if (r.non2xx || r.errors || r.timeouts) {
      throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    }
    return r.requests.average;
  };
}

/**
 * Signed requests: each call carries a signature the proxy has never seen (its replay cache
 * refuses a second use), from a pool signed before the measured run.
 */
function signedHttp(url: string, makePool: (count: number) => Promise<string[]>): Probe {
  let lastRate = 8000;
  return async (seconds) => {
    const bodies = await makePool(Math.ceil(Math.max(lastRate * 2, 8000) * seconds));
    let next = 0;
    const r = await autocannon({
      url,
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset=utf-8' },
      connections: CONNECTIONS,
      duration: seconds,
      requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
    });
    if (next > bodies.length) throw new Error(`${url}: the pool of ${bodies.length} signed requests ran out`);
    if (r.non2xx || r.errors || r.timeouts) {
      throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    }
    lastRate = r.requests.average;
    return lastRate;
  };
}

/**
 * Runs every probe once per round, round after round, so that drift on a noisy machine hits
 * all rows alike and the ratios between them stay fair; each row reports its median.
 */
async function measure(probes: Probe[]): Promise<number[]> {
  for (const p of probes) await p(1); // warm-up
  const runs: number[][] = probes.map(() => []);
  for (let round = 0; round < RUNS; round++) {
    for (let i = 0; i < probes.length; i++) runs[i]!.push(await probes[i]!(SECONDS));
  }
  return runs.map(median);
}

async function soapCall(url: string, body: string): Promise<string> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`setup call failed: ${text}`);
  return text;
}

function envelope(inner: string): string {
  return `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>${inner}</s:Body></s:Envelope>`;
}

function direct(grid: GridClient, sessionId: string, tasksPerCall: number): Probe {
  const tasks = Array.from({ length: tasksPerCall }, (_, i) => ({
    tag: '',
    priority: 1,
    payload: { text: `payload-${i}` },
  }));
  const once = async (seconds: number): Promise<number> => {
    let calls = 0;
    const end = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (Date.now() < end) {
          await grid.call('sendTasks', { sessionId, tasks });
          calls++;
        }
      }),
    );
    return calls / seconds;
  };
  return once;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-bench-'));
  const gridConfig = join(dir, 'grid.json');
  // One worker: the bench measures submission, and workers would otherwise take the CPU.
  writeFileSync(
    gridConfig,
    JSON.stringify({ applications: [{ name: 'echo', service: 'echo', workers: 1 }] }),
  );
  const grid = await spawnGrid(['--port', '0', '--config', gridConfig]);
  const proxy = await startProxyProcess(proxyConfig([grid.address], '', { admin: { enabled: false } }));
  // WS-Security proxies: verification only, then with RSA and with ECDSA response signing.
  const pki = await generateDevPki(join(dir, 'pki'));
  const f = pki.files as Record<string, string>;
  const wss = (responseSigning: Record<string, unknown>): Record<string, unknown> =>
    proxyConfig([grid.address], '', {
      admin: { enabled: false },
      security: { mode: 'wss', trust: { caFiles: [f.ca], crlFiles: [f.crl] }, responseSigning },
    });
  const signedProxies = {
    verify: await startProxyProcess(wss({ enabled: false })),
    rsa: await startProxyProcess(wss({ certFile: f.proxySigningRsa, keyFile: f.proxySigningRsaKey })),
    ecdsa: await startProxyProcess(wss({ certFile: f.proxySigningEc, keyFile: f.proxySigningEcKey })),
  };
  const clientSigner = new EnvelopeSigner({ certFile: f.client!, keyFile: f.clientKey! });

  // Grid-link rows: a second grid that speaks mutual TLS 1.3 (dev server certificate; the dev
  // client certificate is the proxy's), and a verify-only signed proxy in front of it.
  const tlsGridConfig = join(dir, 'grid-tls.json');
  writeFileSync(
    tlsGridConfig,
    JSON.stringify({
      applications: [{ name: 'echo', service: 'echo', workers: 1 }],
      tls: { certFile: f.server, keyFile: f.serverKey, caFiles: [f.ca] },
    }),
  );
  const tlsGrid = await spawnGrid(['--port', '0', '--config', tlsGridConfig]);
  const linkTls = { caFiles: [f.ca], certFile: f.client!, keyFile: f.clientKey!, watch: false };
  const tlsLinkProxy = await startProxyProcess({
    ...wss({ enabled: false }),
    grid: {
      defaultCluster: 'default',
      clusters: [{ name: 'default', addresses: [tlsGrid.address], requestTimeoutMs: 5000, tls: linkTls }],
    },
  });

  // Policy rows: the same typed-XML sendTaskInput with and without an SLA control file that
  // checks the SLA, applies an SLA and an SLD limit (moving windows, high enough never to
  // refuse) and validates the payload against its XSD.
  const redis = await startRedis();
  const policyFile = join(dir, 'sla-control.xml');
  const xsd = join(__dirname, '..', '..', 'schemas', 'payloads', 'mathserver-v1.xsd');
  const slas = ['anonymous', 'BENCH']
    .map((c) => `<SLA consumerId="${c}"><Policy>SLA_10000000MessagesPer10Seconds_Throttle</Policy></SLA>`)
    .join('');
  writeFileSync(
    policyFile,
    `<BusinessServices><BusinessService name="echo"><ServiceVersion uri="/bench/V1"><SLAs>${slas}</SLAs>` +
      `<SLD><Policy>SLD_10000000MessagesPer10Seconds_Throttle</Policy><EndPoint><URL>grid-a</URL>` +
      `<Request><InputSchemaURL>${xsd}</InputSchemaURL></Request></EndPoint></SLD></ServiceVersion>` +
      `</BusinessService></BusinessServices>`,
  );
  const policy = { file: policyFile, watch: false };
  const benchConsumer = {
    consumers: [{ id: 'BENCH', subject: 'CN=dev-client,OU=cloud,O=symphony-soap-proxy dev' }],
  };
  const policyProxies = {
    plain: await startProxyProcess(proxyConfig([grid.address], '', { admin: { enabled: false } })),
    memory: await startProxyProcess(proxyConfig([grid.address], '', { admin: { enabled: false }, policy })),
    redis: await startProxyProcess(
      proxyConfig([grid.address], '', {
        admin: { enabled: false },
        policy,
        store: { kind: 'redis', redis: { url: redis.url } },
      }),
    ),
    signedPlain: await startProxyProcess(wss({ enabled: false })),
    signedPolicy: await startProxyProcess({
      ...wss({ enabled: false }),
      policy,
      security: {
        mode: 'wss',
        trust: { caFiles: [f.ca], crlFiles: [f.crl] },
        responseSigning: { enabled: false },
        ...benchConsumer,
      },
    }),
  };
  // Reliability rows: signed sendTaskInput with a clientKey (so the answer is remembered for
  // retries) on the memory store and on the Redis store; then 3 proxies sharing that Redis
  // behind HAProxy (docs/haproxy.cfg) against one of them alone.
  const wssStore = (store: Record<string, unknown>, port = 0, adminPort = 0): Record<string, unknown> => ({
    ...wss({ enabled: false }),
    server: { host: '127.0.0.1', port },
    admin: adminPort ? { enabled: true, host: '127.0.0.1', port: adminPort } : { enabled: false },
    store,
  });
  const redisStore = { kind: 'redis', redis: { url: redis.url, keyPrefix: 'bench:' } };
  const storeProxies = {
    memory: await startProxyProcess(wssStore({ kind: 'memory' })),
    redis: await startProxyProcess(wssStore(redisStore)),
  };
  const farm: Awaited<ReturnType<typeof startProxyProcess>>[] = [];
  let haproxy: HaproxyProcess | null = null;
  if (hasHaproxy()) {
    const ports: { name: string; port: number; adminPort: number }[] = [];
    for (const name of ['proxy1', 'proxy2', 'proxy3']) {
      const port = await freePort();
      const adminPort = await freePort();
      ports.push({ name, port, adminPort });
      farm.push(
        await startProxyProcess({ ...proxyConfig([grid.address]), ...wssStore(redisStore, port, adminPort) }),
      );
    }
    // BENCH_HAPROXY_CONFIG: measure another HAProxy configuration than the shipped one.
    const configFile = process.env.BENCH_HAPROXY_CONFIG;
    haproxy = await startHaproxy({ backends: ports, ...(configFile ? { configFile } : {}) });
    for (const b of ports) await haproxy.waitForState(b.name, 'UP', 20000);
  } else console.warn('haproxy is not installed: the HAProxy row is skipped (apt-get install haproxy)');
  const bare = await startBaseline('bare');
  const nodeSoap = await startBaseline('node-soap');
  const nodeSoapContract = await startBaseline('node-soap-contract');
  const plan: { name: string; tasksPerCall: number; probe: Probe }[] = [];
  let rows: { name: string; callsPerSec: number; tasksPerCall: number }[] = [];
  const xml = { 'content-type': 'text/xml; charset=utf-8' };

  try {
    const connect = await soapCall(
      proxy.url,
      envelope(
        `<sym:connect xmlns:sym="${SYM}"><sym:applicationName>echo</sym:applicationName><sym:username>bench</sym:username><sym:password>x</sym:password></sym:connect>`,
      ),
    );
    const connectionId = /connectionId>([^<]+)</.exec(connect)![1]!;
    const newSession = async (): Promise<string> => {
      const r = await soapCall(
        proxy.url,
        envelope(
          `<sym:createSession xmlns:sym="${SYM}"><sym:connectionId>${connectionId}</sym:connectionId></sym:createSession>`,
        ),
      );
      return /sessionId>([^<]+)</.exec(r)![1]!;
    };
    const task = (i: number): string =>
      `<sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:text>payload-${i}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`;

    plan.push({
      name: 'bare node http (fixed reply)',
      tasksPerCall: 0,
      probe: http(`http://127.0.0.1:${bare.port}/`, ECHO_REQUEST('payload-1'), xml),
    });
    plan.push({
      name: 'node-soap echo server (one-operation WSDL)',
      tasksPerCall: 0,
      probe: http(`http://127.0.0.1:${nodeSoap.port}/echo`, ECHO_REQUEST('payload-1'), {
        ...xml,
        soapaction: '"urn:bench:echo#echo"',
      }),
    });
    const single = (sessionId: string): string =>
      envelope(
        `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId>${task(1)}</sym:sendTaskInput>`,
      );
    plan.push({
      name: 'node-soap echo server (our WSDL, sendTaskInput answered locally)',
      tasksPerCall: 0,
      probe: http(
        `http://127.0.0.1:${nodeSoapContract.port}/symphony`,
        single('0123456789abcdef0123456789abcdef'),
        {
          ...xml,
          soapaction: `"${SYM}/sendTaskInput"`,
        },
      ),
    });

    let sessionId = await newSession();
    plan.push({
      name: 'proxy sendTaskInput (1 task, unsigned)',
      tasksPerCall: 1,
      probe: http(proxy.url, single(sessionId), xml),
    });
    sessionId = await newSession();
    const batch = Array.from({ length: 100 }, (_, i) => task(i)).join('');
    plan.push({
      name: 'proxy sendTaskInputBatch (100 tasks, unsigned)',
      tasksPerCall: 100,
      probe: http(
        proxy.url,
        envelope(
          `<sym:sendTaskInputBatch xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId>${batch}</sym:sendTaskInputBatch>`,
        ),
        xml,
      ),
    });

    // The client signs with RSA-2048 and SHA-256, the common case (zeep, WSS4J defaults).
    const signedCall = async (url: string, inner: string): Promise<string> => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: clientSigner.envelope('1.1', inner),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`signed setup call failed: ${text}`);
      return text;
    };
    /** connect + createSession through `call`, for a row's own session. */
    const sessionVia = async (
      call: (url: string, body: string) => Promise<string>,
      wrap: (inner: string) => string,
      url: string,
    ): Promise<string> => {
      const conn = /connectionId>([^<]+)</.exec(
        await call(
          url,
          wrap(
            `<sym:connect xmlns:sym="${SYM}"><sym:applicationName>echo</sym:applicationName><sym:username>bench</sym:username><sym:password>x</sym:password></sym:connect>`,
          ),
        ),
      )![1]!;
      return /sessionId>([^<]+)</.exec(
        await call(
          url,
          wrap(
            `<sym:createSession xmlns:sym="${SYM}"><sym:connectionId>${conn}</sym:connectionId></sym:createSession>`,
          ),
        ),
      )![1]!;
    };
    const asIs = (inner: string): string => inner;
    const signedRows: [keyof typeof signedProxies, string][] = [
      ['verify', 'proxy sendTaskInput (1 task, RSA-signed request verified, response unsigned)'],
      ['rsa', 'proxy sendTaskInput (signed request verified, response signed RSA-SHA256)'],
      ['ecdsa', 'proxy sendTaskInput (signed request verified, response signed ECDSA-SHA256)'],
    ];
    for (const [kind, name] of signedRows) {
      const url = signedProxies[kind].url;
      const sid = await sessionVia(signedCall, asIs, url);
      plan.push({
        name,
        tasksPerCall: 1,
        probe: signedHttp(url, (count) =>
          signedPool({
            certFile: f.client!,
            keyFile: f.clientKey!,
            version: '1.1',
            count,
            body: `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>${sid}</sym:sessionId><sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:text>payload-{n}</sym:text></sym:taskInput></sym:taskSubmissionAttributes></sym:sendTaskInput>`,
          }),
        ),
      });
    }

    {
      const sid = await sessionVia(signedCall, asIs, tlsLinkProxy.url);
      plan.push({
        name: 'proxy sendTaskInput over a mutual-TLS 1.3 grid link (1 task, RSA-signed request verified, response unsigned)',
        tasksPerCall: 1,
        probe: signedHttp(tlsLinkProxy.url, (count) =>
          signedPool({
            certFile: f.client!,
            keyFile: f.clientKey!,
            version: '1.1',
            count,
            body: `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>${sid}</sym:sessionId><sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:text>payload-{n}</sym:text></sym:taskInput></sym:taskSubmissionAttributes></sym:sendTaskInput>`,
          }),
        ),
      });
    }

    const typed = `<sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:xml><m:add xmlns:m="urn:example:mathserver:v1"><m:a>1</m:a><m:b>{n}</m:b></m:add></sym:xml></sym:taskInput></sym:taskSubmissionAttributes>`;
    const policyRows: [keyof typeof policyProxies, string, string, boolean][] = [
      ['plain', '/symphony', 'proxy sendTaskInput typed XML, unsigned, no policy', false],
      [
        'memory',
        '/bench/V1',
        'proxy sendTaskInput typed XML, unsigned, policy: SLA check + SLA/SLD limits (memory) + XSD validation',
        false,
      ],
      [
        'redis',
        '/bench/V1',
        'proxy sendTaskInput typed XML, unsigned, policy: SLA check + SLA/SLD limits (Redis) + XSD validation',
        false,
      ],
      ['signedPlain', '/symphony', 'proxy sendTaskInput typed XML, signed, no policy', true],
      [
        'signedPolicy',
        '/bench/V1',
        'proxy sendTaskInput typed XML, signed, policy: SLA check + SLA/SLD limits (memory) + XSD validation',
        true,
      ],
    ];
    for (const [kind, path, name, signed] of policyRows) {
      const url = new URL(path, policyProxies[kind].url).toString();
      const call = signed ? signedCall : soapCall;
      const wrap = signed ? asIs : envelope;
      const sid = await sessionVia(call, wrap, url);
      const body = `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>${sid}</sym:sessionId>${typed}</sym:sendTaskInput>`;
      plan.push({
        name,
        tasksPerCall: 1,
        probe: signed
          ? signedHttp(url, (count) =>
              signedPool({ certFile: f.client!, keyFile: f.clientKey!, version: '1.1', count, body }),
            )
          : http(url, envelope(body.replace('{n}', '2')), xml),
      });
    }

    const keyed = `<sym:taskSubmissionAttributes><sym:tag>t</sym:tag><sym:taskInput><sym:text>payload-{n}</sym:text></sym:taskInput></sym:taskSubmissionAttributes><sym:clientKey>{k}-{n}</sym:clientKey>`;
    const storeRows: [string, string][] = [
      [storeProxies.memory.url, 'proxy sendTaskInput, signed, clientKey, memory store'],
      [storeProxies.redis.url, 'proxy sendTaskInput, signed, clientKey, Redis store'],
      ...(haproxy && farm[0]
        ? ([
            [farm[0].url, 'proxy sendTaskInput, signed, clientKey, Redis store: 1 of the 3 proxies, direct'],
            [
              `${haproxy.url}/symphony`,
              'proxy sendTaskInput, signed, clientKey, Redis store: HAProxy → 3 proxies',
            ],
          ] as [string, string][])
        : []),
    ];
    for (const [url, name] of storeRows) {
      const sid = await sessionVia(signedCall, asIs, url);
      const body = `<sym:sendTaskInput xmlns:sym="${SYM}"><sym:sessionId>${sid}</sym:sessionId>${keyed}</sym:sendTaskInput>`;
      plan.push({
        name,
        tasksPerCall: 1,
        // A fresh key prefix per pool: a repeated key would be answered from memory, not measured.
        probe: signedHttp(url, (count) =>
          signedPool({
            certFile: f.client!,
            keyFile: f.clientKey!,
            version: '1.1',
            count,
            body: body.replace('{k}', randomUUID()),
          }),
        ),
      });
    }

    const gridClient = new GridClient({ name: 'bench', addresses: [grid.address], poolSize: 2 });
    await new Promise((r) => gridClient.once('up', r));
    const { connectionId: directConn } = await gridClient.call('connect', {
      applicationName: 'echo',
      username: 'bench',
      password: 'x',
    });
    const direct1 = (await gridClient.call('createSession', { connectionId: directConn })).sessionId;
    plan.push({
      name: 'direct to grid over TCP (1 task per call)',
      tasksPerCall: 1,
      probe: direct(gridClient, direct1, 1),
    });
    const direct100 = (await gridClient.call('createSession', { connectionId: directConn })).sessionId;
    plan.push({
      name: 'direct to grid over TCP (100 tasks per call)',
      tasksPerCall: 100,
      probe: direct(gridClient, direct100, 100),
    });
    const tlsGridClient = new GridClient({
      name: 'bench-tls',
      addresses: [tlsGrid.address],
      poolSize: 2,
      tls: { material: new TlsMaterial({ ...linkTls, minVersion: 'TLSv1.3' }), pinnedFingerprints256: [] },
    });
    await new Promise((r) => tlsGridClient.once('up', r));
    const { connectionId: tlsConn } = await tlsGridClient.call('connect', {
      applicationName: 'echo',
      username: 'bench',
      password: 'x',
    });
    plan.push({
      name: 'direct to grid over mutual TLS 1.3 (1 task per call)',
      tasksPerCall: 1,
      probe: direct(
        tlsGridClient,
        (await tlsGridClient.call('createSession', { connectionId: tlsConn })).sessionId,
        1,
      ),
    });
    // BENCH_ONLY=<regex> measures only the matching rows (for quick comparisons while tuning).
    const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : null;
    const chosen = only ? plan.filter((p) => only.test(p.name)) : plan;
    const medians = await measure(chosen.map((p) => p.probe));
    rows = chosen.map((p, i) => ({ name: p.name, tasksPerCall: p.tasksPerCall, callsPerSec: medians[i]! }));
    if (only) {
      for (const r of rows) console.log(`| ${r.name} | ${Math.round(r.callsPerSec)} |`);
      return;
    }
    gridClient.close();
    tlsGridClient.close();
  } finally {
    await proxy.stop();
    await tlsLinkProxy.stop();
    await tlsGrid.stop();
    for (const p of Object.values(signedProxies)) await p.stop();
    for (const p of Object.values(policyProxies)) await p.stop();
    for (const p of Object.values(storeProxies)) await p.stop();
    await haproxy?.stop();
    for (const p of farm) await p.stop();
    await redis.stop();
    await grid.stop();
    bare.child.kill();
    nodeSoap.child.kill();
    nodeSoapContract.child.kill();
  }

  const by = (name: string): number => rows.find((r) => r.name.startsWith(name))!.callsPerSec;
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  console.log(
    `\nBenchmark: ${RUNS} interleaved rounds × ${SECONDS}s per row, ${CONNECTIONS} concurrent callers, medians; ${new Date().toISOString()}\n`,
  );
  console.log('| workload | calls/s | tasks/s |');
  console.log('|---|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${fmt(r.callsPerSec)} | ${r.tasksPerCall ? fmt(r.callsPerSec * r.tasksPerCall) : '–'} |`,
    );
  const single = by('proxy sendTaskInput');
  const batchTasks = by('proxy sendTaskInputBatch') * 100;
  console.log('\n| ratio | value | target |');
  console.log('|---|---:|---:|');
  console.log(
    `| proxy single ÷ node-soap echo (our WSDL) | ${(single / by('node-soap echo server (our')).toFixed(2)}× | ≥ 1.0× |`,
  );
  console.log(
    `| proxy single ÷ node-soap echo (one-operation WSDL) | ${(single / by('node-soap echo server (one')).toFixed(2)}× | – |`,
  );
  console.log(`| proxy batched tasks/s | ${fmt(batchTasks)} | ≥ 50,000 |`);
  const verified = by('proxy sendTaskInput (1 task, RSA-signed');
  console.log(
    `| signed + verified single ÷ bare node http | ${(verified / by('bare node http')).toFixed(2)}× | ≥ 0.17× |`,
  );
  console.log(
    `| signed, RSA-signed response ÷ verified only | ${(by('proxy sendTaskInput (signed request verified, response signed RSA') / verified).toFixed(2)}× | – |`,
  );
  console.log(
    `| signed, ECDSA-signed response ÷ verified only | ${(by('proxy sendTaskInput (signed request verified, response signed ECDSA') / verified).toFixed(2)}× | – |`,
  );
  console.log(`| proxy single ÷ bare node http | ${(single / by('bare node http')).toFixed(2)}× | – |`);
  const noPolicy = by('proxy sendTaskInput typed XML, unsigned, no policy');
  console.log(
    `| policy (memory limits) ÷ no policy, unsigned | ${(by('proxy sendTaskInput typed XML, unsigned, policy: SLA check + SLA/SLD limits (memory)') / noPolicy).toFixed(2)}× | – |`,
  );
  console.log(
    `| policy (Redis limits) ÷ no policy, unsigned | ${(by('proxy sendTaskInput typed XML, unsigned, policy: SLA check + SLA/SLD limits (Redis)') / noPolicy).toFixed(2)}× | – |`,
  );
  console.log(
    `| policy ÷ no policy, signed | ${(by('proxy sendTaskInput typed XML, signed, policy') / by('proxy sendTaskInput typed XML, signed, no policy')).toFixed(2)}× | – |`,
  );
  const memoryStore = by('proxy sendTaskInput, signed, clientKey, memory store');
  console.log(
    `| signed, Redis store ÷ memory store | ${(by('proxy sendTaskInput, signed, clientKey, Redis store') / memoryStore).toFixed(2)}× | ≥ 0.8× |`,
  );
  if (rows.some((r) => r.name.includes('HAProxy'))) {
    console.log(
      `| HAProxy → 3 proxies ÷ 1 proxy (signed, Redis store) | ${(by('proxy sendTaskInput, signed, clientKey, Redis store: HAProxy') / by('proxy sendTaskInput, signed, clientKey, Redis store: 1 of')).toFixed(2)}× | reported |`,
    );
  }
  console.log(
    `| signed relay, grid link mutual TLS ÷ plain TCP | ${(by('proxy sendTaskInput over a mutual-TLS') / verified).toFixed(2)}× | reported |`,
  );
  console.log(
    `| direct to grid, mutual TLS ÷ plain TCP (1 task) | ${(by('direct to grid over mutual TLS') / by('direct to grid over TCP (1')).toFixed(2)}× | reported |`,
  );
  console.log(
    `| proxy single ÷ direct to grid (1 task) | ${(single / by('direct to grid over TCP (1')).toFixed(2)}× | – |`,
  );
  console.log(
    `| proxy batch ÷ direct to grid (100 tasks) | ${(by('proxy sendTaskInputBatch') / by('direct to grid over TCP (100')).toFixed(2)}× | – |`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
