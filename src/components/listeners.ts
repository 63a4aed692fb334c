/** The SOAP listener (HTTP or HTTPS, optionally mutual TLS) and the admin listener beside it. */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type https from 'node:https';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../config';
import type { Pipeline } from '../pipeline/phases';
import type { PolicyManager } from '../policy/policy-manager';
import { createAdminApp, listen } from '../server/admin-server';
import { createSoapServer, DrainGate } from '../server/soap-server';
import { wsdlDocuments } from '../server/wsdl-serving';
import type { Contract } from '../soap/wsdl';
import type { Resources } from './resources';
import type { DeadLetter } from '../store/notification-store';

export interface SoapListener {
  server: http.Server | https.Server;
  url: string;
  gate: DrainGate;
}

function tlsOptions(tls: NonNullable<ProxyConfig['server']['tls']>): https.ServerOptions {
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ...(tls.caFiles.length ? { ca: tls.caFiles.map((f) => readFileSync(f)) } : {}),
    requestCert: tls.requestClientCert || tls.requireClientCert,
    rejectUnauthorized: tls.requireClientCert,
  };
}

export async function startSoapListener(
  config: ProxyConfig,
  pipeline: Pipeline,
  contract: Contract,
  policies: PolicyManager | null,
  res: Resources,
): Promise<SoapListener> {
  const tls = config.server.tls;
  const gate = new DrainGate();
  const server = createSoapServer(
    {
      path: config.server.path,
      keepAliveTimeoutMs: config.server.keepAliveTimeoutMs,
      requestTimeoutMs: config.server.requestTimeoutMs,
      ...(config.server.publicUrl !== undefined ? { publicUrl: config.server.publicUrl } : {}),
      drain: gate,
      ...(policies ? { isServicePath: (p: string) => policies.current.version(p) !== undefined } : {}),
      ...(tls ? { tls: tlsOptions(tls) } : {}),
    },
    pipeline,
    wsdlDocuments(contract),
  );
  const addr = await listen(server, config.server.port, config.server.host);
  res.add('SOAP listener', server, (s) => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { server, gate, url: `${tls ? 'https' : 'http'}://${addr.host}:${addr.port}${config.server.path}` };
}

/** The admin listener, or null when disabled: health, readiness, metrics, policy reload. */
export async function startAdminListener(
  config: ProxyConfig,
  probes: {
    notReadyReason(): string | null;
    details(): string[];
    registry: Registry;
    policies: PolicyManager | null;
    deadLetters?: (max: number) => Promise<DeadLetter[]>;
  },
  res: Resources,
): Promise<string | null> {
  if (!config.admin.enabled) return null;
  const token = config.admin.tokenFile ? readFileSync(config.admin.tokenFile, 'utf8').trim() : undefined;
  const pm = probes.policies;
  const app = createAdminApp({
    notReadyReason: probes.notReadyReason,
    details: probes.details,
    registry: probes.registry,
    ...(pm ? { reloadPolicy: () => pm.reload('admin') } : {}),
    ...(probes.deadLetters ? { deadLetters: probes.deadLetters } : {}),
    ...(token ? { token } : {}),
  });
  const server = http.createServer(app);
  const a = await listen(server, config.admin.port, config.admin.host);
  res.add('admin listener', server, (s) => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return `http://${a.host}:${a.port}`;
}
