/**
 * The durable outgoing queue on disk (docs/design/accounting.md 3.3, 6.3): python-dirq's
 * QueueSimple layout, so SSM and dirq tools can read it, plus the fsyncs dirq never does
 * (pitfall 8). One owner process per queue; elements are opaque bytes.
 *
 *   <root>/<8hex>/<14hex>        an element (dir: epoch s rounded down to the granularity;
 *                                name: 8hex seconds + 5hex microseconds + 1 rndhex digit)
 *   <root>/<8hex>/<14hex>.lck    hard link while locked
 *   <root>/<8hex>/<14hex>.tmp    being written
 */
import { randomInt } from 'node:crypto';
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** The part of a `node:fs/promises` FileHandle the queue uses. */
export interface SpoolFileHandle {
  writeFile(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The part of `node:fs/promises` the queue uses; injectable so tests can fail any call. */
export interface SpoolFs {
  open(path: string, flags: number, mode?: number): Promise<SpoolFileHandle>;
  link(existingPath: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, options: { recursive: boolean }): Promise<string | undefined>;
  rmdir(path: string): Promise<void>;
  stat(path: string): Promise<{ mtimeMs: number }>;
  utimes(path: string, atime: Date, mtime: Date): Promise<void>;
  readFile(path: string): Promise<Buffer>;
}

export interface DirQueueOptions {
  /** Seconds per intermediate directory (dirq's `granularity`); default 60. */
  granularitySec?: number;
  fs?: SpoolFs;
}

export interface PurgeOptions {
  /** `.tmp` files older than this are removed; 0 keeps them all (dirq's maxtemp). */
  maxTempMs: number;
  /** `.lck` links older than this are removed (unlocking); 0 keeps them all (dirq's maxlock). */
  maxLockMs: number;
}

export interface PurgeResult {
  temps: number;
  locks: number;
  dirs: number;
}

/** A failed queue operation; the message names the path, the cause and what to do. */
export class SpoolError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SpoolError';
  }
}

// dirq's regexes (QueueBase.py), plus ours for the volatile files we may delete.
const DIR_RE = /^[0-9a-f]{8}$/;
const ELEMENT_RE = /^[0-9a-f]{14}$/;
const ID_RE = /^([0-9a-f]{8})\/([0-9a-f]{14})$/;
const TMP_RE = /^[0-9a-f]{14}\.tmp$/;
const LCK_RE = /^[0-9a-f]{14}\.lck$/;
const TMP = '.tmp';
const LCK = '.lck';
// As dirq: 0666 less the process umask.
const FILE_MODE = 0o666;
// Name clashes need another process with the same rndhex in the same microsecond: a few tries do.
const MAX_ATTEMPTS = 16;

/** The real file system, as the queue uses it (tests wrap it to inject faults). */
export const nodeSpoolFs: SpoolFs = {
  open: (p, flags, mode) => fsp.open(p, flags, mode),
  link: (a, b) => fsp.link(a, b),
  unlink: (p) => fsp.unlink(p),
  readdir: (p) => fsp.readdir(p),
  mkdir: (p, o) => fsp.mkdir(p, o),
  rmdir: (p) => fsp.rmdir(p),
  stat: (p) => fsp.stat(p),
  utimes: (p, a, m) => fsp.utimes(p, a, m),
  readFile: (p) => fsp.readFile(p),
};

export class DirQueue {
  readonly path: string;
  private readonly granularitySec: number;
  private readonly fs: SpoolFs;
  private readonly rndhex = randomInt(16).toString(16);
  private readonly syncer: DirSyncer;
  /** Intermediate directories made (or found) and durable in the root, by name. */
  private readonly dirReady = new Map<string, Promise<void>>();
  private lastMicros = 0;

  constructor(path: string, opts: DirQueueOptions = {}) {
    const granularitySec = opts.granularitySec ?? 60;
    if (!Number.isInteger(granularitySec) || granularitySec < 1)
      throw new RangeError(`granularitySec must be a whole number of seconds >= 1, got ${granularitySec}`);
    this.path = path;
    this.granularitySec = granularitySec;
    this.fs = opts.fs ?? nodeSpoolFs;
    this.syncer = new DirSyncer(this.fs);
  }

  /** Creates the queue directory (and missing parents), durably. */
  async init(): Promise<void> {
    let first: string | undefined;
    try {
      first = await this.fs.mkdir(this.path, { recursive: true });
    } catch (e) {
      throw spoolError('create the queue directory', this.path, dirname(this.path), e);
    }
    if (first === undefined) return;
    // Each new directory's entry lives in its parent: sync from the queue's parent up to the first one made.
    for (let d = this.path; d !== dirname(first);) {
      d = dirname(d);
      await this.syncOrThrow(d, d);
    }
  }

