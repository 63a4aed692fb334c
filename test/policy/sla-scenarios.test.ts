/**
 * The SLA control file's scenarios against real processes: three proxies sharing a real
 * redis-server, two reference grids, and signed clients whose certificates map to the
 * consumers APPLICATION1..3. Every call is a WS-Security-signed SOAP request over HTTP.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasRedis, startRedis } from '../helpers/redis';
import { requirePeer } from '../helpers/peers';
import { makeTestPki, type CertPair, type TestPki } from '../helpers/pki';
import { spawnGrid, startProxyProcess, type GridProcess, type ProxyProcess } from '../helpers/processes';
import { op, pick } from '../helpers/soap-http';
import { faultCodeOf, signedEnvelope } from '../helpers/wss-client';

const ROOT = join(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const V1_XSD = join(ROOT, 'schemas', 'payloads', 'mathserver-v1.xsd');
const V2_XSD = join(ROOT, 'schemas', 'payloads', 'mathserver-v2.xsd');
const PASSWORD = 'grid-secret-password-7f3a';
const TOKEN = 'admin-token-for-tests-0b8e';

/** The control file under test; `extraSlaOnReload` is added by the reload scenario. */
function controlFile(extraSlaOnReload = ''): string {
  const sla = (consumer: string, policy?: string, attrs = ''): string =>
    policy
      ? `<SLA consumerId="${consumer}"><Policy${attrs}>${policy}</Policy></SLA>`
      : `<SLA consumerId="${consumer}"/>`;
  const version = (uri: string, slas: string, sld: string): string =>
    `<ServiceVersion uri="${uri}"><SLAs>${slas}</SLAs><SLD>${sld}</SLD></ServiceVersion>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<BusinessServices domain="tests" version="1">
  <BusinessService name="MathServer">
    ${version(
      '/services/MathServer/V1',
      sla('APPLICATION1', 'SLA_2MessagesPer10Seconds_Throttle') +
        sla('APPLICATION2', 'SLA_5MessagesPer10Seconds_Throttle'),
      '<Policy>SLD_1000MessagesPer60Seconds_Throttle</Policy><EndPoint><URL>symphony://grid-a</URL></EndPoint>',
    )}
    ${version(
      '/services/MathServer/V2',
      sla('APPLICATION1', 'SLA_100MessagesPer10Seconds_Throttle') +
        sla('APPLICATION2', 'SLA_100MessagesPer10Seconds_Throttle'),
      '<Policy>SLD_10MessagesPer60Seconds_Throttle</Policy><EndPoint><URL>symphony://grid-b</URL></EndPoint>',
    )}
    ${version(
      '/services/MathServer/V3',
      sla('APPLICATION1'),
      `<EndPoint><URL>symphony://grid-a</URL><Request><InputSchemaURL>${V1_XSD}</InputSchemaURL></Request>` +
        `<Response><InputSchemaURL>${V1_XSD}</InputSchemaURL></Response></EndPoint>`,
    )}
    ${version(
      '/services/MathServer/V4',
      sla('APPLICATION1'),
      `<EndPoint><URL>symphony://grid-a</URL><Response><InputSchemaURL>${V2_XSD}</InputSchemaURL></Response></EndPoint>`,
    )}
    ${version(
      '/services/MathServer/Failover',
      sla('APPLICATION1'),
      '<EndPoint><URL>symphony://grid-b</URL><URL>symphony://grid-a</URL></EndPoint>',
    )}
    ${version(
      '/services/MathServer/FailOpen',
      sla('APPLICATION1', 'SLA_1000MessagesPer10Seconds_Throttle', ' onStoreFailure="open"'),
      '<EndPoint><URL>symphony://grid-a</URL></EndPoint>',
    )}
    ${version(
      '/services/MathServer/FailClosed',
      sla('APPLICATION1', 'SLA_1000MessagesPer10Seconds_Throttle', ' onStoreFailure="closed"'),
      '<EndPoint><URL>symphony://grid-a</URL></EndPoint>',
    )}
    ${version(
      '/services/MathServer/Shaped',
      sla('APPLICATION1', 'SLA_2MessagesPer1Second_Shape', ' maxDelayMs="3000" intervalType="fixed"'),
      '<EndPoint><URL>symphony://grid-a</URL></EndPoint>',
    )}
    ${version('/services/MathServer/Reload', sla('APPLICATION1') + extraSlaOnReload, '<EndPoint><URL>symphony://grid-a</URL></EndPoint>')}
  </BusinessService>
