/**
 * The audit trail: one JSON line per SOAP call, hash-chained so that an edited, deleted, reordered or
 * inserted line is detectable (see verify.ts). Separate from the operational log on purpose: its own
 * winston logger, its own file, no levels.
 *
 * Line layout: S = JSON.stringify({ seq, prev, ...fields }), hash = sha256(S) in hex, and the line is
 * S with its closing brace replaced by `,"hash":"<hex>"}`. A verifier therefore recomputes the hash from
 * the raw bytes of the line, whatever JSON library or key order it would otherwise see.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open as openFile, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import winston from 'winston';
import { log } from '../log';

export interface AuditRecord {
  /** ISO-8601 UTC, set by the caller. */
  time: string;
  correlationId: string;
  consumerId?: string;
  subject?: string;
  fingerprint256?: string;
  clientIp?: string;
  serviceVersion?: string;
  operation?: string;
  connectionId?: string;
  sessionId?: string;
  taskIds?: string[];
  taskIdsTruncated?: boolean;
  taskCount?: number;
  outcome: 'ok' | 'fault';
  faultCode?: string;
  proxyMs: number;
  gridMs: number;
  bytesIn: number;
  bytesOut: number;
  /** E.g. the limiter's verdict, short text. */
  limit?: string;
  /** The answer was a retry's: remembered from an earlier call with the same client key. */
  repeated?: boolean;
}

type Picked = { [K in keyof Required<AuditRecord>]: AuditRecord[K] };

/**
 * The allowlist of what may reach the file: only these fields are copied, whatever else a caller's
 * object carries. The mapped type makes a field added to AuditRecord but not here a compile error.
 * A literal of fixed shape also keeps JSON.stringify on its fast path; it omits the undefined ones.
 */
function pick(r: AuditRecord): Picked {
  return {
    time: r.time,
    correlationId: r.correlationId,
    consumerId: r.consumerId,
    subject: r.subject,
    fingerprint256: r.fingerprint256,
    clientIp: r.clientIp,
    serviceVersion: r.serviceVersion,
    operation: r.operation,
    connectionId: r.connectionId,
    sessionId: r.sessionId,
    taskIds: r.taskIds,
    taskIdsTruncated: r.taskIdsTruncated,
    taskCount: r.taskCount,
    outcome: r.outcome,
    faultCode: r.faultCode,
    proxyMs: r.proxyMs,
    gridMs: r.gridMs,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    limit: r.limit,
    repeated: r.repeated,
  };
}

/** `prev` of the first record of a file. */
export const GENESIS_HASH = '0'.repeat(64);

