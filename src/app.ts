/**
 * Assembles the proxy from its parts (src/components/) and the pipeline (src/pipeline/build.ts).
 * Parts are started in dependency order and registered for closing; a start that fails
 * half-way closes what it had started.
 */
import type { GridLink, GridRouter } from './backend/grid-router';
import type { TlsReload } from './backend/grid-tls';
import { startAccounting } from './components/accounting';
import { startGridRouter } from './components/grid';
import { startAdminListener, startSoapListener } from './components/listeners';
import { startPolicies } from './components/policy';
import { Resources } from './components/resources';
import { loadSecurity, type CrlReload } from './components/security';
import { openStore } from './components/store';
import { startNotifications } from './components/notifications';
import type { ProxyConfig } from './config';
import { Lifetimes } from './lifetime/lifetimes';
import { Reaper } from './lifetime/reaper';
import { log } from './log';
import { AuditLog } from './observability/audit-log';
import { ProxyMetrics } from './observability/metrics';
import { operationTable } from './operations/table';
import { ROOT } from './paths';
import { buildPhases } from './pipeline/build';
import { bindOperations } from './pipeline/operation';
import { createPipeline } from './pipeline/phases';
import type { ReloadOutcome } from './policy/policy-manager';
import { loadProxyContract } from './operations/contract';
import { XPathEngine } from './resources/xpath/xpath-engine';
import { enumerationEnder } from './resources/enumeration-end';
import { setTimeout as sleep } from 'node:timers/promises';

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
  /** Reloads the CRLs (SIGHUP); null without WS-Security. */
  reloadCrls(): Promise<CrlReload> | null;
  /** How each grid cluster's link travels (TLS or plain). */
  gridLinks(): GridLink[];
  /** Reloads the grid links' TLS certificates, keys and CAs (SIGHUP); new sockets use them. */
  reloadGridTls(): { cluster: string; result: TlsReload }[];
  close(): Promise<void>;
}

export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const res = new Resources();
  try {
    return await assemble(config, res);
  } catch (e) {
    await res.closeAll();
    throw e;
  }
}

async function assemble(config: ProxyConfig, res: Resources): Promise<RunningProxy> {
  const contract = loadProxyContract(ROOT);
  const router = await startGridRouter(config, res);
  const store = await openStore(config, res);
  const metrics = new ProxyMetrics(() => router.status());
  const policies = await startPolicies(config, router, metrics, res);
  const audit = config.audit.enabled
    ? res.add('audit trail', await AuditLog.open(config.audit.file), (a) => a.close())
    : null;
  const security = await loadSecurity(config, store, res);
  const lifetimes = new Lifetimes(store, config.lifetime, Date.now, metrics.resourceUsage(), (kind, app) =>
    policies?.current.idleMs(kind, app),
  );
  const accounting = await startAccounting(config, store, metrics.registry, res);
  const notifications = startNotifications(
    config,
    store,
    router,
    security.signer,
    contract.encodeOutput,
    metrics,
    audit,
    res,
    accounting?.outbox ?? null,
  );
  const reaper = new Reaper(store, router, lifetimes, metrics, {
    ...config.lifetime,
    endEnumeration: enumerationEnder(store, security.write),
    endNotificationResource: notifications.endExpired,
    notifier: notifications.notifier,
  });
  const xpath = res.add('XPath query engine', new XPathEngine(), (e) => e.close());
  reaper.start();
  res.add('lifetime reaper', reaper, (r) => r.stop());
  const operations = bindOperations(
    contract.operations,
    operationTable({
      router,
      store,
      lifetimes,
      maxTasksPerBatch: config.limits.maxTasksPerBatch,
      reliability: config.reliability,
      ...(accounting ? { usage: accounting.outbox } : {}),
      publicAddress: {
        publicUrl: config.server.publicUrl,
        path: config.server.path,
        tls: config.server.tls !== undefined,
      },
      resources: {
        xpath,
        maxTerminationMs: config.lifetime.maxTerminationMs,
        clientTerminationTimes: config.lifetime.clientTerminationTimes,
      },
      enumeration: config.enumeration,
      encodeOutput: contract.encodeOutput,
      notifier: notifications.notifier,
      notifications: { limits: notifications.limits, destinations: notifications.destinations },
    }),
  );
  const sec = config.security;
  const pipeline = createPipeline(
    buildPhases({
      endpointPath: config.server.path,
      maxBodyBytes: config.server.maxBodyBytes,
      xmlLimits: config.limits,
      verifier: security.verifier,
      identity: sec,
      policies,
      operations,
      store,
      clientKeyTtlMs: config.reliability.clientKeyTtlMs,
      metrics,
      write: security.write,
      audit,
    }),
    security.write,
  );

  const soap = await startSoapListener(config, pipeline, contract, policies, res);
  const adminUrl = await startAdminListener(
    config,
    {
      notReadyReason: () => {
        if (soap.gate.draining) return 'draining: this proxy is shutting down';
        if (!router.status().some((s) => s.connected > 0)) return 'no grid cluster has a live connection';
        if (policies?.lastError)
          return `the SLA control file is invalid (the previous policy stays in effect): ${policies.lastError}`;
        return null;
      },
      details: () => [
        ...router.links().map((l) => `grid link ${l.cluster}: ${l.describe}`),
        ...(accounting ? [accounting.describe()] : []),
      ],
      registry: metrics.registry,
      policies,
      deadLetters: (max) => store.listDeadLetters(max),
    },
    res,
  );

  const close = (): Promise<void> => res.closeAll();
  return {
    url: soap.url,
    wsdlUrl: `${soap.url}?wsdl`,
    adminUrl,
    config,
    router,
    responseSigning: security.signer?.algorithm ?? null,
    serviceVersions: () => policies?.current.uris ?? null,
    reloadPolicy: () => (policies ? policies.reload('signal') : null),
    reloadCrls: () => (security.reloadCrls ? security.reloadCrls() : null),
    gridLinks: () => router.links(),
    reloadGridTls: () => router.reloadTls(),
    async shutdown() {
      const { server, gate } = soap;
      gate.draining = true;
      const { drainDelayMs, drainTimeoutMs } = config.server;
      log.info('draining: readiness is false; still serving while load balancers notice', { drainDelayMs });
      await sleep(drainDelayMs);
      const closed = new Promise<void>((r) => server.close(() => r()));
      const deadline = Date.now() + drainTimeoutMs;
      while (gate.inFlight > 0 && Date.now() < deadline) {
        server.closeIdleConnections();
        await sleep(50);
      }
      if (gate.inFlight > 0)
        log.warn('drain timeout: closing calls still in flight', { inFlight: gate.inFlight });
      server.closeAllConnections();
      await closed;
      log.info('drained: no call in flight');
      await close();
    },
    close,
  };
}
