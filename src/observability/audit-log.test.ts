import { expect } from 'chai';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { log } from '../log';
import { AuditChainError, AuditLog, GENESIS_HASH, sealLine, type AuditRecord } from './audit-log';
import { auditCommand, verifyAuditFile, type AuditVerdict } from '../commands/audit';

const rec = (i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  time: new Date(Date.UTC(2025, 0, 1, 0, 0, i % 60)).toISOString(),
  correlationId: `c${i}`,
  consumerId: 'risk-batch',
  subject: 'CN=risk-batch,O=Example',
  fingerprint256: 'AB:CD',
  clientIp: '10.0.0.1',
  operation: 'submitTasks',
  sessionId: 's1',
  taskIds: ['t1', 't2'],
  taskCount: 2,
  outcome: 'ok',
  proxyMs: 1.25,
  gridMs: 3.5,
  bytesIn: 100,
  bytesOut: 200,
  ...extra,
});

type Line = Record<string, unknown>;

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  expect(text.endsWith('\n'), 'file ends with a line end').to.equal(true);
  return text.slice(0, -1).split('\n');
}

const parsed = async (file: string): Promise<Line[]> => (await lines(file)).map((l) => JSON.parse(l) as Line);

async function writeLines(file: string, ls: string[]): Promise<void> {
  await writeFile(file, ls.map((l) => `${l}\n`).join(''));
}

function broken(v: AuditVerdict): Extract<AuditVerdict, { ok: false }> {
  if (v.ok) throw new Error(`expected a broken chain, got ok with ${v.records} records`);
  return v;
}

