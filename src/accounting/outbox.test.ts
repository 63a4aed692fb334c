import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parseConfig } from '../config';
import { MemoryStore } from '../store/memory-store';
import { checkAccountingMessage, writeApelJobs } from './apel';
import { writeCarJobs } from './car';
import { AccountingMetrics } from './metrics';
import { AccountingOutbox, type MessageTransport } from './outbox';
import type { TaskUsage } from './records';
import { decodeStaged } from './staged';
import { UsageJournal } from './journal';
import { DirQueue } from './spool';
import { RecordMaker, type SessionFacts } from './usage';

const NOW_S = Math.floor(Date.now() / 1000);

function usage(over: Partial<TaskUsage> = {}): TaskUsage {
  return {
    startTimeMs: (NOW_S - 120) * 1000,
    endTimeMs: (NOW_S - 60) * 1000,
    cpuTimeMs: 42_400,
    machine: 'node7.grid.example',
    processors: 1,
    maxRssKb: 2048,
    maxVmemKb: 0,
    ...over,
  };
}

const SESSION: SessionFacts = {
  sessionId: 's1',
  cluster: 'default',
  owner: 'CN=pricing,O=Bank,C=GB',
  application: 'pricing',
  subject: 'CN=pricing,O=Bank,C=GB',
};

/** Acknowledges every message unless told to fail; remembers what it was sent. */
class FakeTransport implements MessageTransport {
  sent: { body: string; empaId: string }[] = [];
  failNext = 0;
  connected = true;
  start(): void {}
  async stop(): Promise<void> {}
  status(): { connected: boolean } {
    return { connected: this.connected };
  }
  async send(body: string, empaId: string): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw Object.assign(new Error('no RECEIPT within 100 ms'), { reason: 'timeout' });
    }
    this.sent.push({ body, empaId });
  }
}

const signer = { sign: async (text: string) => `SIGNED\n${text}`, close: async () => undefined };

interface Queues {
  journal: UsageJournal;
  outgoing: DirQueue;
  rejected: DirQueue;
}

