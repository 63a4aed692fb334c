/**
 * A spool directory belongs to one proxy process at a time: two proxies sharing one would send
 * each other's messages twice. The owner file names the spool in the shared store (record
 * claims) and outlives restarts, so that a restarted proxy recognises its own claims.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

export class SpoolInUseError extends Error {
  constructor(dir: string, holder: string) {
    super(
      `the accounting spool ${dir} is in use by another proxy (${holder}); give each proxy its own accounting.spoolDir`,
    );
    this.name = 'SpoolInUseError';
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(join(path, '..'), constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Creates the file only if it does not exist (O_EXCL): two proxies starting at once cannot both win. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the spool for this process; returns its owner id and a release function. */
export async function takeSpool(dir: string): Promise<{ owner: string; release: () => Promise<void> }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lockPath = join(dir, 'proxy.lock');
  const me = `${hostname()} ${process.pid}`;
  if (!(await createExclusive(lockPath, `${me}\n`))) {
    const held = (await readFile(lockPath, 'utf8').catch(() => '')).trim();
    const [host, pidText] = held.split(' ');
    const pid = Number(pidText);
    // A lock from another host cannot be checked: the spool must not be on shared storage.
    if (host !== hostname() || (pid !== process.pid && Number.isInteger(pid) && alive(pid)))
      throw new SpoolInUseError(dir, held);
    // A dead process's lock: take it over, then make sure no other starter did the same.
    await writeDurably(lockPath, `${me}\n`);
    const now = (await readFile(lockPath, 'utf8').catch(() => '')).trim();
    if (now !== me) throw new SpoolInUseError(dir, now);
  }
  const ownerPath = join(dir, 'owner');
  let owner = (await readFile(ownerPath, 'utf8').catch(() => '')).trim();
  if (!owner) {
    owner = `${hostname()}:${randomBytes(9).toString('base64url')}`;
    await writeDurably(ownerPath, `${owner}\n`);
  }
  return {
    owner,
    release: async () => {
      const now = await readFile(lockPath, 'utf8').catch(() => '');
      if (now.trim() === me) await unlink(lockPath).catch(() => undefined);
    },
  };
}
