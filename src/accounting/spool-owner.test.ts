import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { takeSpool } from './spool-owner';

describe('accounting spool ownership', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssp-spool-owner-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a spool a live process holds, naming it and what to do', async () => {
    // pid 1 always runs: another proxy that holds the spool.
    writeFileSync(join(dir, 'proxy.lock'), `${hostname()} 1\n`);
    let error: unknown;
    await takeSpool(dir).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/in use by another proxy .*give each proxy its own accounting.spoolDir/);
  });

  it("takes over a dead process's lock and keeps the spool's owner id across runs", async () => {
    const first = await takeSpool(dir);
    await first.release();
    expect(existsSync(join(dir, 'proxy.lock'))).to.equal(false);
    writeFileSync(join(dir, 'proxy.lock'), `${hostname()} 999999999\n`);
    const again = await takeSpool(dir);
    expect(again.owner).to.equal(first.owner);
    await again.release();
  });
});