</BusinessServices>
`;
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  fault: { detail: string; code: string } | undefined;
}

function origin(p: ProxyProcess): string {
  return new URL(p.url).origin;
}

async function call(
  proxy: ProxyProcess,
  path: string,
  who: CertPair,
  body: string,
  opts: { version?: '1.1' | '1.2'; headerXml?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const version = opts.version ?? '1.1';
  const xml = signedEnvelope(body, {
    certPem: who.certPem,
    keyPem: who.keyPem,
    soapVersion: version,
    signatureAlgorithm:
      new X509Certificate(who.certPem).publicKey.asymmetricKeyType === 'ec' ? 'ecdsa-sha256' : 'rsa-sha256',
    ...(opts.headerXml ? { headerXml: opts.headerXml } : {}),
  });
  const res = await fetch(origin(proxy) + path, {
    method: 'POST',
    headers: {
      'content-type': version === '1.1' ? 'text/xml; charset=utf-8' : 'application/soap+xml; charset=utf-8',
      ...opts.headers,
    },
    body: xml,
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, fault: faultCodeOf(text) };
}

const connect = (user = 'shared', clusterURL?: string): string =>
  op(
    'connect',
    (clusterURL ? `<sym:clusterURL>${clusterURL}</sym:clusterURL>` : '') +
      `<sym:applicationName>MathServer</sym:applicationName><sym:username>${user}</sym:username><sym:password>${PASSWORD}</sym:password>`,
  );
const createSession = (connectionId: string): string =>
  op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`);
