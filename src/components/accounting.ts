/**
 * Accounting at start-up: the spool (taken for this process), the signer, the STOMP sender and
 * the outbox loops. Off unless accounting.enabled; a proxy whose broker is down still starts and
 * serves, its records waiting on disk.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { AccountingMetrics } from '../accounting/metrics';
import { AccountingOutbox, type OutboxStatus } from '../accounting/outbox';
import { encryptFor, forgeSigner, opensslSigner, type SmimeSigner } from '../accounting/smime';
import { UsageJournal } from '../accounting/journal';
import { DirQueue } from '../accounting/spool';
import { takeSpool } from '../accounting/spool-owner';
import { StompSender } from '../accounting/stomp-sender';
import { RecordMaker } from '../accounting/usage';
import type { ProxyConfig } from '../config';
import { log } from '../log';
import type { StateStore } from '../store/store';
import type { Resources } from './resources';

export interface AccountingParts {
  outbox: AccountingOutbox;
  /** One line for /readyz: accounting never makes the proxy unready, but says how it is. */
  describe(): string;
}

/** The spool's three queues, under one directory. */
export function spoolQueues(dir: string): { journal: UsageJournal; outgoing: DirQueue; rejected: DirQueue } {
  return {
    journal: new UsageJournal(join(dir, 'staged')),
    outgoing: new DirQueue(join(dir, 'outgoing')),
    rejected: new DirQueue(join(dir, 'rejected')),
  };
}

function signerOf(config: ProxyConfig): SmimeSigner | null {
  const s = config.accounting.signing;
  const certFile = s.certFile ?? config.security.responseSigning.certFile;
  const keyFile = s.keyFile ?? config.security.responseSigning.keyFile;
  if (!certFile || !keyFile) {
    log.warn('accounting: no signing certificate; messages wait in the queue unsent', {
      hint: 'set accounting.signing.certFile and keyFile (or security.responseSigning)',
    });
    return null;
  }
  const keyPem = readFileSync(keyFile, 'utf8');
  const rsa = createPrivateKey(keyPem).asymmetricKeyType === 'rsa';
  // An EC response key (a configuration choice) still signs accounting, through the openssl binary.
  if (s.signer === 'openssl' || (s.signer === 'auto' && !rsa))
    return opensslSigner({ certPath: certFile, keyPath: keyFile });
  return forgeSigner({ certPem: readFileSync(certFile, 'utf8'), keyPem });
}

function senderOf(config: ProxyConfig): StompSender | null {
  const b = config.accounting.broker;
  if (b.hosts.length === 0) {
    log.warn('accounting: no broker configured; records are kept in the queue', {
      spoolDir: config.accounting.spoolDir,
      hint: 'set accounting.broker.hosts',
    });
    return null;
  }
  const read = (f: string | undefined): string | undefined => (f ? readFileSync(f, 'utf8') : undefined);
  const ca = read(b.caFile);
  const cert = read(b.certFile);
  const key = read(b.keyFile);
  return new StompSender(
    {
      brokers: b.hosts.map((h) => ({
        host: h.host,
        port: h.port,
        ...(h.tls ? { tls: { ca, cert, key, servername: h.servername ?? h.host } } : {}),
      })),
      destination: b.destination,
      login: b.login,
      passcode: b.passcodeFile ? readFileSync(b.passcodeFile, 'utf8').trim() : undefined,
      vhost: b.vhost,
      receiptTimeoutMs: b.receiptTimeoutMs,
      connectTimeoutMs: b.connectTimeoutMs,
      heartbeatMs: b.heartbeatMs,
      reconnect: { initialMs: b.reconnectInitialMs, maxMs: b.reconnectMaxMs },
    },
    log,
  );
}

export async function startAccounting(
  config: ProxyConfig,
  store: StateStore,
  registry: Registry,
  res: Resources,
): Promise<AccountingParts | null> {
  const a = config.accounting;
  if (!a.enabled) return null;
  const spool = await takeSpool(a.spoolDir);
  res.add('accounting spool lock', spool, (s) => s.release());
  const queues = spoolQueues(a.spoolDir);
  await queues.outgoing.init();
  await queues.rejected.init();
  const signer = signerOf(config);
  const recipient = a.signing.encryptToCertFile
    ? readFileSync(a.signing.encryptToCertFile, 'utf8')
    : undefined;
  const sender = senderOf(config);
  // The gauges read the outbox's status, and the outbox needs the metrics: tie the knot here.
  const holder: { outbox?: AccountingOutbox } = {};
  const metrics = new AccountingMetrics(registry, () => {
    const s = holder.outbox?.status();
    return {
      queuedMessages: s?.queuedMessages ?? 0,
      stagedElements: s?.stagedElements ?? 0,
      rejectedMessages: s?.rejectedMessages ?? 0,
      oldestAgeMs: s?.oldestAgeMs,
    };
  });
  const outbox = new AccountingOutbox(
    {
      site: a.site!,
      format: a.format,
      recordsPerMessage: a.recordsPerMessage,
      batchDelayMs: a.batchDelayMs,
      claimTtlMs: a.claimTtlMs,
      inFlight: a.broker.inFlight,
      fsyncEach: a.fsync === 'each',
      summaries: a.summaries,
      ...(recipient ? { encrypt: (signed: string) => encryptFor(signed, recipient) } : {}),
    },
    store.accounting,
    { ...queues, owner: spool.owner },
    new RecordMaker(a),
    signer,
    sender,
    metrics,
  );
  holder.outbox = outbox;
  await outbox.start();
  res.add('accounting', outbox, (o) => o.stop());
  log.info('accounting on', {
    site: a.site,
    format: a.format,
    spoolDir: a.spoolDir,
    brokers: a.broker.hosts.length,
  });
  return { outbox, describe: () => describe(outbox.status()) };
}

function describe(s: OutboxStatus): string {
  const broker =
    s.broker === 'connected'
      ? `broker connected (${s.brokerAddress ?? '?'})`
      : s.broker === 'unreachable'
        ? `broker unreachable${s.lastError ? ` (${s.lastError})` : ''}: records wait on disk`
        : 'no broker configured: records wait on disk';
  const age = s.oldestAgeMs === undefined ? 'none waiting' : `oldest ${Math.round(s.oldestAgeMs / 1000)} s`;
  return `accounting: ${broker}; ${s.queuedMessages} messages and ${s.stagedElements} staged segments queued, ${age}; ${s.rejectedMessages} rejected`;
}
