/**
 * S/MIME for accounting messages (docs/design/accounting.md 3.1, 5.2): signed exactly as SSM's
 * `openssl smime -sign -text` signs, so an SSM 2 receiver's `openssl smime -verify` accepts it, and
 * optionally enveloped as `openssl smime -encrypt -aes256` does.
 *
 * Two signers: node-forge in worker threads (RSA keys; no binary needed) and the openssl binary as
 * a child process (EC keys, or operators who want OpenSSL's own bytes).
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createCipheriv, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as forge from 'node-forge';
import { slashDn } from '../security/dn';
import {
  base64Lines,
  crlfCanonical,
  pemCertificates,
  type SignJob,
  type SignReply,
  type SignWorkerData,
} from './sign-worker';

export interface SmimeSigner {
  /** The multipart/signed message for `text` (ASCII; LF or CRLF line ends). */
  sign(text: string): Promise<string>;
  /** Stops workers or waits for running children; later sign() calls are refused. */
  close(): Promise<void>;
}

export interface ForgeSignerOptions {
  certPem: string;
  /** Unencrypted RSA key, PKCS#1 or PKCS#8 PEM. */
  keyPem: string;
  /** Intermediate certificates to embed after the signer's. */
  chainPem?: string;
  /** Worker threads; default 1. */
  workers?: number;
}

export interface OpensslSignerOptions {
  certPath: string;
  keyPath: string;
  chainPath?: string;
  /** Default `openssl` from PATH. */
  opensslPath?: string;
}

// Compiled JS runs from dist/; the worker is its sibling there.
const WORKER_SCRIPT = join(__dirname, 'sign-worker.js');
const MAX_WORKERS = 16;
/** A 1,000-record message is ~120 KB signed; this is far above any real message. */
const OPENSSL_MAX_OUTPUT = 256 * 1024 * 1024;

/**
 * Refuses what SSM cannot read: receivers decode the message as ASCII before verifying, so one
 * non-ASCII character loses the whole message (pitfall 4). The offset, not the text, is reported.
 */
export function assertAscii(text: string, what = 'the message'): void {
  // eslint-disable-next-line no-control-regex
  const at = text.search(/[^\x00-\x7f]/);
  if (at >= 0) {
    throw new Error(
      `${what} contains a non-ASCII character at offset ${at}; APEL/SSM receivers read messages as ASCII: escape it first (e.g. DNs in OpenSSL's \\xHH form)`,
    );
  }
}

/** The signer certificate's subject as SSM reports it: OpenSSL's slash form (`/C=UK/O=…/CN=…`). */
export function signerSubject(certPem: string): string {
  return slashDn(new X509Certificate(certPem).subject);
}

// ---------------------------------------------------------------------------------------------
// forge signer

interface Pending {
  resolve: (signed: string) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  failure?: Error;
}

function readRsaKey(opts: ForgeSignerOptions): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(opts.keyPem);
  } catch (e) {
    throw new Error(
      `the S/MIME signing key could not be read (${(e as Error).message}); give an unencrypted PEM private key`,
      { cause: e },
    );
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new Error(
      `the forge S/MIME signer supports RSA keys only, this key is ${key.asymmetricKeyType}: use the 'openssl' signer for it`,
    );
  }
  return key;
}

function checkIdentity(opts: ForgeSignerOptions): void {
  const key = readRsaKey(opts);
  const cert = new X509Certificate(opts.certPem);
  if (!cert.checkPrivateKey(key)) {
    throw new Error(
      'the S/MIME signing key does not belong to the signing certificate; configure the matching pair',
    );
  }
  for (const pem of pemCertificates(opts.chainPem ?? '')) new X509Certificate(pem);
}

class ForgeSigner implements SmimeSigner {
  private readonly slots: Slot[] = [];
  private readonly data: SignWorkerData;
  private readonly maxWorkers: number;
  private nextId = 1;
  private closed = false;

  constructor(opts: ForgeSignerOptions) {
    checkIdentity(opts);
    const workers = opts.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      throw new Error(`workers must be an integer from 1 to ${MAX_WORKERS}, not ${workers}`);
    }
    this.maxWorkers = workers;
    this.data = { kind: 'smime-sign', certPem: opts.certPem, keyPem: opts.keyPem };
    if (opts.chainPem !== undefined) this.data.chainPem = opts.chainPem;
  }

  async sign(text: string): Promise<string> {
    if (this.closed) throw new Error('the S/MIME signer is closed; create a new one');
    assertAscii(text);
    const slot = this.pickSlot();
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, text } satisfies SignJob);
      slot.worker.ref();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const slot of slots)
      this.rejectAll(slot, new Error('the S/MIME signer was closed before the message was signed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** An idle worker if there is one, else a new one while under the limit, else the least busy. */
  private pickSlot(): Slot {
    const idle = this.slots.find((s) => s.pending.size === 0);
    if (idle !== undefined) return idle;
    if (this.slots.length < this.maxWorkers) return this.spawn();
    return this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SCRIPT, { workerData: this.data });
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (reply: SignReply) => {
      const job = slot.pending.get(reply.id);
      if (job === undefined) return;
      slot.pending.delete(reply.id);
      if ('signed' in reply) job.resolve(reply.signed);
      else job.reject(new Error(reply.error));
      // An idle worker must not keep the process alive.
      if (slot.pending.size === 0) worker.unref();
    });
    worker.on('error', (e: Error) => {
      slot.failure = e;
    });
    worker.on('exit', () => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      const reason = slot.failure?.message ?? 'it stopped unexpectedly';
      this.rejectAll(
        slot,
        new Error(`the S/MIME signing worker failed (${reason}); retry: a new worker starts`),
      );
    });
    this.slots.push(slot);
    return slot;
  }

  private rejectAll(slot: Slot, error: Error): void {
    for (const job of slot.pending.values()) job.reject(error);
    slot.pending.clear();
  }
}

