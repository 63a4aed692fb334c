import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirQueue, SpoolError, nodeSpoolFs, type SpoolFs } from './spool';

const ID_RE = /^[0-9a-f]{8}\/[0-9a-f]{14}$/;
const MINUTE = 60_000;
// One intermediate directory for a whole test (until 2033), so no test depends on the minute it runs in.
const ONE_DIR = 1_000_000_000;

/** Called before each file-system call with its name and path; throw (or hang) to inject a fault. */
type Before = (op: string, path: string) => void | Promise<void>;

/** The real file system with a hook before every call, file-handle calls included. */
function hookedFs(before: Before): SpoolFs {
  const fs = nodeSpoolFs;
  return {
    open: async (p, flags, mode) => {
      await before('open', p);
      const fh = await fs.open(p, flags, mode);
      return {
        writeFile: async (d) => {
          await before('write', p);
          await fh.writeFile(d);
        },
        sync: async () => {
          await before('sync', p);
          await fh.sync();
        },
        close: () => fh.close(),
      };
    },
    link: async (a, b) => (await before('link', a), fs.link(a, b)),
    unlink: async (p) => (await before('unlink', p), fs.unlink(p)),
    readdir: async (p) => (await before('readdir', p), fs.readdir(p)),
    mkdir: async (p, o) => (await before('mkdir', p), fs.mkdir(p, o)),
    rmdir: async (p) => (await before('rmdir', p), fs.rmdir(p)),
    stat: async (p) => (await before('stat', p), fs.stat(p)),
    utimes: async (p, a, m) => (await before('utimes', p), fs.utimes(p, a, m)),
    readFile: async (p) => (await before('readFile', p), fs.readFile(p)),
  };
}

function errno(code: string): Error {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

/** Everything under the queue root, as `dir/name` (or `dir/` for an empty directory). */
function tree(root: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(root).sort()) {
    const names = readdirSync(join(root, d)).sort();
    if (names.length === 0) out.push(`${d}/`);
    for (const n of names) out.push(`${d}/${n}`);
  }
  return out;
}

function setAge(path: string, ageMs: number): void {
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
}

async function readLocked(q: DirQueue, id: string): Promise<string> {
  expect(await q.lock(id)).to.equal(true);
  return (await q.get(id)).toString('utf8');
}