const status = (sessionId: string): string =>
  op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`);
const task = (xml: string): string =>
  `<sym:taskSubmissionAttributes><sym:taskInput><sym:xml>${xml}</sym:xml></sym:taskInput></sym:taskSubmissionAttributes>`;
const send = (sessionId: string, xml: string): string =>
  op('sendTaskInput', `<sym:sessionId>${sessionId}</sym:sessionId>${task(xml)}`);
const sendBatch = (sessionId: string, xmls: string[]): string =>
  op('sendTaskInputBatch', `<sym:sessionId>${sessionId}</sym:sessionId>${xmls.map(task).join('')}`);
const fetchOutputs = (sessionId: string): string =>
  op(
    'fetchTaskOutput',
    `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>10</sym:countMax><sym:timeoutMillis>5000</sym:timeoutMillis>`,
  );
const addV1 = (a: string, b: string): string =>
  `<m:add xmlns:m="urn:example:mathserver:v1"><m:a>${a}</m:a><m:b>${b}</m:b></m:add>`;

function ok(r: Reply): Reply {
  expect(r.fault, r.text.slice(0, 1000)).to.equal(undefined);
  expect(r.status).to.equal(200);
  return r;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('policy: SLA control file scenarios (3 proxies, shared Redis, 2 grids, signed clients)', function () {
  this.timeout(180000);
  let pki: TestPki;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let gridA: GridProcess;
  let gridB: GridProcess;
  let proxies: ProxyProcess[] = [];
  let dir: string;
  let policyFile: string;
  let app1: CertPair;
  let app2: CertPair;
  let app3: CertPair;

  /** Round-robin over the proxies, so that each scenario crosses all three. */
  let turn = 0;
  const next = (): ProxyProcess => proxies[turn++ % proxies.length]!;

  const writePolicy = (text: string): void => {
    // Replace atomically, as deploy tools do, so a watcher never reads half a file.
    const tmp = `${policyFile}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, policyFile);
  };

  before(async function () {
    requirePeer(this, 'redis-server', hasRedis(), 'apt-get install redis-server');
    pki = await makeTestPki();
    app1 = pki.client;
    app2 = pki.otherClient;
    app3 = pki.ecClient;
    dir = mkdtempSync(join(tmpdir(), 'ssp-policy-'));
    const gridConfig = (only: string): string => {
      const f = join(dir, `grid-${only}.json`);
      writeFileSync(
        f,
        JSON.stringify({
          applications: [
            {
              name: 'MathServer',
              service: 'echo',
              workers: 1,
              users: [
                { name: 'shared', password: PASSWORD },
                { name: only, password: PASSWORD },
              ],
            },
          ],
        }),
      );
      return f;
    };
    redis = await startRedis();
    [gridA, gridB] = await Promise.all([
      spawnGrid(['--config', gridConfig('only-a'), '--port', '0']),
      spawnGrid(['--config', gridConfig('only-b'), '--port', '0']),
    ]);
    policyFile = join(dir, 'sla-control.xml');
    writePolicy(controlFile());
    const tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const fp = (c: CertPair): string => new X509Certificate(c.certPem).fingerprint256;
    const cluster = (name: string, address: string): Record<string, unknown> => ({
      name,
      urls: [`symphony://${name}`],
      addresses: [address],
      connectTimeoutMs: 1000,
      requestTimeoutMs: 10000,
    });
    const config = {
      server: { host: '127.0.0.1', port: 0 },
      admin: { enabled: true, host: '127.0.0.1', port: 0, tokenFile },
      log: { level: 'error' },
      security: {
        mode: 'wss',
        trust: { caFiles: [pki.ca.certFile] },
        responseSigning: { enabled: false },
        // While Redis is away, signed calls keep a per-proxy replay cache, so that the
        // limiter's own fail-open/closed choice is what decides.
        replayCacheOnStoreFailure: 'local',
        consumers: [
          { id: 'APPLICATION1', fingerprint256: fp(app1) },
          { id: 'APPLICATION2', fingerprint256: fp(app2) },
          { id: 'APPLICATION3', fingerprint256: fp(app3) },
        ],
      },
      grid: {
        defaultCluster: 'grid-a',
        clusters: [cluster('grid-a', gridA.address), cluster('grid-b', gridB.address)],
      },
      store: { kind: 'redis', redis: { url: redis.url, commandTimeoutMs: 300 } },
      policy: { file: policyFile, watch: true },
    };
    proxies = await Promise.all([0, 1, 2].map(() => startProxyProcess(config)));
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await Promise.all([gridA?.stop(), gridB?.stop()]);
    await redis?.stop();
  });

  it('App1 (Silver, 2 messages per 10 s): the third message is refused, whichever proxy takes it', async () => {
    const c = ok(await call(next(), '/services/MathServer/V1', app1, connect()));
    const connectionId = pick(c.text, 'connectionId')!;
    ok(await call(next(), '/services/MathServer/V1', app1, createSession(connectionId)));
    const third = await call(next(), '/services/MathServer/V1', app1, createSession(connectionId), {
      version: '1.2',
    });
    expect(third.fault).to.deep.equal({ detail: 'SlaFault', code: 'SSP_RATE_LIMITED' });
    expect(third.status).to.equal(429);
    expect(Number(third.headers.get('retry-after'))).to.be.within(1, 10);
    expect(third.text).to.contain('SLA_2MessagesPer10Seconds_Throttle');
  });

  it('App2 (Gold, 5 messages per 10 s): five pass, the sixth is refused', async () => {
    const c = ok(await call(next(), '/services/MathServer/V1', app2, connect()));
    const connectionId = pick(c.text, 'connectionId')!;
    const s = ok(await call(next(), '/services/MathServer/V1', app2, createSession(connectionId)));
    const sessionId = pick(s.text, 'sessionId')!;
    for (let i = 0; i < 3; i++) ok(await call(next(), '/services/MathServer/V1', app2, status(sessionId)));
    const sixth = await call(next(), '/services/MathServer/V1', app2, status(sessionId));
    expect(sixth.fault).to.deep.equal({ detail: 'SlaFault', code: 'SSP_RATE_LIMITED' });
    expect(sixth.status).to.equal(500, 'SOAP 1.1 faults travel with HTTP 500 (WS-I BP R1126)');
    expect(sixth.headers.get('retry-after')).to.match(/^\d+$/);
  });

  it('an SLD of 10 messages per 60 s is exceeded on the 11th message across both consumers', async () => {
    for (let i = 0; i < 10; i++) {
      ok(await call(next(), '/services/MathServer/V2', i % 2 ? app2 : app1, connect()));
    }
    const eleventh = await call(next(), '/services/MathServer/V2', app2, connect());
    expect(eleventh.fault).to.deep.equal({ detail: 'SlaFault', code: 'SSP_RATE_LIMITED' });
    expect(eleventh.text).to.contain('SLD_10MessagesPer60Seconds_Throttle');
    const app1too = await call(next(), '/services/MathServer/V2', app1, connect());
    expect(app1too.fault?.code).to.equal('SSP_RATE_LIMITED');
  });

  it('App3 has no SLA: refused by the SLA check with 403 (SOAP 1.2) and "Error: SLA Check"', async () => {
    const r = await call(next(), '/services/MathServer/V1', app3, connect(), { version: '1.2' });
    expect(r.fault).to.deep.equal({ detail: 'SlaFault', code: 'SSP_SLA_CHECK' });
    expect(r.status).to.equal(403);
    expect(r.text).to.contain('Error: SLA Check');
    expect(r.text).to.contain('APPLICATION3');
  });

  it('an invalid typed payload is refused by validation and never reaches the grid', async () => {
    const path = '/services/MathServer/V3';
    const c = ok(await call(next(), path, app1, connect()));
    const s = ok(await call(next(), path, app1, createSession(pick(c.text, 'connectionId')!)));
    const sessionId = pick(s.text, 'sessionId')!;
    ok(await call(next(), path, app1, send(sessionId, addV1('1', '2'))));

    const bad = await call(next(), path, app1, send(sessionId, addV1('x', '2')));
    expect(bad.fault).to.deep.equal({ detail: 'ValidationFault', code: 'SSP_PAYLOAD_INVALID' });
    expect(bad.text).to.match(/'x' is not a valid value/);
    const badBatch = await call(next(), path, app1, sendBatch(sessionId, [addV1('3', '4'), addV1('5', 'y')]));
    expect(badBatch.fault?.code).to.equal('SSP_PAYLOAD_INVALID');
    expect(badBatch.text).to.contain('task input 2 of 2');
    const text = await call(
      next(),
      path,
      app1,
      op(
        'sendTaskInput',
        `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput><sym:text>1+2</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
      ),
    );
    expect(text.fault?.code).to.equal('SSP_PAYLOAD_INVALID');

    // Only the valid task was submitted: the grid counts one, and the one output is valid on the way back.
    const st = ok(await call(next(), path, app1, status(sessionId)));
    const tasks = ['pendingTasks', 'runningTasks', 'doneTasks', 'failedTasks'].reduce(
      (sum, f) => sum + Number(pick(st.text, f)),
      0,
    );
    expect(tasks).to.equal(1);
    const out = ok(await call(next(), path, app1, fetchOutputs(sessionId)));
    expect(out.text).to.match(/<(\w+:)?successful>true</);
    expect(out.text).to.contain('urn:example:mathserver:v1');
  });

  it('a task output that fails the response schema is handed over as a failed task naming the problem', async () => {
    const path = '/services/MathServer/V4';
    const c = ok(await call(next(), path, app1, connect()));
    const s = ok(await call(next(), path, app1, createSession(pick(c.text, 'connectionId')!)));
    const sessionId = pick(s.text, 'sessionId')!;
    ok(await call(next(), path, app1, send(sessionId, addV1('1', '2'))));
    const out = ok(await call(next(), path, app1, fetchOutputs(sessionId)));
    expect(out.text).to.match(/<(\w+:)?successful>false</);
    expect(out.text).to.contain('SSP_OUTPUT_INVALID');
    expect(out.text).to.not.contain('<m:a>1</m:a>');
  });

  it('routes each service version to its EndPoint cluster, and fails over to the next URL', async () => {
    // Each grid knows one user the other does not: who accepts the connect shows where it went.
    ok(await call(next(), '/services/MathServer/Failover', app1, connect('only-b')));
    const atA = await call(next(), '/services/MathServer/V3', app1, connect('only-b'));
    expect(atA.fault?.code, 'V3 routes to grid A, which does not know only-b').to.equal(
      'SSP_GRID_AUTHENTICATION',
    );

    await gridB.stop();
    for (const p of proxies) {
      const viaA = await call(p, '/services/MathServer/Failover', app1, connect('only-a'));
      expect(viaA.fault, viaA.text.slice(0, 600)).to.equal(undefined);
    }
    const notB = await call(next(), '/services/MathServer/Failover', app1, connect('only-b'));
    expect(notB.fault?.code).to.equal('SSP_GRID_AUTHENTICATION');
  });

  it('refuses an unknown clusterURL, one outside the EndPoint, a wrong application and an unknown path', async () => {
    const unknown = await call(
      next(),
      '/services/MathServer/V3',
      app1,
      connect('shared', 'symphony://nowhere'),
    );
    expect(unknown.fault).to.deep.equal({ detail: 'InvalidArgumentFault', code: 'SSP_UNKNOWN_CLUSTER' });
    const outside = await call(
      next(),
      '/services/MathServer/V3',
      app1,
      connect('shared', 'symphony://grid-b'),
    );
    expect(outside.fault?.code).to.equal('SSP_UNKNOWN_CLUSTER');
    expect(outside.text).to.contain('symphony://grid-a');
    const wrongApp = await call(
      next(),
      '/services/MathServer/V3',
      app1,
      op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      ),
    );
    expect(wrongApp.fault?.code).to.equal('SSP_INVALID_ARGUMENT');
    const nowhere = await call(next(), '/services/Nothing/V9', app1, connect());
    expect(nowhere.status).to.equal(404);
    expect(nowhere.fault?.code).to.equal('SSP_UNKNOWN_SERVICE_VERSION');
    const wsdl = await fetch(`${origin(proxies[0]!)}/services/MathServer/V3?wsdl`);
    expect(wsdl.status).to.equal(200);
    expect(await wsdl.text()).to.contain('/services/MathServer/V3"');
  });

  it('a connection made at one service version cannot be used at another', async () => {
    const c = ok(await call(next(), '/services/MathServer/V3', app1, connect()));
    const r = await call(
      next(),
      '/services/MathServer/Failover',
      app1,
      createSession(pick(c.text, 'connectionId')!),
    );
    expect(r.fault?.code).to.equal('SSP_WRONG_SERVICE_VERSION');
  });

  it('shape holds a request until the window admits it, within its bound', async () => {
    const path = '/services/MathServer/Shaped';
    const shapedCount = async (): Promise<number> => {
      const texts = await Promise.all(
        proxies.map(async (p) => (await fetch(`${p.adminUrl}/metrics`)).text()),
      );
      return texts
        .map((t) => /ssp_limiter_decisions_total\{scope="sla",decision="shaped"\} (\d+)/.exec(t))
        .reduce((sum, m) => sum + (m ? Number(m[1]) : 0), 0);
    };
    const before = await shapedCount();
    // 2 per fixed 1 s window and 5 at once: three are held for a later window, none refused.
    // Windows are epoch-aligned (Redis's clock, this machine's), so the burst starts just after a
    // window opens: one straddling a boundary would have fewer held, and prove less.
    while (Date.now() % 1000 > 50) await sleep(Math.max(1, 1000 - (Date.now() % 1000)));
    const replies = await Promise.all([0, 1, 2, 3, 4].map(() => call(next(), path, app1, connect())));
    for (const r of replies) ok(r);
    expect((await shapedCount()) - before).to.be.at.least(3);
  });

  it('Redis unreachable: a fail-closed policy refuses on every proxy, a fail-open one lets the call through', async () => {
    await redis.stop();
    try {
      for (const p of proxies) {
        const closed = await call(p, '/services/MathServer/FailClosed', app1, connect());
        expect(closed.fault).to.deep.equal({ detail: 'SlaFault', code: 'SSP_LIMITER_UNAVAILABLE' });
        const open = await call(p, '/services/MathServer/FailOpen', app1, connect());
        // Admitted by the limiter; the connection record then cannot be stored in the same Redis.
        expect(open.fault?.code).to.equal('SSP_STORE_UNAVAILABLE');
        const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
        expect(metrics).to.match(/ssp_limiter_decisions_total\{scope="sla",decision="fail_open"\} [1-9]/);
        expect(metrics).to.match(/ssp_limiter_decisions_total\{scope="sla",decision="error"\} [1-9]/);
      }
    } finally {
      await redis.restart();
    }
    await eventually('every proxy to reach Redis again', async () => {
      const rs = await Promise.all(
        proxies.map((p) => call(p, '/services/MathServer/FailClosed', app1, connect())),
      );
      return rs.every((r) => r.fault === undefined);
    });
  });

  it('audits every call in a hash-chained file that the CLI verifies; no password, WS-Addressing id echoed', async () => {
    const messageId = 'urn:uuid:6a1f1c64-55b8-4c1b-9f7e-0c1f4e2b9a10';
    const r = ok(
      await call(proxies[0]!, '/services/MathServer/V3', app1, connect(), {
        headerXml: `<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">${messageId}</wsa:MessageID>`,
      }),
    );
    expect(r.headers.get('x-correlation-id')).to.equal(messageId);
    await new Promise((res) => setTimeout(res, 300)); // let the audit stream flush
    for (const p of proxies) {
      const text = readFileSync(p.auditFile!, 'utf8');
      expect(text).to.not.contain(PASSWORD);
      const verdict = await cli(['audit', 'verify', p.auditFile!]);
      expect(verdict.code, verdict.stdout + verdict.stderr).to.equal(0);
      expect(verdict.stdout).to.match(/ok: \d+ records/);
    }
    const lines = readFileSync(proxies[0]!.auditFile!, 'utf8').trim().split('\n');
    const rec = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((x) => x['correlationId'] === messageId)!;
    expect(rec).to.include({
      consumerId: 'APPLICATION1',
      operation: 'connect',
      outcome: 'ok',
      serviceVersion: '/services/MathServer/V3',
    });
    expect(rec['connectionId']).to.be.a('string');
    expect(rec['fingerprint256']).to.be.a('string');
    expect(rec['subject']).to.contain('client-a');
    expect(rec['clientIp']).to.be.a('string');
    expect(rec['gridMs']).to.be.a('number');
    expect(rec['proxyMs']).to.be.a('number');
    expect(rec['bytesIn']).to.be.greaterThan(1000);
    const refused = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .concat(
        ...proxies.slice(1).map((p) =>
          readFileSync(p.auditFile!, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        ),
      )
      .filter((x) => x['faultCode'] === 'SSP_SLA_CHECK');
    expect(refused.length).to.be.at.least(1);
    expect(refused[0]).to.include({ consumerId: 'APPLICATION3', outcome: 'fault' });
  });

  it('serves Prometheus metrics with bounded labels', async () => {
    const text = await (await fetch(`${proxies[0]!.adminUrl}/metrics`)).text();
    expect(text).to.match(/ssp_requests_total\{operation="connect",outcome="ok"\} \d+/);
    expect(text).to.match(/ssp_proxy_duration_seconds_bucket\{le="[^"]+",operation="connect"\}/);
    expect(text).to.match(/ssp_grid_duration_seconds_count\{operation="connect"\} \d+/);
    expect(text).to.match(/ssp_grid_connections\{cluster="grid-a"\} [1-9]/);
    expect(text).to.match(/ssp_policy_reloads_total\{trigger="start",result="ok"\} 1/);
    expect(text).to.not.contain('APPLICATION');
    expect(text).to.not.match(/connectionId|sessionId/);
  });

  it('hot reload by file change, SIGHUP and the admin call drops no request in flight; a bad file keeps the old policy', async () => {
    const path = '/services/MathServer/Reload';
    const c = ok(await call(proxies[0]!, path, app1, connect()));
    const s = ok(await call(proxies[1]!, path, app1, createSession(pick(c.text, 'connectionId')!)));
    const sessionId = pick(s.text, 'sessionId')!;
    let stop = false;
    const failures: string[] = [];
    let done = 0;
    const worker = async (k: number): Promise<void> => {
      while (!stop) {
        const r = await call(proxies[k % 3]!, path, app1, status(sessionId));
        if (r.fault || r.status !== 200) failures.push(r.text.slice(0, 300));
        done++;
      }
    };
    const workers = [0, 1, 2, 3, 4, 5].map(worker);

    // 1. the file changes: APPLICATION3 gains an SLA at this version, on every proxy.
    writePolicy(controlFile('<SLA consumerId="APPLICATION3"/>'));
    await eventually('every proxy to pick up the new file', async () => {
      const rs = await Promise.all(proxies.map((p) => call(p, path, app3, connect())));
      return rs.every((r) => r.fault === undefined);
    });
    // 2. SIGHUP and 3. the authenticated admin call, while requests keep flowing.
    proxies[1]!.child.kill('SIGHUP');
    const denied = await fetch(`${proxies[2]!.adminUrl}/policy/reload`, { method: 'POST' });
    expect(denied.status).to.equal(401);
    const reload = await fetch(`${proxies[2]!.adminUrl}/policy/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(reload.status).to.equal(200);
    await eventually('the SIGHUP reload to be counted', async () => {
      const t = await (await fetch(`${proxies[1]!.adminUrl}/metrics`)).text();
      return /ssp_policy_reloads_total\{trigger="signal",result="(ok|unchanged)"\} 1/.test(t);
    });

    // A broken file: refused with line and element; the previous policy stays in effect.
    writePolicy(
      controlFile('<SLA consumerId="APPLICATION3"/>').replace('<SLA consumerId="APPLICATION1"/>', '<SLA/>'),
    );
    await eventually('readyz to report the bad file', async () => {
      const r = await fetch(`${proxies[0]!.adminUrl}/readyz`);
      return r.status === 503;
    });
    const why = await (await fetch(`${proxies[0]!.adminUrl}/readyz`)).text();
    expect(why).to.match(/line \d+, <SLA>/);
    expect(why).to.contain('consumerId');
    const rejected = await fetch(`${proxies[2]!.adminUrl}/policy/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(rejected.status).to.equal(422);
    ok(await call(proxies[0]!, path, app3, connect()));
    const m = await (await fetch(`${proxies[0]!.adminUrl}/metrics`)).text();
    expect(m).to.match(/ssp_policy_last_reload_failed 1/);
    expect(m).to.match(/ssp_policy_reloads_total\{trigger="file",result="error"\} [1-9]/);

    writePolicy(controlFile());
    await eventually('every proxy to be ready again with the restored file', async () => {
      const rs = await Promise.all(proxies.map((p) => fetch(`${p.adminUrl}/readyz`)));
      return rs.every((r) => r.status === 200);
    });
    stop = true;
    await Promise.all(workers);
    expect(failures, failures.slice(0, 3).join('\n')).to.deep.equal([]);
    expect(done).to.be.greaterThan(20);
    const gone = await call(proxies[0]!, path, app3, connect());
    expect(gone.fault?.code).to.equal('SSP_SLA_CHECK');
  });
});