/** node-forge signer in worker threads: RSA keys only. Throws at once on an unusable key. */
export function forgeSigner(opts: ForgeSignerOptions): SmimeSigner {
  return new ForgeSigner(opts);
}

// ---------------------------------------------------------------------------------------------
// openssl signer

function runOpenssl(bin: string, args: string[], input: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { encoding: 'buffer', maxBuffer: OPENSSL_MAX_OUTPUT, windowsHide: true },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout.toString('latin1'));
          return;
        }
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error(`openssl was not found at '${bin}': install OpenSSL or set opensslPath`));
          return;
        }
        // openssl's stderr names files and reasons, never key material.
        const detail = stderr.toString('latin1').trim().split('\n').slice(0, 3).join('; ');
        reject(new Error(`openssl ${args[0]} ${args[1]} failed (${err.code ?? err.message}): ${detail}`));
      },
    );
    // A failed start closes stdin; the callback above reports why.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input, 'latin1');
  });
}

function checkReadable(path: string, what: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new Error(`the S/MIME ${what} ${path} is not readable; check the path and its permissions`);
  }
}

class OpensslSigner implements SmimeSigner {
  private readonly bin: string;
  private readonly args: string[];
  private readonly running = new Set<Promise<string>>();
  private closed = false;

  constructor(opts: OpensslSignerOptions) {
    checkReadable(opts.certPath, 'certificate');
    checkReadable(opts.keyPath, 'key');
    if (opts.chainPath !== undefined) checkReadable(opts.chainPath, 'chain');
    this.bin = opts.opensslPath ?? 'openssl';
    // Paths only: the key never passes through argv, stdin or logs.
    this.args = [
      'smime',
      '-sign',
      '-text',
      '-md',
      'sha256',
      '-signer',
      opts.certPath,
      '-inkey',
      opts.keyPath,
    ];
    if (opts.chainPath !== undefined) this.args.push('-certfile', opts.chainPath);
  }

  async sign(text: string): Promise<string> {
    if (this.closed) throw new Error('the S/MIME signer is closed; create a new one');
    assertAscii(text);
    const run = runOpenssl(this.bin, this.args, text);
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
  }
}

/** `openssl smime -sign -text -md sha256` as a child process, one per message. */
export function opensslSigner(opts: OpensslSignerOptions): SmimeSigner {
  return new OpensslSigner(opts);
}

// ---------------------------------------------------------------------------------------------
// encryption

/** forge leaves these untyped; setting them makes encrypt() skip its own (pure JS) AES pass. */
interface EnvelopedContent {
  encryptedContent: {
    algorithm: string;
    key?: forge.util.ByteBuffer;
    parameter?: forge.util.ByteBuffer;
    content?: forge.util.ByteBuffer;
  };
}

function rsaRecipient(recipientCertPem: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(recipientCertPem);
  } catch (e) {
    throw new Error(
      `the recipient certificate cannot be used for encryption (${(e as Error).message}); it must be a PEM certificate with an RSA key`,
      { cause: e },
    );
  }
}

/**
 * Envelopes a signed message for one recipient as `openssl smime -encrypt -aes256` does: the
 * message in canonical CRLF form, AES-256-CBC (native), the key wrapped with RSA PKCS#1 v1.5 by
 * forge's EnvelopedData, and openssl's application/x-pkcs7-mime layout.
 */
export async function encryptFor(signed: string, recipientCertPem: string): Promise<string> {
  assertAscii(signed, 'the signed message');
  const cert = rsaRecipient(recipientCertPem);
  const key = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const content = Buffer.concat([cipher.update(crlfCanonical(signed), 'latin1'), cipher.final()]);

  const p7 = forge.pkcs7.createEnvelopedData() as forge.pkcs7.PkcsEnvelopedData & EnvelopedContent;
  p7.addRecipient(cert);
  p7.encryptedContent = {
    algorithm: forge.pki.oids['aes256-CBC'],
    key: forge.util.createBuffer(key.toString('binary')),
    parameter: forge.util.createBuffer(iv.toString('binary')),
    content: forge.util.createBuffer(content.toString('binary')),
  };
  p7.encrypt();
  const der = Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
  return (
    'MIME-Version: 1.0\n' +
    'Content-Disposition: attachment; filename="smime.p7m"\n' +
    'Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n' +
    'Content-Transfer-Encoding: base64\n\n' +
    `${base64Lines(der)}\n`
  );
}