describe('DirQueue (dirq QueueSimple layout, with fsync)', () => {
  let base: string;
  let root: string;

  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'spool-'));
    root = join(base, 'outgoing');
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  async function queue(opts: ConstructorParameters<typeof DirQueue>[1] = {}): Promise<DirQueue> {
    const q = new DirQueue(root, { granularitySec: ONE_DIR, ...opts });
    await q.init();
    return q;
  }

  describe('layout and order', () => {
    it('names elements as dirq does and lists them oldest first', async () => {
      const q = await queue({ granularitySec: 60 });
      const before = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await q.add(`message ${i}\n`));
      const after = Date.now();

      expect(await q.list()).to.deep.equal(ids);
      expect(await q.count()).to.equal(5);
      for (const id of ids) {
        expect(id).to.match(ID_RE);
        const [dir, name] = id.split('/') as [string, string];
        const secs = parseInt(name.slice(0, 8), 16);
        const dirSecs = parseInt(dir, 16);
        // The directory is the minute the add began; the name, when its file was made.
        expect(dirSecs % 60).to.equal(0);
        expect(secs - dirSecs).to.be.within(0, 119);
        expect(q.addedAtMs(id)).to.be.within(before - 1, after);
      }
      // One random hex digit, fixed for the instance.
      expect(new Set(ids.map((id) => id.slice(-1))).size).to.equal(1);
      expect(tree(root)).to.deep.equal(ids);
      for (let i = 0; i < 5; i++) expect(await readLocked(q, ids[i]!)).to.equal(`message ${i}\n`);
    });

    it('lists across intermediate directories in order and ignores foreign names', async () => {
      const q = await queue({ granularitySec: 1 });
      const id = await q.add('new');
      mkdirSync(join(root, '00000010'));
      writeFileSync(join(root, '00000010', '0000001000000a'), 'old');
      writeFileSync(join(root, '00000010', 'README'), 'not an element');
      writeFileSync(join(root, '00000010', '0000001000000b.tmp'), 'half');
      mkdirSync(join(root, 'notadir'));
      expect(await q.list()).to.deep.equal(['00000010/0000001000000a', id]);
      expect(await q.oldestAgeMs(0x10 * 1000 + 5)).to.equal(5);
    });

    it('stores bytes exactly, strings as UTF-8', async () => {
      const q = await queue();
      const bytes = Buffer.from([0, 255, 13, 10, 128]);
      const a = await q.add(bytes);
      const b = await q.add('APEL-individual-job-message: v0.3\n%%\n');
      expect(await q.lock(a)).to.equal(true);
      expect((await q.get(a)).equals(bytes)).to.equal(true);
      expect(await readLocked(q, b)).to.equal('APEL-individual-job-message: v0.3\n%%\n');
    });

    it('reports the oldest age, or undefined when empty', async () => {
      const q = await queue();
      expect(await q.oldestAgeMs(Date.now())).to.equal(undefined);
      const id = await q.add('x');
      await q.add('y');
      const now = q.addedAtMs(id) + 12_345;
      expect(await q.oldestAgeMs(now)).to.equal(12_345);
    });

    it('refuses ids that are not 8hex/14hex, so no path outside the queue is touched', async () => {
      const q = await queue();
      for (const bad of [
        '../../etc/passwd',
        '6a1f2c40/6a1f2c4b0a3f2',
        '6A1F2C40/6a1f2c4b0a3f21',
        '6a1f2c40/x/y',
      ])
        await q.lock(bad).then(
          () => expect.fail(`lock(${bad}) should have thrown`),
          (e: unknown) => {
            expect(e).to.be.instanceOf(SpoolError);
            expect((e as Error).message).to.contain('expected 8hex/14hex');
          },
        );
      expect(() => q.addedAtMs('nope')).to.throw(SpoolError);
    });

    it('refuses a granularity that is not a whole number of seconds', () => {
      expect(() => new DirQueue(root, { granularitySec: 0 })).to.throw(RangeError, 'granularitySec');
      expect(() => new DirQueue(root, { granularitySec: 1.5 })).to.throw(RangeError, 'granularitySec');
    });
  });

  describe('locking and removal', () => {
    it('lets one lock holder at a time, across instances', async () => {
      const q = await queue();
      const other = new DirQueue(root);
      const id = await q.add('payload');
      expect(await q.lock(id)).to.equal(true);
      expect(await q.lock(id)).to.equal(false);
      expect(await other.lock(id)).to.equal(false);
      expect(readdirSync(join(root, id.split('/')[0]!))).to.include(`${id.split('/')[1]}.lck`);
      expect(await q.unlock(id)).to.equal(true);
      expect(await q.unlock(id)).to.equal(false);
      expect(await other.lock(id)).to.equal(true);
      expect((await other.get(id)).toString()).to.equal('payload');
    });

    it('does not lock or read an element that is gone, and says to lock before reading', async () => {
      const q = await queue();
      const id = await q.add('payload');
      await q.get(id).then(
        () => expect.fail('get without a lock should fail'),
        (e: unknown) => expect((e as Error).message).to.contain('lock it before reading'),
      );
      expect(await q.lock(id)).to.equal(true);
      await q.remove(id);
      expect(await q.lock(id)).to.equal(false);
      expect(await q.list()).to.deep.equal([]);
      expect(tree(root)).to.deep.equal([`${id.split('/')[0]}/`]);
    });

    it('removes idempotently (element first, then its lock)', async () => {
      const q = await queue();
      const id = await q.add('payload');
      expect(await q.lock(id)).to.equal(true);
      await q.remove(id);
      await q.remove(id);
      expect(await q.count()).to.equal(0);
    });

    it('releases every lock left by a crashed run', async () => {
      const q = await queue();
      const ids = [await q.add('a'), await q.add('b'), await q.add('c')];
      for (const id of ids) expect(await q.lock(id)).to.equal(true);
      const restarted = new DirQueue(root);
      expect(await restarted.releaseLocks()).to.equal(3);
      expect(await restarted.releaseLocks()).to.equal(0);
      for (const id of ids) expect(await restarted.lock(id)).to.equal(true);
    });

    it('moves an element into another queue, durable there before it goes here', async () => {
      const q = await queue();
      const rejected = new DirQueue(join(base, 'rejected'), { granularitySec: ONE_DIR });
      await rejected.init();
      const keep = await q.add('good');
      const bad = await q.add('corrupt bytes');
      expect(await q.lock(bad)).to.equal(true);
      const moved = await q.moveTo(bad, rejected);
      expect(moved).to.match(ID_RE);
      expect(await q.list()).to.deep.equal([keep]);
      expect(await rejected.list()).to.deep.equal([moved]);
      expect(await readLocked(rejected, moved)).to.equal('corrupt bytes');
      expect(tree(root).some((n) => n.endsWith('.lck'))).to.equal(false);
    });
  });

  describe('purge', () => {
    it('removes stale .tmp and .lck files and old empty directories, and keeps fresh ones', async () => {
      const q = await queue();
      const [id1, id2] = [await q.add('one'), await q.add('two')];
      const [dir, name1] = id1.split('/') as [string, string];
      const name2 = id2.split('/')[1]!;
      expect(await q.lock(id1)).to.equal(true);
      expect(await q.lock(id2)).to.equal(true);
      // The lock's age is the element's mtime (shared inode), as in dirq.
      setAge(join(root, dir, `${name1}.lck`), 11 * MINUTE);
      writeFileSync(join(root, dir, '00000001000000.tmp'), 'stale');
      setAge(join(root, dir, '00000001000000.tmp'), 6 * MINUTE);
      writeFileSync(join(root, dir, '00000002000000.tmp'), 'being written');
      mkdirSync(join(root, '00000001'));
      mkdirSync(join(root, '00000002'));
      writeFileSync(join(root, '00000002', '00000002000000'), 'old element');

      const result = await q.purge({ maxTempMs: 5 * MINUTE, maxLockMs: 10 * MINUTE });

      expect(result).to.deep.equal({ temps: 1, locks: 1, dirs: 1 });
      expect(tree(root)).to.deep.equal(
        [
          '00000002/00000002000000',
          `${dir}/00000002000000.tmp`,
          `${dir}/${name1}`,
          `${dir}/${name2}`,
          `${dir}/${name2}.lck`,
        ].sort(),
      );
      expect(await q.lock(id1)).to.equal(true);
    });

    it('keeps everything when the limits are 0, and keeps the current directory when empty', async () => {
      const q = await queue();
      const id = await q.add('x');
      expect(await q.lock(id)).to.equal(true);
      setAge(join(root, `${id}.lck`), 60 * MINUTE);
      expect(await q.purge({ maxTempMs: 0, maxLockMs: 0 })).to.deep.equal({ temps: 0, locks: 0, dirs: 0 });
      await q.remove(id);
      expect(await q.purge({ maxTempMs: 1, maxLockMs: 1 })).to.deep.equal({ temps: 0, locks: 0, dirs: 0 });
      expect(tree(root)).to.deep.equal([`${id.split('/')[0]}/`]);
    });

    it('recovers from a crash between link and unlink of the .tmp: element kept, .tmp purged', async () => {
      let reached!: () => void;
      const atCrash = new Promise<void>((resolve) => (reached = resolve));
      // The process "dies" at the unlink of the .tmp: that call never returns.
      const dying = await queue({
        fs: hookedFs((op, p) => {
          if (op === 'unlink' && p.endsWith('.tmp')) {
            reached();
            return new Promise<void>(() => undefined);
          }
        }),
      });
      void dying.add('survives the crash');
      await atCrash;

      const restarted = new DirQueue(root);
      const ids = await restarted.list();
      expect(ids).to.have.length(1);
      const tmp = tree(root).find((n) => n.endsWith('.tmp'));
      expect(tmp).to.equal(`${ids[0]}.tmp`);
      expect(await restarted.purge({ maxTempMs: 5 * MINUTE, maxLockMs: 10 * MINUTE })).to.deep.equal({
        temps: 0,
        locks: 0,
        dirs: 0,
      });
      setAge(join(root, tmp!), 6 * MINUTE);
      expect((await restarted.purge({ maxTempMs: 5 * MINUTE, maxLockMs: 10 * MINUTE })).temps).to.equal(1);
      expect(tree(root)).to.deep.equal(ids);
      expect(await readLocked(restarted, ids[0]!)).to.equal('survives the crash');
    });
  });

  describe('concurrency', () => {
    it('takes 200 adds at once: all distinct, all listed in name order', async () => {
      const q = await queue();
      const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => q.add(`element ${i}`)));
      expect(new Set(ids).size).to.equal(200);
      const listed = await q.list();
      expect(listed).to.deep.equal([...ids].sort());
      expect(tree(root).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
      // Names are handed out in call order within one instance.
      expect(ids).to.deep.equal(listed);
    });

    it('lists safely while elements are locked and removed', async () => {
      const q = await queue();
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push(await q.add(`e${i}`));
      const removing = ids.slice(0, 20).map(async (id) => {
        if (await q.lock(id)) await q.remove(id);
      });
      const listing = Array.from({ length: 10 }, () => q.list());
      const lists = await Promise.all(listing);
      await Promise.all(removing);
      for (const l of lists) expect(l.slice(-20)).to.deep.equal(ids.slice(20));
      expect(await q.list()).to.deep.equal(ids.slice(20));
    });

    it('lets only one of many concurrent lockers win', async () => {
      const q = await queue();
      const id = await q.add('contended');
      const wins = await Promise.all(Array.from({ length: 20 }, () => q.lock(id)));
      expect(wins.filter(Boolean)).to.have.length(1);
    });
  });

  describe('durability and failures', () => {
    it('fsyncs each element, its directory, and the parents of new directories', async () => {
      const synced: string[] = [];
      const q = new DirQueue(join(root, 'deeper'), {
        granularitySec: ONE_DIR,
        fs: hookedFs((op, p) => void (op === 'sync' && synced.push(p))),
      });
      await q.init();
      expect(synced).to.deep.equal([root, base]);

      synced.length = 0;
      const id = await q.add('first');
      const dirPath = join(root, 'deeper', id.split('/')[0]!);
      expect(synced).to.deep.equal([join(root, 'deeper'), `${join(root, 'deeper', id)}.tmp`, dirPath]);

      synced.length = 0;
      const id2 = await q.add('second');
      expect(synced).to.deep.equal([`${join(root, 'deeper', id2)}.tmp`, dirPath]);

      synced.length = 0;
      expect(await q.lock(id2)).to.equal(true);
      await q.remove(id2);
      expect(synced).to.deep.equal([dirPath]);
    });

    const faults: { op: string; code: string; says: (dir: string) => string }[] = [
      { op: 'write', code: 'ENOSPC', says: (dir) => `the disk is full: free space in ${dir}` },
      { op: 'sync', code: 'ENOSPC', says: (dir) => `the disk is full: free space in ${dir}` },
      { op: 'sync', code: 'EIO', says: (dir) => `I/O error: check the disk holding ${dir}` },
      {
        op: 'open',
        code: 'EACCES',
        says: (dir) => `permission denied: let the proxy's user write to ${dir}`,
      },
      { op: 'link', code: 'EIO', says: (dir) => `I/O error: check the disk holding ${dir}` },
    ];
    for (const f of faults)
      it(`leaves no element and no .tmp when ${f.op} fails with ${f.code}, and says what to do`, async () => {
        let armed = false;
        const q = await queue({
          fs: hookedFs((op, p) => {
            if (armed && op === f.op && p.endsWith('.tmp')) throw errno(f.code);
          }),
        });
        const kept = await q.add('before the fault');
        const dirPath = join(root, kept.split('/')[0]!);
        armed = true;
        const err = await q.add('lost').then(
          () => expect.fail('add should have failed'),
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(SpoolError);
        const e = err as SpoolError;
        expect(e.code).to.equal(f.code);
        expect(e.message).to.contain(f.says(dirPath));
        expect(e.message).to.contain(e.path);
        expect(e.path.startsWith(dirPath)).to.equal(true);
        expect(tree(root)).to.deep.equal([kept]);
        armed = false;
        expect(await q.list()).to.deep.equal([kept]);
        expect(await q.add('after the fault')).to.match(ID_RE);
      });

    it('undoes the element when the directory fsync fails after the link', async () => {
      let armed = false;
      const q = await queue({
        fs: hookedFs((op, p) => {
          if (armed && op === 'sync' && !p.endsWith('.tmp')) throw errno('EIO');
        }),
      });
      const kept = await q.add('kept');
      armed = true;
      await q.add('lost').then(
        () => expect.fail('add should have failed'),
        (e: unknown) => expect((e as Error).message).to.contain('I/O error'),
      );
      expect(tree(root)).to.deep.equal([kept]);
    });

    it('fails with the path and a hint when the intermediate directory cannot be made', async () => {
      const q = await queue({
        fs: hookedFs((op, p) => {
          if (op === 'mkdir' && p !== root) throw errno('ENOSPC');
        }),
      });
      await q.add('x').then(
        () => expect.fail('add should have failed'),
        (e: unknown) => {
          expect((e as Error).message).to.contain(`the disk is full: free space in ${root}`);
          expect((e as SpoolError).code).to.equal('ENOSPC');
        },
      );
      expect(readdirSync(root)).to.deep.equal([]);
    });
  });
});