  /** Adds one element, durably (data and directory entry fsynced); returns its id `8hex/14hex`. */
  async add(data: string | Buffer): Promise<string> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const dir = this.dirName(Date.now());
    const dirPath = join(this.path, dir);
    const { name, tmp, fh } = await this.createTmp(dir);
    await this.writeTmp(fh, tmp, dirPath, bytes);
    const final = await this.linkFinal(dirPath, name, tmp);
    try {
      await this.fs.unlink(tmp);
      await this.syncer.sync(dirPath);
    } catch (e) {
      // The caller will count the element as failed: keep the disk saying the same.
      await this.unlinkQuiet(join(dirPath, final));
      await this.unlinkQuiet(tmp);
      throw spoolError('commit', join(dirPath, final), dirPath, e);
    }
    return `${dir}/${final}`;
  }

  /** Element ids, oldest first (dirq's iteration order); locked elements included. */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    for (const dir of await this.dirs())
      for (const name of await this.elements(dir)) ids.push(`${dir}/${name}`);
    return ids;
  }

  async count(): Promise<number> {
    return (await this.list()).length;
  }

  /** Locks an element for this caller; false when it is locked already or gone. */
  async lock(id: string): Promise<boolean> {
    const element = this.elementPath(id);
    const lock = element + LCK;
    try {
      await this.fs.link(element, lock);
    } catch (e) {
      const code = errCode(e);
      if (code === 'EEXIST' || code === 'ENOENT') return false;
      throw spoolError('lock', lock, dirname(lock), e);
    }
    try {
      // The lock's age (for purge) is its mtime: the link shares the element's inode.
      const now = new Date();
      await this.fs.utimes(element, now, now);
    } catch (e) {
      await this.unlinkQuiet(lock);
      if (errCode(e) === 'ENOENT') return false;
      throw spoolError('lock', lock, dirname(lock), e);
    }
    return true;
  }

  /** Releases a lock; false when the element was not locked. */
  async unlock(id: string): Promise<boolean> {
    const lock = this.elementPath(id) + LCK;
    try {
      await this.fs.unlink(lock);
      return true;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw spoolError('unlock', lock, dirname(lock), e);
    }
  }

  /** The bytes of an element this caller has locked. */
  async get(id: string): Promise<Buffer> {
    const lock = this.elementPath(id) + LCK;
    try {
      return await this.fs.readFile(lock);
    } catch (e) {
      if (errCode(e) === 'ENOENT')
        throw new SpoolError(
          `accounting spool: element ${id} is not locked or is gone (${lock}): lock it before reading`,
          lock,
          'ENOENT',
          { cause: e },
        );
      throw spoolError('read', lock, dirname(lock), e);
    }
  }

  /** Removes an element and its lock, durably. Idempotent: parts already gone are skipped. */
  async remove(id: string): Promise<void> {
    const element = this.elementPath(id);
    const dirPath = dirname(element);
    try {
      await unlinkIfPresent(this.fs, element);
      await unlinkIfPresent(this.fs, element + LCK);
      await this.syncer.sync(dirPath);
    } catch (e) {
      throw spoolError('remove', element, dirPath, e);
    }
  }

  /** When the element was added, epoch ms, from its name. */
  addedAtMs(id: string): number {
    const m = parseId(id);
    const secs = parseInt(m.name.slice(0, 8), 16);
    const micros = parseInt(m.name.slice(8, 13), 16);
    return secs * 1000 + Math.floor(micros / 1000);
  }

  /** Age of the oldest element at `nowMs`, or undefined when the queue is empty. */
  async oldestAgeMs(nowMs: number): Promise<number | undefined> {
    for (const dir of await this.dirs()) {
      const names = await this.elements(dir);
      if (names.length > 0) return Math.max(0, nowMs - this.addedAtMs(`${dir}/${names[0]}`));
    }
    return undefined;
  }

  /**
   * Removes `.tmp` and `.lck` files older than the limits and empty intermediate directories
   * older than the current one. Not fsynced: a purge undone by a crash is redone by the next.
   */
  async purge(opts: PurgeOptions): Promise<PurgeResult> {
    const now = Date.now();
    const result: PurgeResult = { temps: 0, locks: 0, dirs: 0 };
    const dirs = await this.dirs();
    for (const dir of dirs) {
      for (const name of await this.entries(dir)) {
        const kind = TMP_RE.test(name) ? 'temps' : LCK_RE.test(name) ? 'locks' : undefined;
        if (!kind) continue;
        const maxMs = kind === 'temps' ? opts.maxTempMs : opts.maxLockMs;
        const path = join(this.path, dir, name);
        if (maxMs > 0 && (await this.isOlderThan(path, now - maxMs)) && (await this.unlinkQuiet(path)))
          result[kind] += 1;
      }
    }
    const current = this.dirName(now);
    for (const dir of dirs) if (dir < current && (await this.rmdirIfEmpty(dir))) result.dirs += 1;
    return result;
  }

  /** Removes every lock: at start-up, any lock found is a crashed run of the owner's. */
  async releaseLocks(): Promise<number> {
    let released = 0;
    for (const dir of await this.dirs())
      for (const name of await this.entries(dir))
        if (LCK_RE.test(name) && (await this.unlinkQuiet(join(this.path, dir, name)))) released += 1;
    return released;
  }

  /**
   * Moves an element into another queue (e.g. `rejected/`): durable there before it is removed
   * here, so a crash in between leaves a copy in both, never in neither. Returns the new id.
   */
  async moveTo(id: string, other: DirQueue): Promise<string> {
    const element = this.elementPath(id);
    let data: Buffer;
    try {
      data = await this.fs.readFile(element);
    } catch (e) {
      throw spoolError('read', element, dirname(element), e);
    }
    const newId = await other.add(data);
    await this.remove(id);
    return newId;
  }

  private dirName(ms: number): string {
    let secs = Math.floor(ms / 1000);
    secs -= secs % this.granularitySec;
    return hex(secs, 8);
  }

  /** A new element name, strictly increasing within this instance so names sort in add order. */
  private nextName(): string {
    const micros = Math.max(Date.now() * 1000, this.lastMicros + 1);
    this.lastMicros = micros;
    return hex(Math.floor(micros / 1e6), 8) + hex(micros % 1e6, 5) + this.rndhex;
  }

  private async createTmp(dir: string): Promise<{ name: string; tmp: string; fh: SpoolFileHandle }> {
    const dirPath = join(this.path, dir);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      await this.ensureDir(dir);
      const name = this.nextName();
      const tmp = join(dirPath, name + TMP);
      try {
        const fh = await this.fs.open(
          tmp,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
          FILE_MODE,
        );
        return { name, tmp, fh };
      } catch (e) {
        const code = errCode(e);
        // ENOENT: a purge removed the directory meanwhile; make it again.
        if (code === 'ENOENT') this.dirReady.delete(dir);
        else if (code !== 'EEXIST') throw spoolError('create', tmp, dirPath, e);
      }
    }
    throw new SpoolError(
      `accounting spool: cannot create a new element in ${dirPath} after ${MAX_ATTEMPTS} attempts: ` +
        'check that no other process writes into this queue',
      dirPath,
      undefined,
    );
  }

  private async writeTmp(fh: SpoolFileHandle, tmp: string, dirPath: string, bytes: Buffer): Promise<void> {
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await this.unlinkQuiet(tmp);
      throw spoolError('write', tmp, dirPath, e);
    }
    try {
      await fh.close();
    } catch (e) {
      await this.unlinkQuiet(tmp);
      throw spoolError('close', tmp, dirPath, e);
    }
  }

  /** Links the written tmp to its final name (the tmp's own, or a fresh one on a clash). */
  private async linkFinal(dirPath: string, firstName: string, tmp: string): Promise<string> {
    let name = firstName;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        await this.fs.link(tmp, join(dirPath, name));
        return name;
      } catch (e) {
        if (errCode(e) !== 'EEXIST') {
          await this.unlinkQuiet(tmp);
          throw spoolError('link', join(dirPath, name), dirPath, e);
        }
      }
      name = this.nextName();
    }
    await this.unlinkQuiet(tmp);
    throw new SpoolError(
      `accounting spool: every name tried in ${dirPath} exists (${MAX_ATTEMPTS} attempts): ` +
        'check that no other process writes into this queue',
      dirPath,
      'EEXIST',
    );
  }

  /** Makes the intermediate directory once per instance and syncs its entry in the root. */
  private ensureDir(dir: string): Promise<void> {
    let ready = this.dirReady.get(dir);
    if (!ready) {
      // Only the current directory is ever needed again.
      this.dirReady.clear();
      ready = this.makeDir(dir);
      this.dirReady.set(dir, ready);
      const made = ready;
      made.catch(() => {
        if (this.dirReady.get(dir) === made) this.dirReady.delete(dir);
      });
    }
    return ready;
  }

  private async makeDir(dir: string): Promise<void> {
    const dirPath = join(this.path, dir);
    try {
      await this.fs.mkdir(dirPath, { recursive: false });
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw spoolError('create the directory', dirPath, this.path, e);
    }
    // Synced even when it existed: a crashed run may have made it without syncing the root.
    await this.syncOrThrow(this.path, this.path);
  }

  private async syncOrThrow(dirPath: string, forDir: string): Promise<void> {
    try {
      await this.syncer.sync(dirPath);
    } catch (e) {
      throw spoolError('fsync', dirPath, forDir, e);
    }
  }

  private elementPath(id: string): string {
    const m = parseId(id);
    return join(this.path, m.dir, m.name);
  }

  /** Intermediate directories, sorted. */
  private async dirs(): Promise<string[]> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.path);
    } catch (e) {
      throw spoolError('list', this.path, this.path, e);
    }
    return names.filter((n) => DIR_RE.test(n)).sort();
  }

  /** Everything in one intermediate directory; none when a purge removed it meanwhile. */
  private async entries(dir: string): Promise<string[]> {
    const dirPath = join(this.path, dir);
    try {
      return await this.fs.readdir(dirPath);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return [];
      throw spoolError('list', dirPath, dirPath, e);
    }
  }

  private async elements(dir: string): Promise<string[]> {
    return (await this.entries(dir)).filter((n) => ELEMENT_RE.test(n)).sort();
  }

  private async isOlderThan(path: string, cutoffMs: number): Promise<boolean> {
    try {
      return (await this.fs.stat(path)).mtimeMs < cutoffMs;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw spoolError('stat', path, dirname(path), e);
    }
  }

  private async rmdirIfEmpty(dir: string): Promise<boolean> {
    const dirPath = join(this.path, dir);
    try {
      await this.fs.rmdir(dirPath);
      this.dirReady.delete(dir);
      return true;
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return false;
      throw spoolError('remove the directory', dirPath, this.path, e);
    }
  }

  /** Best effort, for cleanup paths and races: true when this call removed the file. */
  private async unlinkQuiet(path: string): Promise<boolean> {
    try {
      await this.fs.unlink(path);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Coalesces fsyncs of one directory: callers arriving while one runs share the next, which
 * starts after it, so every caller gets an fsync that began after its own change.
 */
class DirSyncer {
  private readonly state = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  constructor(private readonly fs: SpoolFs) {}

  sync(dirPath: string): Promise<void> {
    const s = this.state.get(dirPath);
    if (!s) return this.start(dirPath);
    s.next ??= s.running.then(noop, noop).then(() => this.start(dirPath));
    return s.next;
  }

  private start(dirPath: string): Promise<void> {
    const entry: { running: Promise<void>; next?: Promise<void> } = { running: fsyncDir(this.fs, dirPath) };
    this.state.set(dirPath, entry);
    void entry.running.then(noop, noop).then(() => {
      if (this.state.get(dirPath) === entry && !entry.next) this.state.delete(dirPath);
    });
    return entry.running;
  }
}

async function fsyncDir(fs: SpoolFs, dirPath: string): Promise<void> {
  const fh = await fs.open(dirPath, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function unlinkIfPresent(fs: SpoolFs, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
}

function parseId(id: string): { dir: string; name: string } {
  const m = ID_RE.exec(id);
  if (!m)
    throw new SpoolError(
      `accounting spool: not an element id: ${JSON.stringify(id.slice(0, 64))}; ` +
        'expected 8hex/14hex as `accounting list` shows',
      id.slice(0, 64),
      'EINVAL',
    );
  return { dir: m[1]!, name: m[2]! };
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

function noop(): void {}

function errCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  return typeof e.code === 'string' ? e.code : undefined;
}

/** What to do about a failed file-system call, by errno. */
function hint(code: string | undefined, dir: string): string {
  switch (code) {
    case 'ENOSPC':
      return `the disk is full: free space in ${dir}`;
    case 'EDQUOT':
      return `the disk quota is exceeded: free space in ${dir} or raise the quota`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied: let the proxy's user write to ${dir}`;
    case 'EROFS':
      return `the file system is read-only: remount it read-write or move the spool away from ${dir}`;
    case 'EIO':
      return `I/O error: check the disk holding ${dir} (kernel log)`;
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files: raise the limit (ulimit -n)';
    case 'ENOENT':
      return `the directory is missing: check the spool path, or create ${dir}`;
    default:
      return `check ${dir}`;
  }
}

function spoolError(op: string, path: string, dir: string, e: unknown): SpoolError {
  const code = errCode(e);
  const cause = code ?? (e instanceof Error ? e.message : String(e));
  return new SpoolError(`accounting spool: cannot ${op} ${path}: ${hint(code, dir)} (${cause})`, path, code, {
    cause: e,
  });
}
