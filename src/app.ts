/** Assembles the proxy: contract, pipeline in its fixed order, services, listeners. */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { ProxyConfig } from './config';
import { log } from './log';
import { defaultWsdlPath, loadContract } from './soap/wsdl';
import { ROOT } from './paths';
import { compose, type Stage } from './pipeline/context';
import { receive } from './stages/receive';
import { parse } from './stages/parse';
import { identify } from './stages/identify';
import { wssecurity } from './stages/wssecurity';
import { TrustStore } from './security/truststore';
import { WssVerifier } from './security/verifier';
import { EnvelopeSigner } from './security/envelope-signer';
import { envelope, type EnvelopeWriter } from './soap/envelope';
import { readFileSync } from 'node:fs';
import { route } from './stages/route';
import { decode } from './stages/decode';
import { respond } from './stages/respond';
import { dispatch, type Handler } from './stages/dispatch';
import { GridRouter } from './services/grid-router';
import { connectionService } from './services/connection-service';
import { sessionService } from './services/session-service';
import { taskService } from './services/task-service';
import type { ServiceDeps } from './services/deps';
import { MemoryStore } from './store/memory-store';
import { createSoapServer } from './server/soap-server';
import { wsdlDocuments } from './server/wsdl-serving';
import { createAdminApp, listen } from './server/admin-server';
import { spawnGrid, type GridProcess } from './server/embedded-grid';

export interface RunningProxy {
  url: string;
  wsdlUrl: string;
  adminUrl: string | null;
  config: ProxyConfig;
  router: GridRouter;
  responseSigning: 'rsa-sha256' | 'ecdsa-sha256' | null;
  close(): Promise<void>;
}

export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const contract = loadContract(defaultWsdlPath(ROOT));
  let grid: GridProcess | null = null;
  const clusters = [...config.grid.clusters];
  if (config.grid.embedded) {
    const secret = randomBytes(24).toString('hex');
    grid = await spawnGrid(['--host', '127.0.0.1', '--port', '0'], {
      ...process.env,
      GRID_SHARED_SECRET: secret,
    });
    log.info('embedded reference grid started', { address: grid.address, pid: grid.child.pid });
    clusters.unshift({
      name: config.grid.defaultCluster,
      urls: ['embedded'],
      addresses: [grid.address],
      sharedSecret: secret,
      poolSize: 2,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 30000,
    });
  }

  const router = new GridRouter(clusters, config.grid.defaultCluster);
  const store = new MemoryStore();
  const deps: ServiceDeps = { router, store, maxTasksPerBatch: config.limits.maxTasksPerBatch };
  const handlers = new Map<string, Handler>(
    Object.entries({ ...connectionService(deps), ...sessionService(deps), ...taskService(deps) }),
  );
  for (const name of contract.byName.keys()) {
    if (!handlers.has(name)) throw new Error(`the WSDL operation ${name} has no handler`);
  }

  const sec = config.security;
  let verify: Stage | null = null;
  if (sec.mode === 'wss') {
    const trust = await TrustStore.load(sec.trust, sec.algorithms);
    verify = wssecurity(new WssVerifier(trust, { ...sec.timestamp, ...sec.algorithms }, store));
    log.info('WS-Security required', { trustAnchors: trust.anchorCount, crls: sec.trust.crlFiles.length });
  }
  const rs = sec.responseSigning;
  const signer =
    rs.enabled && rs.certFile && rs.keyFile
      ? new EnvelopeSigner({
          certFile: rs.certFile,
          keyFile: rs.keyFile,
          ttlSeconds: sec.timestamp.ttlSeconds,
        })
      : null;
  const write: EnvelopeWriter = signer ? (v, body) => signer.envelope(v, body) : envelope;

  // The fixed stage order (README "Request pipeline").
  const stages: Stage[] = [
    receive({ maxBodyBytes: config.server.maxBodyBytes }),
    parse(config.limits),
    ...(verify ? [verify] : []),
    identify(sec),
    route(contract),
    decode(),
    respond(write),
    dispatch(handlers),
  ];
  const tls = config.server.tls;
  const soap = createSoapServer(
    {
      ...config.server,
      writeEnvelope: write,
      tls: tls && {
        cert: readFileSync(tls.certFile),
        key: readFileSync(tls.keyFile),
        ...(tls.caFiles.length ? { ca: tls.caFiles.map((f) => readFileSync(f)) } : {}),
        requestCert: tls.requestClientCert || tls.requireClientCert,
        rejectUnauthorized: tls.requireClientCert,
      },
    },
    compose(stages),
    wsdlDocuments(contract),
  );
  const addr = await listen(soap, config.server.port, config.server.host);
  const url = `${tls ? 'https' : 'http'}://${addr.host}:${addr.port}${config.server.path}`;

  let admin: http.Server | null = null;
  let adminUrl: string | null = null;
  if (config.admin.enabled) {
    const app = createAdminApp({
      notReadyReason: () =>
        router.status().some((s) => s.connected > 0) ? null : 'no grid cluster has a live connection',
    });
    const { createServer } = await import('node:http');
    admin = createServer(app);
    const a = await listen(admin, config.admin.port, config.admin.host);
    adminUrl = `http://${a.host}:${a.port}`;
  }

  return {
    url,
    wsdlUrl: `${url}?wsdl`,
    adminUrl,
    config,
    router,
    responseSigning: signer?.algorithm ?? null,
    async close() {
      await new Promise<void>((r) => soap.close(() => r()));
      soap.closeAllConnections();
      if (admin) {
        admin.closeAllConnections();
        await new Promise<void>((r) => admin!.close(() => r()));
      }
      router.close();
      await store.close();
      if (grid) await grid.stop();
    },
  };
}