describe('audit log', () => {
  let dir: string;
  let n = 0;
  const next = (): string => join(dir, `audit-${++n}.jsonl`);
  const savedSilent = log.silent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ssp-audit-'));
    // The trail reports open/close/resume on the operational log; keep test output clean.
    log.silent = true;
  });
  after(async () => {
    log.silent = savedSilent;
    await rm(dir, { recursive: true, force: true });
  });

  async function fileWith(count: number): Promise<string> {
    const file = next();
    const audit = await AuditLog.open(file);
    for (let i = 1; i <= count; i++) audit.write(rec(i));
    await audit.close();
    return file;
  }

  describe('writing', () => {
    it('writes one chained line per record and the file verifies', async () => {
      const file = await fileWith(3);
      const recs = await parsed(file);
      expect(recs.map((r) => r['seq'])).to.deep.equal([1, 2, 3]);
      expect(recs[0]!['prev']).to.equal(GENESIS_HASH);
      expect(recs[1]!['prev']).to.equal(recs[0]!['hash']);
      expect(recs[2]!['prev']).to.equal(recs[1]!['hash']);
      const v = await verifyAuditFile(file);
      expect(v).to.deep.equal({ ok: true, records: 3, lastHash: recs[2]!['hash'] });
    });

    it('keeps the record fields, drops undefined ones and adds no level or message', async () => {
      const file = next();
      const audit = await AuditLog.open(file);
      audit.write(
        rec(7, {
          outcome: 'fault',
          faultCode: 'ssp:RateLimited',
          limit: 'rejected 11/10',
          connectionId: undefined,
        }),
      );
      await audit.close();
      const [line] = await lines(file);
      const r = JSON.parse(line!) as Line;
      expect(Object.keys(r)).to.deep.equal([
        'seq',
        'prev',
        'time',
        'correlationId',
        'consumerId',
        'subject',
        'fingerprint256',
        'clientIp',
        'operation',
        'sessionId',
        'taskIds',
        'taskCount',
        'outcome',
        'faultCode',
        'proxyMs',
        'gridMs',
        'bytesIn',
        'bytesOut',
        'limit',
        'hash',
      ]);
      expect(r).to.include({
        correlationId: 'c7',
        outcome: 'fault',
        faultCode: 'ssp:RateLimited',
        proxyMs: 1.25,
      });
      expect(r['taskIds']).to.deep.equal(['t1', 't2']);
      expect(line).not.to.match(/"level"|"message"|connectionId|serviceVersion/);
      expect(line).to.match(/,"hash":"[0-9a-f]{64}"\}$/);
    });

    it('never copies fields outside AuditRecord, such as a password', async () => {
      const file = next();
      const audit = await AuditLog.open(file);
      // Spelled in parts so that no tracked file looks as if it held a key.
      const pemHeader = ['-----BEGIN', 'PRIVATE', 'KEY-----'].join(' ');
      const leaky = { ...rec(1), password: 'hunter2', privateKey: pemHeader };
      audit.write(leaky as AuditRecord);
      await audit.close();
      const text = await readFile(file, 'utf8');
      expect(text).not.to.match(/password|hunter2|privateKey|BEGIN PRIVATE/);
      expect((await verifyAuditFile(file)).ok).to.equal(true);
    });

    it('creates the file with mode 0600 in a new directory, and tightens an existing file', async () => {
      const file = join(dir, 'nested', 'deeper', 'audit.jsonl');
      const audit = await AuditLog.open(file);
      audit.write(rec(1));
      await audit.close();
      expect((await stat(file)).mode & 0o777).to.equal(0o600);

      await chmod(file, 0o644);
      await (await AuditLog.open(file)).close();
      expect((await stat(file)).mode & 0o777).to.equal(0o600);
    });

    it('flush() makes everything written so far visible in the file', async () => {
      const file = next();
      const audit = await AuditLog.open(file);
      audit.write(rec(1));
      audit.write(rec(2));
      await audit.flush();
      expect(await lines(file)).to.have.length(2);
      audit.write(rec(3));
      await audit.flush();
      expect(await lines(file)).to.have.length(3);
      await audit.close();
    });

    it('drops records written after close() without throwing', async () => {
      const file = next();
      const audit = await AuditLog.open(file);
      audit.write(rec(1));
      await audit.close();
      expect(() => audit.write(rec(2))).not.to.throw();
      await audit.close();
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 1 });
    });

    it('keeps 10,000 back-to-back writes in order', async () => {
      const file = next();
      const audit = await AuditLog.open(file);
      for (let i = 0; i < 10_000; i++) audit.write(rec(i));
      await audit.flush();
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 10_000 });
      const recs = await parsed(file);
      recs.forEach((r, i) => {
        expect(r['seq']).to.equal(i + 1);
        expect(r['correlationId']).to.equal(`c${i}`);
      });
      await audit.close();
    });
  });

  describe('restarts', () => {
    it('allows one writer per file: a second open is refused while the first is live', async () => {
      const file = next();
      const first = await AuditLog.open(file);
      let refused: unknown;
      await AuditLog.open(file).then(
        (second) => second.close(),
        (e: unknown) => (refused = e),
      );
      expect(String(refused)).to.match(/in use by process \d+; give each proxy process its own audit.file/);
      await first.close();
      // A lock left by a process that is gone (kill -9) is taken over.
      await writeFile(`${file}.lock`, '999999999');
      const again = await AuditLog.open(file);
      again.write(rec(1));
      await again.close();
      expect((await verifyAuditFile(file)).ok).to.equal(true);
    });

    it('continues the chain across close and open', async () => {
      const file = await fileWith(2);
      const audit = await AuditLog.open(file);
      audit.write(rec(3));
      audit.write(rec(4));
      await audit.close();
      const recs = await parsed(file);
      expect(recs.map((r) => r['seq'])).to.deep.equal([1, 2, 3, 4]);
      expect(recs[2]!['prev']).to.equal(recs[1]!['hash']);
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 4 });
    });

    it('finds the last record when lines are longer than the tail it reads first', async () => {
      const file = next();
      const long = (i: number): AuditRecord =>
        rec(i, { taskIds: Array.from({ length: 8000 }, (_, k) => `task-${i}-${k}`) });
      let audit = await AuditLog.open(file);
      audit.write(long(1));
      audit.write(long(2));
      await audit.close();
      expect((await readFile(file)).length).to.be.greaterThan(2 * 64 * 1024);
      audit = await AuditLog.open(file);
      audit.write(rec(3));
      await audit.close();
      expect((await parsed(file))[2]).to.include({ seq: 3 });
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 3 });
    });

    it('continues an empty existing file from the start', async () => {
      const file = next();
      await writeFile(file, '');
      const audit = await AuditLog.open(file);
      audit.write(rec(1));
      await audit.close();
      expect((await parsed(file))[0]).to.include({ seq: 1, prev: GENESIS_HASH });
    });

    it('after a crash mid-write, discards the partial line and says so in the next record', async () => {
      const file = await fileWith(5);
      const text = await readFile(file, 'utf8');
      const cut = text.slice(0, -40);
      await writeFile(file, cut);
      const partialBytes =
        Buffer.byteLength(cut) - Buffer.byteLength(cut.slice(0, cut.lastIndexOf('\n') + 1));

      const audit = await AuditLog.open(file);
      audit.write(rec(6));
      await audit.close();
      const recs = await parsed(file);
      expect(recs).to.have.length(5);
      expect(recs[4]).to.include({ seq: 5, resumedAfterTruncation: true, discardedBytes: partialBytes });
      expect(recs[4]!['prev']).to.equal(recs[3]!['hash']);
      expect(recs[4]!['correlationId']).to.equal('c6');
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 5 });
    });

    it('after a crash during the first record, restarts the chain with the fact recorded', async () => {
      const file = next();
      await writeFile(file, '{"seq":1,"prev":"00');
      const audit = await AuditLog.open(file);
      audit.write(rec(1));
      await audit.close();
      const recs = await parsed(file);
      expect(recs[0]).to.include({
        seq: 1,
        prev: GENESIS_HASH,
        resumedAfterTruncation: true,
        discardedBytes: 19,
      });
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 1 });
    });

    it('keeps a complete last record that only lost its line end', async () => {
      const file = await fileWith(3);
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.slice(0, -1));
      const audit = await AuditLog.open(file);
      audit.write(rec(4));
      await audit.close();
      const recs = await parsed(file);
      expect(recs.map((r) => r['seq'])).to.deep.equal([1, 2, 3, 4]);
      expect(recs[3]).not.to.have.property('resumedAfterTruncation');
      expect(await verifyAuditFile(file)).to.include({ ok: true, records: 4 });
    });

    it('refuses to continue from a last record that was altered', async () => {
      const file = await fileWith(3);
      const ls = await lines(file);
      ls[2] = ls[2]!.replace('"bytesOut":200', '"bytesOut":201');
      await writeLines(file, ls);
      let err: unknown;
      try {
        await AuditLog.open(file);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(AuditChainError);
      expect((err as Error).message).to.match(/hash mismatch/);
    });
  });

  describe('verification', () => {
    it('accepts an empty file', async () => {
      const file = next();
      await writeFile(file, '');
      expect(await verifyAuditFile(file)).to.deep.equal({ ok: true, records: 0, lastHash: GENESIS_HASH });
    });

    it('detects an edited field in record k', async () => {
      const file = await fileWith(5);
      const ls = await lines(file);
      ls[2] = ls[2]!.replace('"outcome":"ok"', '"outcome":"fault"');
      await writeLines(file, ls);
      const v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 3, seq: 3, records: 2 });
      expect(v.reason).to.match(/hash mismatch/);
    });

    it('detects a deleted record', async () => {
      const file = await fileWith(5);
      const ls = await lines(file);
      ls.splice(2, 1);
      await writeLines(file, ls);
      const v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 3, seq: 4 });
      expect(v.reason).to.match(/prev does not match.*deleted.*expected 3/);
    });

    it('detects the deletion of the first record', async () => {
      const file = await fileWith(3);
      await writeLines(file, (await lines(file)).slice(1));
      expect(broken(await verifyAuditFile(file))).to.include({ line: 1, seq: 2 });
    });

    it('detects two swapped records', async () => {
      const file = await fileWith(5);
      const ls = await lines(file);
      [ls[1], ls[2]] = [ls[2]!, ls[1]!];
      await writeLines(file, ls);
      const v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 2, seq: 3 });
      expect(v.reason).to.match(/reordered/);
    });

    it('detects an inserted record even when it carries a correct hash of its own', async () => {
      const file = await fileWith(5);
      const ls = await lines(file);
      const prev = (JSON.parse(ls[1]!) as Line)['hash'] as string;
      // A forger who knows the format: right seq, chained to record 2, self-consistent hash.
      const forged = sealLine(
        JSON.stringify({ seq: 3, prev, ...rec(99, { consumerId: 'someone-else' }) }),
      ).line;
      ls.splice(2, 0, forged);
      await writeLines(file, ls);
      const v = broken(await verifyAuditFile(file));
      // The forged line itself is consistent; the original record 3 after it no longer chains.
      expect(v).to.include({ line: 4, seq: 3, records: 3 });
      expect(v.reason).to.match(/prev does not match/);
    });

    it('detects an inserted record that does not chain', async () => {
      const file = await fileWith(5);
      const ls = await lines(file);
      ls.splice(2, 0, sealLine(JSON.stringify({ seq: 3, prev: GENESIS_HASH, ...rec(99) })).line);
      await writeLines(file, ls);
      expect(broken(await verifyAuditFile(file))).to.include({ line: 3, seq: 3 });
    });

    it('detects a truncated last line', async () => {
      const file = await fileWith(5);
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.slice(0, -20));
      const v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 5, records: 4 });
      expect(v.reason).to.match(/truncated last line/);
    });

    it('detects a line that is not JSON, and one without a hash', async () => {
      const file = await fileWith(3);
      const ls = await lines(file);
      await writeLines(file, [ls[0]!, 'not json', ls[2]!]);
      let v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 2, reason: 'not JSON' });
      expect(v).not.to.have.property('seq');

      const r2 = JSON.parse(ls[1]!) as Line;
      delete r2['hash'];
      await writeLines(file, [ls[0]!, JSON.stringify(r2), ls[2]!]);
      v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 2, seq: 2 });
      expect(v.reason).to.match(/missing or ill-formed hash/);
    });

    it('detects a non-consecutive seq in an otherwise consistent record', async () => {
      const file = await fileWith(2);
      const ls = await lines(file);
      const prev = (JSON.parse(ls[1]!) as Line)['hash'] as string;
      ls.push(sealLine(JSON.stringify({ seq: 9, prev, ...rec(3) })).line);
      await writeLines(file, ls);
      const v = broken(await verifyAuditFile(file));
      expect(v).to.include({ line: 3, seq: 9 });
      expect(v.reason).to.match(/not consecutive \(expected 3\)/);
    });
  });

  describe('audit verify command', () => {
    let out: string[];
    let err: string[];
    const saved = { log: console.log, error: console.error };
    beforeEach(() => {
      out = [];
      err = [];
      console.log = (...a: unknown[]) => void out.push(a.join(' '));
      console.error = (...a: unknown[]) => void err.push(a.join(' '));
    });
    afterEach(() => {
      console.log = saved.log;
      console.error = saved.error;
    });

    it('prints ok and exits 0 for an intact file', async () => {
      const file = await fileWith(3);
      expect(await auditCommand(['verify', file])).to.equal(0);
      expect(out).to.have.length(1);
      expect(out[0]).to.match(/^ok: 3 records, chain intact \(last hash [0-9a-f]{64}\)$/);
    });

    it('names the first broken record and exits 1', async () => {
      const file = await fileWith(4);
      const ls = await lines(file);
      ls[1] = ls[1]!.replace('"taskCount":2', '"taskCount":3');
      await writeLines(file, ls);
      expect(await auditCommand(['verify', file])).to.equal(1);
      expect(out[0]).to.match(/^BROKEN at line 2 \(record seq 2\): hash mismatch/);
    });

    it('exits 2 on usage errors and unreadable files', async () => {
      expect(await auditCommand([])).to.equal(2);
      expect(await auditCommand(['verify'])).to.equal(2);
      expect(await auditCommand(['check', 'x'])).to.equal(2);
      expect(await auditCommand(['verify', '--bogus', 'x'])).to.equal(2);
      expect(await auditCommand(['verify', join(dir, 'missing.jsonl')])).to.equal(2);
      expect(out).to.deep.equal([]);
      expect(err.join('\n')).to.match(/usage: symphony-soap-proxy audit verify FILE/);
      expect(err.join('\n')).to.match(/cannot read .*missing\.jsonl/);
    });
  });
});
