import { expect } from 'chai';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageJournal } from './journal';

describe('usage journal (the grid path side of the spool)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssp-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends elements to one open segment, seals it, and reads them back in order', async () => {
    const j = new UsageJournal(join(dir, 'staged'));
    await j.init();
    expect(j.openSegment()).to.equal(undefined);
    j.append('one');
    j.append('two\nlines, ünïcode');
    await j.sync();
    expect(await j.sealed()).to.deep.equal([]);
    const open = j.openSegment()!;
    expect(open.name).to.match(/^\d{13}-\d{6}\.usage$/);
    await j.seal();
    j.append('three');
    const [first, more] = await j.sealed();
    expect(more).to.equal(undefined);
    expect(first!.name).to.equal(open.name);
    expect(await j.read(first!)).to.deep.equal({ elements: ['one', 'two\nlines, ünïcode'], torn: false });
    await j.remove(first!);
    await j.seal();
    const [second] = await j.sealed();
    expect((await j.read(second!)).elements).to.deep.equal(['three']);
    expect(second!.name > open.name, 'names sort oldest first').to.equal(true);
  });

  it('recognises a torn last write and keeps what came before it', async () => {
    const j = new UsageJournal(join(dir, 'staged'));
    await j.init();
    j.append('whole');
    await j.seal();
    const [segment] = await j.sealed();
    appendFileSync(join(dir, 'staged', segment!.name), '#100\npartial');
    expect(await j.read(segment!)).to.deep.equal({ elements: ['whole'], torn: true });
  });

  it('a restarted journal finds the sealed segments of the last run and names new ones after them', async () => {
    const before = new UsageJournal(join(dir, 'staged'));
    await before.init();
    before.append('left by a killed run');
    // No seal, no close: as after SIGKILL, the append is in the file.
    const after = new UsageJournal(join(dir, 'staged'));
    await after.init();
    const [old] = await after.sealed();
    expect((await after.read(old!)).elements).to.deep.equal(['left by a killed run']);
    after.append('new');
    expect(after.openSegment()!.name > old!.name).to.equal(true);
    expect(readdirSync(join(dir, 'staged'))).to.have.length(2);
    after.close();
    before.close();
  });
});
