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
import { RedisStore } from './store/redis-store';
import { StoreUnavailableError, type StateStore } from './store/store';
import { authorize } from './stages/authorize';
import { idempotency } from './stages/idempotency';
import { ratelimit } from './stages/ratelimit';
import { validate } from './stages/validate';
import { PolicyManager, type ReloadOutcome } from './policy/policy-manager';
import { ProxyMetrics } from './server/metrics';
import { AuditLog } from './audit/audit-log';
import { callRecord } from './audit/call-record';
import type { GatewayError } from './errors/catalogue';
import type { RequestContext } from './pipeline/context';
import { DrainGate, createSoapServer } from './server/soap-server';
import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Service version uris in effect, when an SLA control file is configured. */
  serviceVersions(): string[] | null;
  /** SIGTERM: not ready at once, serve for drainDelayMs, stop listening, finish calls in flight, close. */
  shutdown(): Promise<void>;
  /** Reloads the SLA control file (SIGHUP); resolves with the outcome. */
  reloadPolicy(): Promise<ReloadOutcome> | null;
  close(): Promise<void>;
}

/** The replay cache: the shared store, optionally backed by a per-process one while it is away. */
function replayCache(store: StateStore, sec: ProxyConfig['security']): Pick<StateStore, 'claimOnce'> {
  if (store instanceof MemoryStore || sec.replayCacheOnStoreFailure === 'refuse') return store;
  const local = new MemoryStore();
  let warnedAt = 0;
  return {
    async claimOnce(key, ttlMs, tag) {
      try {
        return await store.claimOnce(key, ttlMs, tag);
      } catch (e) {
        if (!(e instanceof StoreUnavailableError)) throw e;
        if (Date.now() - warnedAt > 10_000) {
          warnedAt = Date.now();
          log.warn("shared replay cache unreachable; using this proxy's own cache", { error: e.message });
        }
        return local.claimOnce(key, ttlMs, tag);
      }
    },
  };
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
  const store: StateStore =
    config.store.kind === 'redis'
      ? await RedisStore.connect({
          ...config.store.redis,
          outputRetentionMs: config.reliability.outputRetentionMs,
        })
      : new MemoryStore();
  const metrics = new ProxyMetrics(() => router.status());
  let policies: PolicyManager | null = null;
  if (config.policy.file) {
    policies = await PolicyManager.start(
      config.policy.file,
      { resolveCluster: (url) => router.resolve(url) },
      {
        reloaded(trigger, outcome) {
          metrics.policyReloads.inc({
            trigger,
            result: outcome.ok ? (outcome.changed ? 'ok' : 'unchanged') : 'error',
          });
          metrics.policyLastReloadFailed.set(outcome.ok ? 0 : 1);
          metrics.policyLastReloadTime.setToCurrentTime();
          if (policies) metrics.policyServiceVersions.set(policies.current.uris.length);
        },
      },
    );
    metrics.policyServiceVersions.set(policies.current.uris.length);
    if (config.policy.watch) policies.watchFile();
    log.info('SLA control file in effect', { file: policies.file, serviceVersions: policies.current.uris });
  }
  const audit = config.audit.enabled ? await AuditLog.open(config.audit.file) : null;
  const deps: ServiceDeps = {
    router,
    store,
    maxTasksPerBatch: config.limits.maxTasksPerBatch,
    reliability: config.reliability,
  };
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
    verify = wssecurity(
      new WssVerifier(trust, { ...sec.timestamp, ...sec.algorithms }, replayCache(store, sec)),
    );
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
    authorize(policies),
    route(contract),
    decode(),
    respond(write),
    validate(metrics),
    idempotency(store, config.reliability.clientKeyTtlMs),
    ratelimit(store, metrics),
    dispatch(handlers),
  ];
  const pm = policies;
  const onDone = (ctx: RequestContext, fault: GatewayError | null, bytesOut: number): void => {
    const now = performance.now();
    const operation = ctx.operation?.name ?? 'unknown';
    metrics.requests.inc({ operation, outcome: fault ? fault.code : 'ok' });
    metrics.proxySeconds.observe({ operation }, (now - ctx.startedAt - ctx.gridMs) / 1000);
    if (ctx.gridMs > 0) metrics.gridSeconds.observe({ operation }, ctx.gridMs / 1000);
    audit?.write(callRecord(ctx, fault, bytesOut, now));
  };
  const tls = config.server.tls;
  const gate = new DrainGate();
  const soap = createSoapServer(
    {
      ...config.server,
      drain: gate,
      writeEnvelope: write,
      onDone,
      ...(pm ? { isServicePath: (p: string) => pm.current.version(p) !== undefined } : {}),
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
    const token = config.admin.tokenFile ? readFileSync(config.admin.tokenFile, 'utf8').trim() : undefined;
    const app = createAdminApp({
      notReadyReason: () => {
        if (gate.draining) return 'draining: this proxy is shutting down';
        if (!router.status().some((s) => s.connected > 0)) return 'no grid cluster has a live connection';
        if (pm?.lastError)
          return `the SLA control file is invalid (the previous policy stays in effect): ${pm.lastError}`;
        return null;
      },
      registry: metrics.registry,
      ...(pm ? { reloadPolicy: () => pm.reload('admin') } : {}),
      ...(token ? { token } : {}),
    });
    const { createServer } = await import('node:http');
    admin = createServer(app);
    const a = await listen(admin, config.admin.port, config.admin.host);
    adminUrl = `http://${a.host}:${a.port}`;
  }

  async function close(): Promise<void> {
    await new Promise<void>((r) => soap.close(() => r()));
    soap.closeAllConnections();
    if (admin) {
      admin.closeAllConnections();
      await new Promise<void>((r) => admin!.close(() => r()));
    }
    router.close();
    await pm?.close();
    await audit?.close();
    await store.close();
    if (grid) await grid.stop();
  }

  return {
    url,
    wsdlUrl: `${url}?wsdl`,
    adminUrl,
    config,
    router,
    responseSigning: signer?.algorithm ?? null,
    serviceVersions: () => pm?.current.uris ?? null,
    reloadPolicy: () => (pm ? pm.reload('signal') : null),
    async shutdown() {
      gate.draining = true;
      const { drainDelayMs, drainTimeoutMs } = config.server;
      log.info('draining: readiness is false; still serving while load balancers notice', { drainDelayMs });
      await sleep(drainDelayMs);
      const closed = new Promise<void>((r) => soap.close(() => r()));
      const deadline = Date.now() + drainTimeoutMs;
      while (gate.inFlight > 0 && Date.now() < deadline) {
        soap.closeIdleConnections();
        await sleep(50);
      }
      if (gate.inFlight > 0)
        log.warn('drain timeout: closing calls still in flight', { inFlight: gate.inFlight });
      soap.closeAllConnections();
      await closed;
      log.info('drained: no call in flight');
      await close();
    },
    close,
  };
}
