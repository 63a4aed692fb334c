/**
 * Starts test/accounting/receiver.py (an APEL/SSM-style receiver in Python, independent of our
 * TypeScript) against a broker and reads what it accepted and rejected.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { hasCommand, hasPythonModule } from './peers';
import { until } from './poll';
import { stopProcess } from './peer-process';

/** The .py file is not compiled: resolve it in the source tree from the compiled test/helpers. */
const SCRIPT = join(__dirname, '..', '..', '..', 'test', 'accounting', 'receiver.py');
const READY_TIMEOUT_MS = 30000;

export interface ReceiverOptions {
  port: number;
  login: string;
  passcode: string;
  vhost?: string;
  destination: string;
  /** CA for `openssl smime -verify`. */
  caFile: string;
  /** Signer DNs in slash form (`/O=…/CN=…`) that the receiver accepts. */
  validDns: string[];
  tls?: { caFile: string; certFile?: string; keyFile?: string };
  decrypt?: { certFile: string; keyFile: string };
}

export interface AcceptedRecord {
  empa_id: string | null;
  kind: 'job' | 'summary' | 'car';
  signer: string;
  fields: Record<string, string | number>;
}

export interface RejectedMessage {
  empa_id: string | null;
  reason: string;
}

export interface ApelReceiver {
  records(): AcceptedRecord[];
  rejects(): RejectedMessage[];
  /** Records whose (Site, LocalJobId, EndTime) was seen before: what APEL's REPLACE would merge. */
  duplicates(): AcceptedRecord[];
  /** Waits (bounded) until `n` records plus rejects have been written; true if they were. */
  waitFor(n: number, timeoutMs: number): Promise<boolean>;
  /**
   * Starts receiver.py again, appending to the same files: it exits when the broker goes away,
   * so a test that restarts the broker calls this once the broker is back.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A certificate's subject in slash form, as SSM compares signers (openssl's legacy `compat` format). */
export function opensslSlashDn(certFile: string): string {
  const out = execFileSync('openssl', ['x509', '-noout', '-subject', '-nameopt', 'compat', '-in', certFile]);
  return out
    .toString('ascii')
    .trim()
    .replace(/^subject=\s*/, '');
}

export function hasApelReceiverPeers(): boolean {
  return hasPythonModule('stomp') && hasCommand('openssl', ['version']);
}

function readLines<T>(file: string): T[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return []; // not written yet
  }
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

function args(o: ReceiverOptions, dir: string): string[] {
  const a = [
    SCRIPT,
    '--port',
    String(o.port),
    '--login',
    o.login,
    '--passcode-file',
    join(dir, 'passcode'),
    '--vhost',
    o.vhost ?? '/',
    '--destination',
    o.destination,
    '--cafile',
    o.caFile,
    '--dns',
    join(dir, 'dns'),
    '--out',
    join(dir, 'records.jsonl'),
    '--rejects',
    join(dir, 'rejects.jsonl'),
  ];
  if (o.tls) {
    a.push('--tls-ca', o.tls.caFile);
    if (o.tls.certFile) a.push('--tls-cert', o.tls.certFile);
    if (o.tls.keyFile) a.push('--tls-key', o.tls.keyFile);
  }
  if (o.decrypt) a.push('--decrypt-cert', o.decrypt.certFile, '--decrypt-key', o.decrypt.keyFile);
  return a;
}

function waitReady(child: ChildProcess, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`receiver.py did not subscribe within ${READY_TIMEOUT_MS} ms:\n${stderr()}`));
    }, READY_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.trim() === 'READY') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`receiver.py exited with ${code} before subscribing:\n${stderr()}`));
    });
  });
}

export async function startApelReceiver(o: ReceiverOptions): Promise<ApelReceiver> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-apel-receiver-'));
  writeFileSync(join(dir, 'passcode'), o.passcode, { mode: 0o600 });
  writeFileSync(join(dir, 'dns'), o.validDns.join('\n') + '\n');
  let child: ChildProcess | undefined;
  const reap = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', reap);
  const spawnReceiver = async (): Promise<void> => {
    const c = spawn('/usr/bin/python3', args(o, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let err = '';
    c.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    await waitReady(c, () => err);
  };
  try {
    await spawnReceiver();
  } catch (e) {
    process.off('exit', reap);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const records = (): AcceptedRecord[] => readLines<AcceptedRecord>(join(dir, 'records.jsonl'));
  const rejects = (): RejectedMessage[] => readLines<RejectedMessage>(join(dir, 'rejects.jsonl'));
  return {
    records,
    rejects,
    duplicates() {
      const seen = new Set<string>();
      return records().filter((r) => {
        const key = JSON.stringify([r.fields['Site'], r.fields['LocalJobId'], r.fields['EndTime']]);
        if (seen.has(key)) return true;
        seen.add(key);
        return false;
      });
    },
    waitFor(n, timeoutMs) {
      return until(() => records().length + rejects().length >= n, timeoutMs, 100);
    },
    async restart() {
      if (child) await stopProcess(child);
      await spawnReceiver();
    },
    async stop() {
      if (child) await stopProcess(child);
      process.off('exit', reap);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
