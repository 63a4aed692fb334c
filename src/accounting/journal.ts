/**
 * The grid path's side of the spool: fetched tasks' usage appended to a segment file with one
 * write(2) each, instead of a file per fetch (five system calls and as many thread-pool round
 * trips, which cost more CPU than the records themselves). A write that returned is in the page
 * cache, so it survives the proxy being killed; `sync()` (the batch loop calls it) makes it survive
 * the machine losing power, with one fdatasync for everything appended since.
 *
 * The batch loop seals the segment it wants (`seal()`: later appends start a new one), reads the
 * sealed segments, and unlinks each once its records are in outgoing messages. Segments are named
 * `<13-digit ms>-<6-digit counter>.usage`, so names sort oldest first and give their age.
 *
 * Each appended element is framed as `#<byte length>\n<payload>`: a write torn by a full disk is
 * recognised (and its records counted as lost by the caller, which saw the error).
 */
import { closeSync, constants, fdatasync, fsyncSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const datasync = promisify(fdatasync);
const SEGMENT = /^(\d{13})-(\d{6})\.usage$/;

export interface Segment {
  name: string;
  /** When its first element was appended (epoch ms). */
  createdMs: number;
}

export class UsageJournal {
  private fd: number | undefined;
  private active: string | undefined;
  private counter = 0;
  private unsynced = false;
  private appended = 0;

  constructor(readonly path: string) {}

  async init(): Promise<void> {
    await mkdir(this.path, { recursive: true, mode: 0o700 });
    for (const name of await this.names())
      this.counter = Math.max(this.counter, Number(SEGMENT.exec(name)![2]));
  }

  /** Appends one element; throws (nothing half-counted: a torn tail is skipped when read) on failure. */
  append(payload: string): void {
    const body = Buffer.from(payload, 'utf8');
    const buf = Buffer.concat([Buffer.from(`#${body.length}\n`), body]);
    if (this.fd === undefined) {
      this.counter = (this.counter + 1) % 1_000_000;
      this.active = `${String(Date.now()).padStart(13, '0')}-${String(this.counter).padStart(6, '0')}.usage`;
      this.fd = openSync(
        join(this.path, this.active),
        constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
        0o600,
      );
      // The new name must survive a power cut too: the next sync() covers the directory.
      this.dirDirty = true;
    }
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.unsynced = true;
    this.appended += 1;
  }

  private dirDirty = false;

  /** Elements appended to the open segment. */
  get pending(): number {
    return this.appended;
  }

  /** Makes everything appended so far durable. */
  async sync(): Promise<void> {
    if (this.unsynced && this.fd !== undefined) {
      this.unsynced = false;
      await datasync(this.fd);
    }
    if (this.dirDirty) {
      this.dirDirty = false;
      const dir = await open(this.path, constants.O_RDONLY);
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }

  /** Closes the open segment (after syncing it): the next append starts a new one. */
  async seal(): Promise<void> {
    if (this.fd === undefined) return;
    await this.sync();
    const fd = this.fd;
    this.fd = undefined;
    this.active = undefined;
    this.appended = 0;
    closeSync(fd);
  }

  /** Sealed segments, oldest first (the open one is not among them). */
  async sealed(): Promise<Segment[]> {
    return (await this.names())
      .filter((n) => n !== this.active)
      .map((name) => ({ name, createdMs: Number(SEGMENT.exec(name)![1]) }));
  }

  /** The open segment, if any element was appended to it. */
  openSegment(): Segment | undefined {
    return this.active ? { name: this.active, createdMs: Number(SEGMENT.exec(this.active)![1]) } : undefined;
  }

  /** The elements of a sealed segment, and whether its end was torn (a write that failed half-way). */
  async read(segment: Segment): Promise<{ elements: string[]; torn: boolean }> {
    const buf = await readFile(join(this.path, segment.name));
    const elements: string[] = [];
    let at = 0;
    while (at < buf.length) {
      const nl = buf.indexOf(10, at);
      const header = nl < 0 ? '' : buf.subarray(at, nl).toString('latin1');
      const len = /^#(\d+)$/.test(header) ? Number(header.slice(1)) : -1;
      if (len < 0 || nl + 1 + len > buf.length) return { elements, torn: true };
      elements.push(buf.subarray(nl + 1, nl + 1 + len).toString('utf8'));
      at = nl + 1 + len;
    }
    return { elements, torn: false };
  }

  /** Removes a segment whose records are all in outgoing messages. */
  async remove(segment: Segment): Promise<void> {
    await unlink(join(this.path, segment.name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    const dir = await open(this.path, constants.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** Closes the open segment without waiting (shutdown, after a last sync). */
  close(): void {
    if (this.fd !== undefined) {
      try {
        fsyncSync(this.fd);
      } finally {
        closeSync(this.fd);
        this.fd = undefined;
        this.active = undefined;
      }
    }
  }

  private async names(): Promise<string[]> {
    return (await readdir(this.path)).filter((n) => SEGMENT.test(n)).sort();
  }
}
