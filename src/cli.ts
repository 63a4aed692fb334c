#!/usr/bin/env node
/**
 * symphony-soap-proxy serve [--config FILE] [--dev]
 * symphony-soap-proxy grid  [grid options, see src/grid/main.ts]
 * symphony-soap-proxy certs dev [--out DIR] [--force]
 * symphony-soap-proxy policy check FILE [--config FILE]
 * symphony-soap-proxy audit verify FILE
 */
import { parseArgs } from 'node:util';
import { startProxy } from './app';
import { ConfigError, loadConfig } from './config';
import { log, setLogLevel } from './log';
import { certsCommand, DEFAULT_DEV_CERTS_DIR } from './commands/certs';
import { accountingCommand } from './commands/accounting';
import { generateDevPki } from './commands/dev-pki';
import { join, relative } from 'node:path';
import { policyCommand } from './commands/policy';
import { PolicyLoadError } from './policy/model';
import { auditCommand } from './commands/audit';

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, dev: { type: 'boolean', default: false } },
  });
  // --dev: the fresh-clone experience. Embedded reference grid on loopback, and WS-Security
  // on, with a development PKI generated on first run (the CA signs the client's certificate).
  let base: Record<string, unknown> = {};
  let devCerts: Record<string, string> | null = null;
  if (values.dev) {
    const pki = await generateDevPki(DEFAULT_DEV_CERTS_DIR);
    if (pki.created) console.log(`generated development certificates in ${pki.dir}`);
    devCerts = pki.files;
    base = {
      security: {
        mode: 'wss',
        trust: { caFiles: [pki.files.ca], crlFiles: [pki.files.crl] },
        // RSA-SHA256: what the WSDL's Basic256Sha256 policy promises, so policy-enforcing clients
        // (WSS4J/CXF, JAX-WS handlers) accept the responses. ECDSA is a configuration choice.
        responseSigning: { certFile: pki.files.proxySigningRsa, keyFile: pki.files.proxySigningRsaKey },
      },
      grid: { embedded: true },
      // A consumer on this machine (a JAX-WS Endpoint.publish, say) may receive notifications.
      notifications: {
        destinations: [{ consumer: '*', hosts: ['localhost', '127.0.0.1', '::1'], allowHttp: true }],
      },
      // Usage records are made and queued on disk; with no broker configured they wait there
      // (`symphony-soap-proxy accounting list`).
      accounting: { enabled: true, site: 'DEV-SITE' },
    };
  }
  const config = loadConfig(values.config, process.env, base);
  if (values.dev && config.accounting.spoolDir === 'var/accounting') {
    // A spool belongs to one process: dev proxies started side by side (other ports, or port 0
    // in tests) each get their own.
    const port = config.server.port;
    config.accounting.spoolDir = join('var', 'accounting', port > 0 ? String(port) : `pid-${process.pid}`);
  }
  setLogLevel(config.log.level);
  const proxy = await startProxy(config);
  const banner = [
    `symphony-soap-proxy listening on ${proxy.url}`,
    `  WSDL:   ${proxy.wsdlUrl}`,
    proxy.adminUrl ? `  admin:  ${proxy.adminUrl}/livez  ${proxy.adminUrl}/readyz` : '',
    config.security.mode === 'off'
      ? '  SECURITY OFF: unsigned, unauthenticated requests are accepted. Development only.'
      : '',
    config.grid.embedded ? '  grid:   embedded reference grid (applications: echo, cpu)' : '',
    ...proxy
      .gridLinks()
      .map(
        (l) => `  grid link ${l.cluster}: ${l.transport === 'plain-network' ? 'WARNING ' : ''}${l.describe}`,
      ),
    ...(proxy.serviceVersions() ?? []).map(
      (uri) => `  service version: ${new URL(uri, proxy.url).toString()}`,
    ),
    config.security.mode === 'wss'
      ? `  WS-Security: signed requests only; responses ${proxy.responseSigning ? `signed (${proxy.responseSigning})` : 'unsigned'}`
      : '',
    devCerts
      ? `  try:    /usr/bin/python3 test/zeep/signed_flow.py --wsdl ${proxy.wsdlUrl} --client-cert ${rel(devCerts.client!)} --client-key ${rel(devCerts.clientKey!)} --proxy-cert ${rel(config.security.responseSigning.certFile ?? devCerts.proxySigningRsa!)}`
      : `  try:    /usr/bin/python3 -m zeep ${proxy.wsdlUrl}`,
  ]
    .filter(Boolean)
    .join('\n');
  console.log(banner);
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal: sig });
    // SIGTERM is the orchestrator's "please leave": drain. SIGINT is a developer's Ctrl-C.
    (sig === 'SIGTERM' ? proxy.shutdown() : proxy.close()).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  // SIGHUP reloads what can change without a restart: the SLA control file, the CRLs and the
  // grid links' TLS material.
  process.on('SIGHUP', () => {
    const policy = proxy.reloadPolicy();
    const crls = proxy.reloadCrls();
    const gridTls = proxy.reloadGridTls();
    if (!policy && !crls && gridTls.length === 0)
      log.warn('SIGHUP ignored: no SLA control file, no WS-Security trust store and no grid TLS');
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function rel(file: string): string {
  return relative(process.cwd(), file) || file;
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'certs':
      return certsCommand(rest);
    case 'policy':
      process.exitCode = await policyCommand(rest);
      return;
    case 'accounting':
      process.exitCode = await accountingCommand(rest);
      return;
    case 'audit':
      process.exitCode = await auditCommand(rest);
      return;
    case 'grid':
      process.argv = [process.argv[0]!, process.argv[1]!, ...rest];
      await import('./grid/main.js');
      return;
    default:
      console.error(
        'usage: symphony-soap-proxy serve [--config FILE] [--dev] | grid [--port N] [--config FILE] | certs dev [--out DIR] [--force] | policy check FILE [--config FILE] | audit verify FILE | accounting list|show|check|resend|purge',
      );
      process.exit(2);
  }
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof PolicyLoadError) console.error(e.message);
  else console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
