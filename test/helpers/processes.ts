/** Starts the proxy and the reference grid as real processes on loopback, for tests and benches. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { wsdlClient, type SoapClient } from './soap-client';
import { spawnGrid, stopChild, type GridProcess } from '../../src/server/embedded-grid';

export { spawnGrid, type GridProcess };

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');

export interface ProxyProcess {
  url: string;
  wsdlUrl: string;
  adminUrl: string | null;
  child: ChildProcess;
  /** The proxy's own temp directory (its config, and its audit trail unless the config says otherwise). */
  dir: string;
  auditFile: string | null;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A config for one proxy in front of the given grid addresses, security off. */
export function proxyConfig(
  gridAddresses: string[],
  secret = '',
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0 },
    admin: { enabled: true, host: '127.0.0.1', port: 0 },
    security: { mode: 'off' },
    log: { level: 'error' },
    grid: {
      defaultCluster: 'default',
      clusters: [
        {
          name: 'default',
          urls: ['grid-a'],
          addresses: gridAddresses,
          sharedSecret: secret,
          requestTimeoutMs: 5000,
        },
      ],
    },
    ...extra,
  };
}

export function startProxyProcess(config: Record<string, unknown>, timeoutMs = 20000): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-'));
  const file = join(dir, 'proxy.json');
  // One audit file per proxy process: the hash chain is per file.
  const audit = (config['audit'] as { enabled?: boolean; file?: string } | undefined) ?? {};
  const auditFile = audit.enabled === false ? null : (audit.file ?? join(dir, 'audit.jsonl'));
  writeFileSync(
    file,
    JSON.stringify({ ...config, audit: { ...audit, ...(auditFile ? { file: auditFile } : {}) } }),
  );
  const child = spawn(process.execPath, [CLI, 'serve', '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let url = '';
    let adminUrl: string | null = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const listening = /listening on (\S+)/.exec(line);
      if (listening) url = listening[1]!;
      const admin = /admin:\s+(\S+)\/livez/.exec(line);
      if (admin) adminUrl = admin[1]!;
      if (/WSDL:/.test(line) && url) {
        clearTimeout(timer);
        resolve({
          url,
          wsdlUrl: `${url}?wsdl`,
          get adminUrl() {
            return adminUrl;
          },
          child,
          dir,
          auditFile,
          stop: (signal) => stopChild(child, signal),
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with code ${code} before listening`));
    });
  });
}

/** A grid, a proxy in front of it and a node-soap client, started before and stopped after a suite. */
export interface Relay {
  grid: GridProcess;
  proxy: ProxyProcess;
  client: SoapClient;
}

export function withRelay(opts: { secret?: string } = {}): () => Relay {
  const relay = {} as Relay;
  before(async () => {
    const secret = opts.secret ?? '';
    relay.grid = await spawnGrid(['--port', '0', ...(secret ? ['--secret', secret] : [])]);
    relay.proxy = await startProxyProcess(proxyConfig([relay.grid.address], secret));
    relay.client = await wsdlClient(relay.proxy.wsdlUrl);
  });
  after(async () => {
    await relay.proxy?.stop();
    await relay.grid?.stop();
  });
  return () => relay;
}
