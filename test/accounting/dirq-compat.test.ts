/**
 * DirQueue against the real python-dirq (Debian's python3-dirq, the library SSM reads its queues
 * with): each side must list, lock, read and remove what the other wrote, in the same order.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DirQueue } from '../../src/accounting/spool';
import { hasPythonModule, requirePeer } from '../helpers/peers';

// Debian's python: the python3 on PATH may not see python3-dirq.
const PYTHON = '/usr/bin/python3';

/**
 * One python-dirq session on the queue at argv[1]; the JSON request in argv[2] says what to do.
 * Bytes travel as hex both ways so binary elements compare exactly.
 */
const DIRQ_SCRIPT = `
import json, sys
from dirq.QueueSimple import QueueSimple
q = QueueSimple(sys.argv[1])
req = json.loads(sys.argv[2])
out = {"count": q.count()}
if req.get("listing"):
    out["listing"] = list(q)
if req.get("lock"):
    out["locked"] = q.lock(req["lock"])
if "add" in req:
    out["added"] = [q.add(bytes.fromhex(h)) for h in req["add"]]
if req.get("consume"):
    got = []
    for name in q:
        if not q.lock(name):
            continue
        got.append({"id": name, "data": q.get(name).hex()})
        q.remove(name)
    out["consumed"] = got
if "purge" in req:
    q.purge(*req["purge"])
print(json.dumps(out))
`;

interface DirqReply {
  count: number;
  listing?: string[];
  locked?: boolean;
  added?: string[];
  consumed?: { id: string; data: string }[];
}

interface DirqRequest {
  listing?: boolean;
  lock?: string;
  add?: string[];
  consume?: boolean;
  /** [maxtemp, maxlock] in seconds. */
  purge?: [number, number];
}

const run = promisify(execFile);

async function dirq(root: string, req: DirqRequest): Promise<DirqReply> {
  const { stdout } = await run(PYTHON, ['-c', DIRQ_SCRIPT, root, JSON.stringify(req)], { timeout: 60_000 });
  return JSON.parse(stdout) as DirqReply;
}

const hex = (s: string | Buffer): string => Buffer.from(s).toString('hex');

describe('DirQueue interop with python-dirq QueueSimple', function () {
  let base: string;
  let root: string;
  let q: DirQueue;

  before(function () {
    requirePeer(this, 'python3-dirq', hasPythonModule('dirq'), 'apt-get install python3-dirq');
  });

  beforeEach(async () => {
    base = mkdtempSync(join(tmpdir(), 'dirq-compat-'));
    root = join(base, 'outgoing');
    q = new DirQueue(root);
    await q.init();
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('python-dirq lists, locks, reads and removes our elements in our order', async () => {
    const payloads = [
      'APEL-individual-job-message: v0.3\nSite: BANK-A\n%%\n',
      Buffer.from([0, 1, 2, 255, 13, 10]),
      'third\n',
    ];
    const ids: string[] = [];
    for (const p of payloads) ids.push(await q.add(p));
    // A half-written element of ours must be invisible to dirq.
    writeFileSync(join(root, ids[0]!.split('/')[0]!, '00000001000000.tmp'), 'half');

    const reply = await dirq(root, { listing: true, consume: true });

    expect(reply.count).to.equal(3);
    expect(reply.listing).to.deep.equal(ids);
    expect(reply.consumed).to.deep.equal(ids.map((id, i) => ({ id, data: hex(payloads[i]!) })));
    expect(await q.list()).to.deep.equal([]);
  });

  it('reads what python-dirq adds, in the same order python-dirq iterates', async () => {
    const first = await q.add('ours, first');
    const added = (await dirq(root, { add: [hex('python 1'), hex(Buffer.from([0, 200]))] })).added!;
    const last = await q.add('ours, last');

    const listing = (await dirq(root, { listing: true })).listing!;
    expect(await q.list()).to.deep.equal(listing);
    expect(listing).to.have.members([first, ...added, last]);
    expect(listing[0]).to.equal(first);
    expect(listing[3]).to.equal(last);

    for (const [id, want] of [
      [added[0]!, Buffer.from('python 1')],
      [added[1]!, Buffer.from([0, 200])],
    ] as const) {
      expect(await q.lock(id)).to.equal(true);
      expect((await q.get(id)).equals(want)).to.equal(true);
      await q.remove(id);
    }
    expect(await q.count()).to.equal(2);
    expect((await dirq(root, {})).count).to.equal(2);
  });

  it('shares locks with python-dirq both ways', async () => {
    const a = await q.add('a');
    const b = await q.add('b');
    expect(await q.lock(a)).to.equal(true);
    // dirq's lock only lasts while its process runs; its .lck link stays, as after a crash.
    expect((await dirq(root, { lock: a })).locked).to.equal(false);
    expect((await dirq(root, { lock: b })).locked).to.equal(true);
    expect(await q.lock(b)).to.equal(false);
    // What we remove is gone for dirq; what dirq locked, our start-up releases.
    await q.remove(a);
    expect(await q.releaseLocks()).to.equal(1);
    expect((await dirq(root, { consume: true })).consumed).to.deep.equal([{ id: b, data: hex('b') }]);
  });

  it('python-dirq purge and ours agree on stale files', async () => {
    const id = await q.add('survivor');
    const [dir, name] = id.split('/') as [string, string];
    const stale = new Date(Date.now() - 20 * 60_000);
    expect(await q.lock(id)).to.equal(true);
    utimesSync(join(root, dir, `${name}.lck`), stale, stale);
    writeFileSync(join(root, dir, '00000001000000.tmp'), 'half');
    utimesSync(join(root, dir, '00000001000000.tmp'), stale, stale);

    await dirq(root, { purge: [300, 600] });

    expect(readdirSync(join(root, dir))).to.deep.equal([name]);
    expect(await q.purge({ maxTempMs: 300_000, maxLockMs: 600_000 })).to.deep.equal({
      temps: 0,
      locks: 0,
      dirs: 0,
    });
    expect(await q.lock(id)).to.equal(true);
    expect((await q.get(id)).toString()).to.equal('survivor');
  });
});