const HASH_SUFFIX_LEN = ',"hash":"'.length + 64 + '"}'.length;
const HASH_SUFFIX = /^,"hash":"([0-9a-f]{64})"\}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** Seals the JSON object text `body` (which must not contain `hash`) into one audit line. */
export function sealLine(body: string): { line: string; hash: string } {
  const hash = createHash('sha256').update(body).digest('hex');
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}`, hash };
}

export type LineCheck =
  { ok: true; seq: number; prev: string; hash: string } | { ok: false; seq?: number; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks one line (without its line end) on its own: well-formed, and its hash matches its bytes.
 * Whether it chains to its predecessor is the caller's business.
 */
export function checkLine(raw: Buffer): LineCheck {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, reason: 'not valid UTF-8' };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return { ok: false, reason: raw.length === 0 ? 'empty line' : 'not JSON' };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  const fields = obj as Record<string, unknown>;
  const seq =
    typeof fields['seq'] === 'number' && Number.isSafeInteger(fields['seq']) && fields['seq'] >= 1
      ? fields['seq']
      : undefined;
  const at = (n: number | undefined): { seq?: number } => (n === undefined ? {} : { seq: n });
  // The hash is taken from the raw tail, not the parsed object, so the check stays byte-exact.
  const m =
    raw.length > HASH_SUFFIX_LEN ? HASH_SUFFIX.exec(raw.subarray(-HASH_SUFFIX_LEN).toString('latin1')) : null;
  if (!m)
    return {
      ok: false,
      ...at(seq),
      reason: 'missing or ill-formed hash (expected a final "hash" of 64 hex digits)',
    };
  const hash = m[1]!;
  const actual = createHash('sha256')
    .update(raw.subarray(0, raw.length - HASH_SUFFIX_LEN))
    .update('}')
    .digest('hex');
  if (actual !== hash)
    return { ok: false, ...at(seq), reason: 'hash mismatch: the record was altered after it was written' };
  if (seq === undefined) return { ok: false, reason: 'missing or ill-formed seq' };
  const prev = fields['prev'];
  if (typeof prev !== 'string' || !HEX64.test(prev))
    return { ok: false, seq, reason: 'missing or ill-formed prev' };
  return { ok: true, seq, prev, hash };
}

/** The last record of an existing file cannot be continued from. */
export class AuditChainError extends Error {
  override name = 'AuditChainError';
}

interface Chain {
  seq: number;
  prev: string;
  /** Set once when the file ended in a partial line; goes into the next record. */
  resume: { resumedAfterTruncation: true; discardedBytes: number } | null;
}

// winston's own key for the final output line (triple-beam's MESSAGE), without depending on triple-beam.
const MESSAGE = Symbol.for('message');
// The record rides in the info object under a key of its own, apart from winston's level/message.
const RECORD = Symbol('audit record');

/**
 * The custom format: numbers the record, chains it and seals the line. The line is built from seq,
 * prev and the record alone, so winston's level and message never reach the file.
 */
const chainFormat = (chain: Chain): winston.Logform.Format =>
  winston.format((info) => {
    const record = info[RECORD] as Picked;
    const resume = chain.resume;
    chain.resume = null;
    const { line, hash } = sealLine(
      JSON.stringify({ seq: chain.seq + 1, prev: chain.prev, ...resume, ...record }),
    );
    chain.seq += 1;
    chain.prev = hash;
    info[MESSAGE] = line;
    return info;
  })();

interface Tail {
  /** The last newline-terminated line, without its newline. */
  last?: Buffer;
  /** Bytes after the last newline: a write cut short by a crash. */
  partial: Buffer;
  /** File offset just past the last newline. */
  completeEnd: number;
}

/** Reads backwards from the end only as far as needed to find the last complete line. */
async function readTail(fh: FileHandle, size: number): Promise<Tail> {
  for (let window = 64 * 1024; ; window *= 4) {
    const start = Math.max(0, size - window);
    const buf = Buffer.alloc(size - start);
    for (let got = 0; got < buf.length;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) throw new Error('the audit file shrank while being opened');
      got += bytesRead;
    }
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) {
      if (start > 0) continue;
      return { partial: buf, completeEnd: 0 };
    }
    const prevNl = lastNl === 0 ? -1 : buf.lastIndexOf(0x0a, lastNl - 1);
    if (prevNl < 0 && start > 0) continue;
    return {
      last: buf.subarray(prevNl + 1, lastNl),
      partial: buf.subarray(lastNl + 1),
      completeEnd: start + lastNl + 1,
    };
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One writer per file: two proxies appending to one file would fork the chain. The lock file
 * holds the writer's pid; a lock whose process is gone (a crash, kill -9) is taken over.
 */
/** Locks this process holds; a lock file with our pid that is not here is a previous life's (PID 1 in a container). */
const heldLocks = new Set<string>();

async function lockFile(file: string): Promise<void> {
  const lock = `${file}.lock`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      heldLocks.add(lock);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      const live = pid === process.pid ? heldLocks.has(lock) : pid > 0 && processAlive(pid);
      if (live) {
        throw new Error(
          `the audit file ${file} is in use by process ${pid}; give each proxy process its own audit.file`,
          { cause: e },
        );
      }
      await unlink(lock).catch(() => undefined);
    }
  }
  throw new Error(`cannot lock the audit file ${file} (${lock})`);
}

async function unlockFile(file: string): Promise<void> {
  heldLocks.delete(`${file}.lock`);
  await unlink(`${file}.lock`).catch(() => undefined);
}

export class AuditLog {
  private accepted = 0;
  private delivered = 0;
  private dropped = 0;
  private waiters: { target: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly file: string,
    private readonly fh: FileHandle,
    private readonly out: WriteStream,
    private readonly logger: winston.Logger,
    private readonly chain: Chain,
  ) {}

  /** Opens (creates) the file, continuing the chain from its last record; creates parent dirs; file mode 0600. */
  static async open(file: string): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await lockFile(file);
    let fh: FileHandle;
    let chain: Chain;
    try {
      // One handle for reading the tail and appending, so the file checked is the file written.
      fh = await openFile(file, 'a+', 0o600);
    } catch (e) {
      await unlockFile(file);
      throw e;
    }
    try {
      await fh.chmod(0o600);
      chain = await continueChain(file, fh);
    } catch (e) {
      await fh.close();
      await unlockFile(file);
      throw e;
    }
    // A Stream transport over our own fs stream rather than winston's File transport: the File
    // transport opens its file lazily and only signals completion on end(), while here the file is
    // open and checked before the first record, its mode is ours, and a write callback on the same
    // stream is a real flush. fs.WriteStream keeps order and batches queued lines into one writev.
    const out = createWriteStream(file, { fd: fh, encoding: 'utf8' });
    const transport = new winston.transports.Stream({ stream: out, eol: '\n' });
    const logger = winston.createLogger({
      levels: { audit: 0 },
      level: 'audit',
      format: chainFormat(chain),
      transports: [transport],
      exitOnError: false,
    });
    const audit = new AuditLog(file, fh, out, logger, chain);
    // The transport emits 'logged' after handing a line to the fs stream, in order.
    transport.on('logged', () => audit.onDelivered());
    out.on('error', (e) => audit.fail(e));
    logger.on('error', (e: Error) => audit.fail(e));
    log.info('audit trail opened', { file, seq: chain.seq, head: chain.prev });
    return audit;
  }

  write(rec: AuditRecord): void {
    if (this.closing || this.failure) {
      if (this.dropped++ === 0)
        log.error('audit record dropped', { file: this.file, reason: this.dropReason() });
      return;
    }
    this.accepted += 1;
    this.logger.log({ level: 'audit', message: '', [RECORD]: pick(rec) });
  }

  /** Resolves when everything written so far is flushed to the file (handed to the OS, not fsynced). */
  async flush(): Promise<void> {
    await this.delivery(this.accepted);
    // Queued chunks are written in order, so this callback runs after every earlier line is written.
    await new Promise<void>((resolve, reject) => this.out.write('', (e) => (e ? reject(e) : resolve())));
  }

  /** Flushes, fsyncs and closes the file. Records written after close() begins are dropped. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.flush();
        await this.fh.datasync();
        log.info('audit trail closed', { file: this.file, seq: this.chain.seq, head: this.chain.prev });
      } finally {
        this.logger.end();
        await new Promise<void>((resolve) => {
          if (this.out.closed) resolve();
          else this.out.once('close', () => resolve()).end();
        });
        await unlockFile(this.file);
      }
    })();
    return this.closing;
  }

  private delivery(target: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.delivered >= target) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ target, resolve, reject }));
  }

  private onDelivered(): void {
    this.delivered += 1;
    // Targets are pushed in increasing order, so the queue is sorted.
    while (this.waiters.length && this.waiters[0]!.target <= this.delivered) this.waiters.shift()!.resolve();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    log.error('audit trail write failed; further records are dropped', { file: this.file, error: e.message });
    for (const w of this.waiters.splice(0)) w.reject(e);
  }

  private dropReason(): string {
    return this.failure ? `write failed: ${this.failure.message}` : 'the audit log is closed';
  }
}

/** Where the next record's seq/prev come from, repairing a partial last line. */
async function continueChain(file: string, fh: FileHandle): Promise<Chain> {
  const { size } = await fh.stat();
  const chain: Chain = { seq: 0, prev: GENESIS_HASH, resume: null };
  if (size === 0) return chain;
  const tail = await readTail(fh, size);
  if (tail.last) {
    const c = checkLine(tail.last);
    // Continuing after a bad record would hide it behind fresh, valid ones; refuse instead.
    if (!c.ok) {
      throw new AuditChainError(
        `audit file ${file}: the last complete record cannot be continued (${c.reason}); ` +
          `check it with "audit verify" and move it aside to start a new chain`,
      );
    }
    chain.seq = c.seq;
    chain.prev = c.hash;
  }
  if (tail.partial.length === 0) return chain;
  const c = checkLine(tail.partial);
  if (c.ok && c.seq === chain.seq + 1 && c.prev === chain.prev) {
    // A whole record whose line end was lost: keep it.
    await fh.write('\n');
    chain.seq = c.seq;
    chain.prev = c.hash;
    return chain;
  }
  // A crash mid-write: the fragment was never a record. Drop it and say so, under the next hash.
  await fh.truncate(tail.completeEnd);
  chain.resume = { resumedAfterTruncation: true, discardedBytes: tail.partial.length };
  log.warn('audit file ended in a partial record; discarded it and resumed the chain', {
    file,
    afterSeq: chain.seq,
    discardedBytes: tail.partial.length,
  });
  return chain;
}