describe('accounting outbox', () => {
  let dir: string;
  let store: MemoryStore;
  const config = parseConfig({
    security: { mode: 'off' },
    grid: { embedded: true },
    accounting: {
      enabled: true,
      site: 'BANK-GRID-LON',
      defaultVo: 'bank',
      clusters: [{ name: 'default', serviceLevelType: 'HEPscore23', serviceLevel: 12.5 }],
      consumers: [{ consumer: 'CN=pricing,O=Bank,C=GB', vo: 'rates', voGroup: 'pricing' }],
    },
  }).accounting;

  function outbox(
    name: string,
    transport: MessageTransport | null = new FakeTransport(),
    journal: UsageJournal = new UsageJournal(join(dir, name, 'staged')),
  ): { box: AccountingOutbox; metrics: AccountingMetrics; registry: Registry; q: Queues } {
    const q = {
      journal,
      outgoing: new DirQueue(join(dir, name, 'outgoing')),
      rejected: new DirQueue(join(dir, name, 'rejected')),
    };
    const registry = new Registry();
    const metrics = new AccountingMetrics(registry, () => ({
      queuedMessages: 0,
      stagedElements: 0,
      rejectedMessages: 0,
      oldestAgeMs: undefined,
    }));
    const box = new AccountingOutbox(
      {
        site: 'BANK-GRID-LON',
        format: 'apel',
        recordsPerMessage: 1000,
        batchDelayMs: 60_000,
        claimTtlMs: 86_400_000,
        inFlight: 2,
        summaries: { enabled: false, intervalMs: 60_000, previousMonthDays: 3 },
      },
      store.accounting,
      { ...q, owner: name },
      new RecordMaker(config),
      signer,
      transport,
      metrics,
    );
    return { box, metrics, registry, q };
  }

  async function init(q: Queues): Promise<void> {
    await q.journal.init();
    await q.outgoing.init();
    await q.rejected.init();
  }

  /** Segments holding staged usage, the open one included. */
  async function staged(q: Queues): Promise<number> {
    return (await q.journal.sealed()).length + (q.journal.openSegment() ? 1 : 0);
  }

  async function counter(registry: Registry, name: string, label: string): Promise<number> {
    const m = await registry.getSingleMetric(name)!.get();
    return m.values.filter((v) => Object.values(v.labels).includes(label)).reduce((a, v) => a + v.value, 0);
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ssp-outbox-'));
    store = new MemoryStore();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stages, batches and sends a message whose records the receiver would accept', async () => {
    const transport = new FakeTransport();
    const { box, q, registry } = outbox('p1', transport);
    await init(q);
    await box.record(SESSION, [
      { taskId: '1', successful: true, usage: usage() },
      { taskId: '2', successful: false, usage: usage() },
      { taskId: '3', successful: true },
    ]);
    expect(await staged(q)).to.equal(1);
    expect(await box.batchOnce(), 'waits for batchDelayMs or a full message').to.equal(false);
    expect(await box.batchOnce(true)).to.equal(true);
    expect(await staged(q)).to.equal(0);
    const [id] = await q.outgoing.list();
    expect(await box.sendOnce()).to.equal(true);
    expect(transport.sent).to.have.length(1);
    expect(transport.sent[0]!.empaId).to.equal(id);
    const text = transport.sent[0]!.body.replace(/^SIGNED\n/, '');
    const check = checkAccountingMessage(text, Date.now());
    expect(check.problems).to.deep.equal([]);
    expect(check.records.map((r) => r['LocalJobId'])).to.deep.equal(['default:s1:1', 'default:s1:2']);
    expect(check.records[0]).to.include({
      Site: 'BANK-GRID-LON',
      GlobalUserName: '/C=GB/O=Bank/CN=pricing',
      VO: 'rates',
      VOGroup: 'pricing',
      Queue: 'pricing',
      MachineName: 'node7.grid.example',
      WallDuration: '60',
      CpuDuration: '42',
      ServiceLevelType: 'HEPscore23',
      EndTime: String(NOW_S - 60),
    });
    expect(await q.outgoing.count()).to.equal(0);
    expect(await counter(registry, 'ssp_accounting_records_total', 'queued')).to.equal(2);
    expect(await counter(registry, 'ssp_accounting_records_total', 'skipped')).to.equal(1);
    expect(await counter(registry, 'ssp_accounting_messages_total', 'sent')).to.equal(1);
  });

  it('records a task once when its output reached two proxies (the grid handed it out again)', async () => {
    const a = outbox('pa');
    const b = outbox('pb');
    await init(a.q);
    await init(b.q);
    await a.box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    await b.box.record(SESSION, [
      { taskId: '1', successful: true, usage: usage() },
      { taskId: '2', successful: true, usage: usage() },
    ]);
    await b.box.batchOnce(true);
    await a.box.batchOnce(true);
    const ids = async (q: DirQueue): Promise<string[]> => {
      const out: string[] = [];
      for (const id of await q.list()) {
        await q.lock(id);
        out.push(
          ...checkAccountingMessage((await q.get(id)).toString(), Date.now()).records.map(
            (r) => r['LocalJobId']!,
          ),
        );
        await q.unlock(id);
      }
      return out;
    };
    expect(await ids(b.q.outgoing)).to.deep.equal(['default:s1:1', 'default:s1:2']);
    expect(await ids(a.q.outgoing)).to.deep.equal([]);
    expect(await counter(a.registry, 'ssp_accounting_records_total', 'duplicate')).to.equal(1);
  });

  it('after a crash between writing a message and removing its staged records, sends them once', async () => {
    const first = outbox('p1');
    await init(first.q);
    await first.box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    // What batchOnce does, up to the crash: the message is written, the segment stays.
    await first.q.journal.seal();
    const [segment] = await first.q.journal.sealed();
    const fetch = decodeStaged((await first.q.journal.read(segment!)).elements[0]!);
    const maker = new RecordMaker(config);
    await first.q.outgoing.add(writeApelJobs(fetch.tasks.map((t) => maker.job(fetch.session, t)!)));

    const transport = new FakeTransport();
    const again = outbox('p1', transport);
    await again.box.recover();
    await again.box.batchOnce(true);
    expect(await again.q.outgoing.count()).to.equal(1);
    expect(await staged(again.q)).to.equal(0);
  });

  it('keeps a message whose RECEIPT did not come, and sends it again under the same empa-id', async () => {
    const transport = new FakeTransport();
    const { box, q, registry } = outbox('p1', transport);
    await init(q);
    await box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    await box.batchOnce(true);
    const [id] = await q.outgoing.list();
    transport.failNext = 1;
    await box.sendOnce().catch(() => undefined);
    expect(await q.outgoing.list()).to.deep.equal([id]);
    expect(await counter(registry, 'ssp_accounting_messages_total', 'failed')).to.equal(1);
    await box.sendOnce();
    expect(transport.sent.map((s) => s.empaId)).to.deep.equal([id]);
    expect(await q.outgoing.count()).to.equal(0);
  });

  it('sends nothing while the broker is unreachable, and loses nothing', async () => {
    const transport = new FakeTransport();
    transport.connected = false;
    const { box, q } = outbox('p1', transport);
    await init(q);
    await box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    await box.batchOnce(true);
    expect(await box.sendOnce()).to.equal(false);
    expect(box.status()).to.include({ broker: 'unreachable', queuedMessages: 1 });
    transport.connected = true;
    await box.sendOnce();
    expect(transport.sent).to.have.length(1);
  });

  it('sets a corrupt message aside in rejected/ and goes on with the next', async () => {
    const transport = new FakeTransport();
    const { box, q, registry } = outbox('p1', transport);
    await init(q);
    await q.outgoing.add('APEL-individual-job-message: v0.3\nSite: X\nLocalJ');
    await box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    await box.batchOnce(true);
    await box.sendOnce();
    expect(transport.sent).to.have.length(1);
    expect(await q.rejected.count()).to.equal(1);
    expect(await q.outgoing.count()).to.equal(0);
    expect(await counter(registry, 'ssp_accounting_messages_total', 'rejected')).to.equal(1);
  });

  it('a full disk costs the records (counted and logged), never the grid call', async () => {
    class FullDisk extends UsageJournal {
      override append(): void {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
    }
    const { box, q, registry } = outbox('p1', new FakeTransport(), new FullDisk(join(dir, 'p1', 'staged')));
    await init(q);
    await box.record(SESSION, [{ taskId: '1', successful: true, usage: usage() }]);
    expect(await counter(registry, 'ssp_accounting_records_total', 'failed')).to.equal(1);
    expect(await staged(q)).to.equal(0);
  });

  it('builds monthly summaries per consumer × application from the shared totals', async () => {
    const { box, q } = outbox('p1');
    await init(q);
    await box.record(SESSION, [
      { taskId: '1', successful: true, usage: usage() },
      { taskId: '2', successful: true, usage: usage({ cpuTimeMs: 1000 }) },
    ]);
    await box.record({ ...SESSION, application: 'risk' }, [
      { taskId: '3', successful: true, usage: usage() },
    ]);
    await box.batchOnce(true);
    const [summary, more] = await box.summaryMessages();
    expect(more, 'one message holds every group').to.equal(undefined);
    const check = checkAccountingMessage(summary!, Date.now());
    expect(check.kind).to.equal('apel-summary');
    expect(check.problems).to.deep.equal([]);
    const pricing = check.records.find((r) => r['SubmitHost'] === 'default/pricing')!;
    expect(pricing).to.include({ NumberOfJobs: '2', CpuDuration: '43', WallDuration: '120', VO: 'rates' });
    expect(check.records.find((r) => r['SubmitHost'] === 'default/risk')).to.include({ NumberOfJobs: '1' });
  });

  it('writes CAR messages when configured', async () => {
    const maker = new RecordMaker(config);
    const r = maker.job(SESSION, { taskId: '9', successful: false, usage: usage() })!;
    const check = checkAccountingMessage(writeCarJobs([r]), Date.now());
    expect(check.kind).to.equal('car');
    expect(check.problems).to.deep.equal([]);
    expect(check.records[0]).to.include({ LocalJobId: 'default:s1:9', Site: 'BANK-GRID-LON' });
  });
});
