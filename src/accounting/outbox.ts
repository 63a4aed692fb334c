/**
 * The accounting pipeline of one proxy, in three steps that each survive a crash:
 *
 * 1. record   (grid path)  finished tasks → job records → one element in `staged/`, fsynced,
 *                          before the grid's hold on the outputs is acknowledged.
 * 2. batch    (background) staged records → claimed in the shared store (so that a task whose
 *                          output reached two proxies is recorded by one) → messages of up to
 *                          recordsPerMessage records in `outgoing/` → staged elements removed.
 * 3. send     (background) each message signed (S/MIME), sent over STOMP with a receipt, and
 *                          removed only once the broker's RECEIPT has arrived.
 *
 * Nothing here may hold up or fail a grid call: the record step logs and counts its failures.
 */
import { log } from '../log';
import type { AccountingStore } from '../store/accounting-store';
import { StoreUnavailableError } from '../store/store';
import {
  APEL_JOB_HEADER,
  APEL_SUMMARY_HEADER,
  asciiValue,
  jobRecordLooksValid,
  jobRecordProblems,
  summaryRecordProblems,
  writeApelJobs,
  writeApelSummaries,
} from './apel';
import { writeCarJobs } from './car';
import type { AccountingMetrics } from './metrics';
import { MAX_RECORDS_PER_MESSAGE, type AccountingFormat, type JobRecord } from './records';
import type { SmimeSigner } from './smime';
import type { UsageJournal, Segment } from './journal';
import type { DirQueue } from './spool';
import { decodeStaged, encodeStaged, type StagedFetch } from './staged';
import {
  claimOf,
  localJobId,
  monthOf,
  summariesOf,
  type FinishedTask,
  type RecordMaker,
  type SessionFacts,
} from './usage';

/** What the outbox needs of a transport (StompSender; a fake in tests). */
export interface MessageTransport {
  start(): void;
  stop(): Promise<void>;
  readonly connected: boolean;
  status(): { connected: boolean; broker?: string | undefined; lastError?: string | undefined };
  /** Resolves once the broker has acknowledged the message (STOMP RECEIPT). */
  send(body: string, empaId: string): Promise<void>;
}

export interface OutboxOptions {
  site: string;
  format: AccountingFormat;
  recordsPerMessage: number;
  batchDelayMs: number;
  claimTtlMs: number;
  /** fsync each append before the grid call goes on (accounting.fsync: each). */
  fsyncEach?: boolean;
  /** Sends in flight awaiting their RECEIPT. */
  inFlight: number;
  summaries: { enabled: boolean; intervalMs: number; previousMonthDays: number };
  /** Encrypts a signed message to the receiver, when configured. */
  encrypt?: (signed: string) => Promise<string>;
}

export interface OutboxQueues {
  /** The grid path's appends (see journal.ts). */
  journal: UsageJournal;
  outgoing: DirQueue;
  rejected: DirQueue;
  /** This spool's identity in the shared store (stable across restarts). */
  owner: string;
}

export interface OutboxStatus {
  broker: 'connected' | 'unreachable' | 'not configured';
  brokerAddress?: string;
  lastError?: string;
  stagedElements: number;
  queuedMessages: number;
  rejectedMessages: number;
  oldestAgeMs: number | undefined;
}

/** How often the background steps look for work when nothing wakes them. */
const POLL_MS = 250;
/** A failing step waits this long before the next attempt, doubling up to MAX_BACKOFF_MS. */
const BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** Repeated failures of the same kind are logged at most this often. */
const LOG_EVERY_MS = 10_000;
/** Summary lease ticks: the writer holds the lease for three ticks. */
const SUMMARY_TICK_MS = 60_000;

export class AccountingOutbox {
  private running = false;
  /** Loops sleeping in pause(); record() and stop() wake them early. */
  private readonly sleepers = new Set<() => void>();
  /** Records staged by this run and not yet batched: a full message is batched without waiting. */
  private stagedRecords = 0;
  private loops: Promise<void>[] = [];
  private readonly lastLogged = new Map<string, number>();
  private queuedIds: Set<string> | undefined;
  private status_: OutboxStatus = {
    broker: 'not configured',
    stagedElements: 0,
    queuedMessages: 0,
    rejectedMessages: 0,
    oldestAgeMs: undefined,
  };
  private summariesSentAt = 0;
  /** Messages just written whose staged records are not yet removed: not to be sent before. */
  private readonly unpublished = new Set<string>();

  constructor(
    private readonly opts: OutboxOptions,
    private readonly store: AccountingStore,
    private readonly q: OutboxQueues,
    private readonly maker: RecordMaker,
    private readonly signer: SmimeSigner | null,
    private readonly sender: MessageTransport | null,
    private readonly metrics: AccountingMetrics,
  ) {}

  /**
   * Step 1, on the grid path: never throws, and costs one small file write (the facts of the
   * tasks, not yet records: building and checking them is the batch step's work, off the path).
   */
  async record(session: SessionFacts, tasks: readonly FinishedTask[]): Promise<void> {
    const usable = tasks.filter((t) => t.usage && t.usage.endTimeMs > 0);
    if (usable.length < tasks.length) {
      this.metrics.records.inc({ result: 'skipped' }, tasks.length - usable.length);
      this.warn('no-usage', 'the grid reported no usage for a task: it gets no record', {
        cluster: session.cluster,
        hint: 'upgrade the grid to one that sends TaskUsage (docs/protocol.md)',
      });
    }
    if (usable.length === 0) return;
    try {
      this.q.journal.append(encodeStaged(session, usable));
      if (this.opts.fsyncEach) await this.q.journal.sync();
      this.metrics.records.inc({ result: 'queued' }, usable.length);
      this.stagedRecords += usable.length;
      // Only a full message is worth waking the batch loop for; otherwise it comes by itself
      // (a wake per fetch would mean an fsync and directory listings per fetch).
      if (this.stagedRecords >= this.opts.recordsPerMessage) this.wakeAll();
    } catch (e) {
      this.metrics.records.inc({ result: 'failed' }, usable.length);
      log.error('accounting: usage records could not be written to the queue and are lost', {
        localJobIds: usable.slice(0, 20).map((t) => localJobId(session.cluster, session.sessionId, t.taskId)),
        count: usable.length,
        error: errorText(e),
        hint: 'free disk space or fix the permissions of accounting.spoolDir; the grid path is not affected',
      });
    }
  }

  /** The records of one staged fetch that the receiver would accept; the others are logged and counted. */
  private recordsOf(fetch: StagedFetch, now: number): JobRecord[] {
    const out: JobRecord[] = [];
    for (const t of fetch.tasks) {
      const r = this.maker.job(fetch.session, t);
      if (!r) continue;
      const problems = jobRecordLooksValid(r, now) ? [] : jobRecordProblems(r, now);
      if (problems.length > 0) {
        this.metrics.records.inc({ result: 'rejected' });
        // Usually a configuration error that hits every record: logged once per interval.
        this.warn(
          'rejected-record',
          'accounting: a usage record would be refused by the receiver, so it is not sent (ssp_accounting_records_total{result="rejected"} counts them all)',
          {
            localJobId: r.localJobId,
            problems,
            hint: 'check accounting.site, accounting.clusters and the grid clock',
          },
          'error',
        );
        continue;
      }
      out.push(r);
    }
    return out;
  }

  async start(): Promise<void> {
    await this.recover();
    this.running = true;
    this.sender?.start();
    this.loops = [this.loop('batch', () => this.batchOnce()), this.loop('send', () => this.sendOnce())];
    if (this.opts.summaries.enabled) this.loops.push(this.summaryLoop());
  }

  /** What a crashed run left: its locks, half-written files, records both staged and batched. */
  async recover(): Promise<void> {
    await this.q.journal.init();
    // One owner per spool (a lock file ensures it): every lock found is a crashed run's.
    const released = await this.q.outgoing.releaseLocks();
    if (released > 0) log.warn('accounting: released locks left by an earlier run', { released });
    await this.q.outgoing.purge({ maxTempMs: 0, maxLockMs: Number.MAX_SAFE_INTEGER });
    // A crash between writing a message and removing its staged records would batch them again.
    if ((await this.q.journal.sealed()).length > 0) this.queuedIds = await this.idsInOutgoing();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeAll();
    // The sender first: a send awaiting its RECEIPT fails at once (the message stays queued)
    // instead of holding the shutdown for receiptTimeoutMs.
    await this.sender?.stop();
    await Promise.allSettled(this.loops);
    try {
      this.q.journal.close();
    } catch (e) {
      log.warn('accounting: the staged segment could not be synced at shutdown', { error: errorText(e) });
    }
    await this.signer?.close();
  }

  status(): OutboxStatus {
    return { ...this.status_ };
  }

  /** Step 2: staged records into messages, once enough are waiting or the oldest has waited long enough. */
  async batchOnce(force = false): Promise<boolean> {
    const journal = this.q.journal;
    // Records appended without an fsync (fsync: batched) become durable here, before anything
    // else happens to them.
    await journal.sync();
    const open = journal.openSegment();
    let sealed = await journal.sealed();
    this.status_.stagedElements = sealed.length + (open ? 1 : 0);
    const oldest = sealed[0] ?? open;
    if (!oldest) return false;
    const due =
      force ||
      sealed.length > 0 ||
      this.stagedRecords >= this.opts.recordsPerMessage ||
      Date.now() - oldest.createdMs >= this.opts.batchDelayMs;
    if (!due) return false;
    if (sealed.length === 0) {
      await journal.seal();
      this.stagedRecords = 0;
      sealed = await journal.sealed();
    }
    for (const segment of sealed) await this.batchSegment(segment);
    this.queuedIds = undefined;
    return true;
  }

  /** One sealed segment: its records claimed, written as messages, then the segment removed. */
  private async batchSegment(segment: Segment): Promise<void> {
    const { elements, torn } = await this.q.journal.read(segment);
    if (torn)
      log.warn(
        'accounting: a staged segment ends in a torn write (its records were reported lost when it failed)',
        {
          segment: segment.name,
        },
      );
    const now = Date.now();
    const records: JobRecord[] = [];
    for (const element of elements) {
      try {
        records.push(...this.recordsOf(decodeStaged(element), now));
      } catch (e) {
        // Kept for inspection, never silently dropped.
        await this.q.rejected.add(element);
        this.metrics.messages.inc({ result: 'rejected' });
        log.error('accounting: a staged element is damaged and was set aside', {
          segment: segment.name,
          why: errorText(e),
          hint: 'inspect it with `symphony-soap-proxy accounting list --rejected`',
        });
      }
    }
    let mine: JobRecord[];
    try {
      const owned = await this.store.claimUsageRecords(
        this.q.owner,
        records.map(claimOf),
        this.opts.claimTtlMs,
        this.opts.claimTtlMs,
      );
      mine = records.filter((r, i) => owned[i] && !this.queuedIds?.has(asciiValue(r.localJobId)));
      const others = records.length - mine.length;
      if (others > 0) this.metrics.records.inc({ result: 'duplicate' }, others);
    } catch (e) {
      if (e instanceof StoreUnavailableError)
        this.warn('store', 'accounting: the shared store is unavailable; records wait on disk', {
          error: e.message,
        });
      throw e;
    }
    const written: string[] = [];
    for (let i = 0; i < mine.length; i += this.opts.recordsPerMessage) {
      const part = mine.slice(i, i + this.opts.recordsPerMessage);
      written.push(
        await this.q.outgoing.add(this.opts.format === 'car' ? writeCarJobs(part) : writeApelJobs(part)),
      );
      this.unpublished.add(written[written.length - 1]!);
    }
    // A message sent (and removed) before its segment was gone would, after a crash between the
    // two, leave records that nothing marks as sent: they would go again in a new message.
    try {
      await this.q.journal.remove(segment);
    } finally {
      for (const id of written) this.unpublished.delete(id);
    }
  }

  /** Step 3: the oldest messages, up to inFlight at once, each removed once its RECEIPT arrived. */
  async sendOnce(): Promise<boolean> {
    const ids = await this.q.outgoing.list();
    this.status_.queuedMessages = ids.length;
    this.status_.oldestAgeMs = await this.oldestAge(ids);
    this.status_.rejectedMessages = await this.q.rejected.count();
    this.refreshBroker();
    if (ids.length === 0 || !this.sender || !this.signer || !this.sender.connected) return false;
    const batch: Promise<boolean>[] = [];
    for (const id of ids) {
      if (batch.length >= this.opts.inFlight) break;
      if (this.unpublished.has(id) || !(await this.q.outgoing.lock(id))) continue;
      batch.push(this.sendOne(id));
    }
    const results = await Promise.all(batch);
    if (results.some((ok) => !ok)) throw new SendFailed();
    return batch.length > 0;
  }

  private async sendOne(id: string): Promise<boolean> {
    const q = this.q.outgoing;
    let text: string;
    try {
      text = (await q.get(id)).toString('utf8');
    } catch (e) {
      await this.reject(q, id, `unreadable: ${errorText(e)}`);
      return true;
    }
    // Records were checked in full when they were made; this only catches a damaged file,
    // cheaply (a full check of 1,000 records would hold the event loop for 0.1 s or more).
    const check = quickCheck(text);
    if (typeof check === 'string') {
      await this.reject(q, id, check);
      return true;
    }
    try {
      const t0 = process.hrtime.bigint();
      let body = await this.signer!.sign(text);
      if (this.opts.encrypt) body = await this.opts.encrypt(body);
      this.metrics.signSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      const t1 = process.hrtime.bigint();
      // The element id names the message for good: a resend after a lost RECEIPT carries the same empa-id.
      await this.sender!.send(body, id);
      this.metrics.sendSeconds.observe(Number(process.hrtime.bigint() - t1) / 1e9);
    } catch (e) {
      await q.unlock(id).catch(() => undefined);
      const reason = (e as { reason?: string }).reason ?? 'error';
      this.metrics.messages.inc({ result: 'failed' });
      this.warn(
        `send-${reason}`,
        'accounting: a message was not acknowledged by the broker; it stays queued and is sent again',
        {
          message: id,
          reason,
          error: errorText(e),
          hint: 'check the broker (accounting.broker.hosts) and its logs',
        },
      );
      return false;
    }
    await q.remove(id);
    this.metrics.messages.inc({ result: 'sent' });
    this.metrics.recordsSent.inc(check.records);
    return true;
  }

  /** Sets an element aside in rejected/ (never deleted silently) and says what to do. */
  private async reject(q: DirQueue, id: string, why: string): Promise<void> {
    try {
      const moved = await q.moveTo(id, this.q.rejected);
      this.metrics.messages.inc({ result: 'rejected' });
      log.error('accounting: a queued element is corrupt and was set aside', {
        element: id,
        rejectedAs: moved,
        why,
        hint: 'inspect it with `symphony-soap-proxy accounting show --rejected`; `accounting resend` puts it back, `accounting purge --rejected` deletes it',
      });
    } catch (e) {
      await q.unlock(id).catch(() => undefined);
      log.error('accounting: a corrupt element could not be set aside', {
        element: id,
        why,
        error: errorText(e),
      });
    }
  }

  /**
   * This month's (and, early in a month, last month's) summary messages, from the farm's totals.
   * They are built when sent and never queued: a summary replaces the last one at the receiver,
   * so an old one sent late (by a proxy restarted after a crash) would undo a newer total.
   */
  async summaryMessages(now = Date.now()): Promise<string[]> {
    const months = [monthOf(now / 1000)];
    const d = new Date(now);
    if (d.getUTCDate() <= this.opts.summaries.previousMonthDays)
      months.push(monthOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 0) / 1000));
    const messages: string[] = [];
    for (const month of months) {
      const all = summariesOf(this.opts.site, month, await this.store.usageTotals(month));
      const ok = all.filter((s) => {
        const problems = summaryRecordProblems(s, now);
        if (problems.length > 0)
          log.error('accounting: a summary would be refused; not sent', { month, problems });
        return problems.length === 0;
      });
      for (let i = 0; i < ok.length; i += MAX_RECORDS_PER_MESSAGE)
        messages.push(writeApelSummaries(ok.slice(i, i + MAX_RECORDS_PER_MESSAGE)));
    }
    return messages;
  }

  /** Signs and sends the summaries now; false when there is no broker to take them. */
  private async sendSummaries(): Promise<boolean> {
    if (!this.sender || !this.signer || !this.sender.connected) return false;
    const at = Date.now();
    const messages = await this.summaryMessages(at);
    for (const [i, text] of messages.entries()) {
      let body = await this.signer.sign(text);
      if (this.opts.encrypt) body = await this.opts.encrypt(body);
      await this.sender.send(body, `summary/${this.q.owner}/${at}/${i}`);
      this.metrics.messages.inc({ result: 'sent' });
    }
    return true;
  }

  private async summaryLoop(): Promise<void> {
    const tick = Math.min(this.opts.summaries.intervalMs, SUMMARY_TICK_MS);
    while (this.running) {
      try {
        if (await this.store.holdLease('summaries', this.q.owner, tick * 3)) {
          if (
            Date.now() - this.summariesSentAt >= this.opts.summaries.intervalMs &&
            (await this.sendSummaries())
          )
            this.summariesSentAt = Date.now();
        } else this.summariesSentAt = 0;
      } catch (e) {
        this.warn('summaries', 'accounting: summaries could not be sent; trying again', {
          error: errorText(e),
        });
      }
      await this.pause(tick);
    }
  }

  private async loop(name: string, step: () => Promise<boolean>): Promise<void> {
    let backoff = 0;
    while (this.running) {
      let busy = false;
      try {
        busy = await step();
        backoff = 0;
      } catch (e) {
        backoff = Math.min(MAX_BACKOFF_MS, backoff === 0 ? BACKOFF_MS : backoff * 2);
        if (!(e instanceof SendFailed) && !(e instanceof StoreUnavailableError))
          this.warn(name, `accounting: the ${name} step failed; trying again`, { error: errorText(e) });
      }
      if (!busy) await this.pause(backoff || POLL_MS);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.sleepers.add(done);
    });
  }

  private wakeAll(): void {
    for (const w of [...this.sleepers]) w();
  }

  private refreshBroker(): void {
    if (!this.sender) {
      this.status_.broker = 'not configured';
      this.metrics.brokerConnected.set(0);
      return;
    }
    const s = this.sender.status();
    this.status_.broker = s.connected ? 'connected' : 'unreachable';
    this.status_.brokerAddress = s.broker;
    this.status_.lastError = s.lastError;
    this.metrics.brokerConnected.set(s.connected ? 1 : 0);
  }

  private async oldestAge(outgoing: string[]): Promise<number | undefined> {
    const segment = (await this.q.journal.sealed())[0] ?? this.q.journal.openSegment();
    const times = outgoing[0] ? [this.q.outgoing.addedAtMs(outgoing[0])] : [];
    if (segment) times.push(segment.createdMs);
    return times.length === 0 ? undefined : Math.max(0, Date.now() - Math.min(...times));
  }

  private async idsInOutgoing(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const id of await this.q.outgoing.list()) {
      try {
        if (!(await this.q.outgoing.lock(id))) continue;
        const body = await this.q.outgoing.get(id).finally(() => this.q.outgoing.unlock(id));
        for (const jobId of jobIdsIn(body.toString('utf8'))) ids.add(jobId);
      } catch {
        /* a corrupt element is dealt with when it is sent */
      }
    }
    return ids;
  }

  private warn(
    kind: string,
    msg: string,
    meta: Record<string, unknown>,
    level: 'warn' | 'error' = 'warn',
  ): void {
    const now = Date.now();
    if (now - (this.lastLogged.get(kind) ?? 0) < LOG_EVERY_MS) return;
    this.lastLogged.set(kind, now);
    log.log(level, msg, meta);
  }
}

class SendFailed extends Error {}

/** The LocalJobIds of a queued message (as written, i.e. ASCII-escaped). */
function jobIdsIn(text: string): string[] {
  const re = text.startsWith('<') ? /<urf:LocalJobId>([^<]*)<\/urf:LocalJobId>/g : /^LocalJobId: (.*)$/gm;
  return [...text.matchAll(re)].map((m) => m[1]!);
}

/** A message as we write them: a known header, ASCII only, complete. Returns its record count or what is wrong. */
export function quickCheck(text: string): { records: number } | string {
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(text)) return 'not ASCII: the file is damaged';
  if (text.startsWith('<')) {
    if (!text.trimEnd().endsWith('</urf:UsageRecords>')) return 'CAR message cut short: the file is damaged';
    return { records: text.split('<urf:UsageRecord>').length - 1 };
  }
  const header = text.slice(0, text.indexOf('\n'));
  if (header !== APEL_JOB_HEADER && header !== APEL_SUMMARY_HEADER)
    return `unknown header ${JSON.stringify(header.slice(0, 60))}`;
  if (!text.endsWith('%%\n')) return 'message cut short (no final %%): the file is damaged';
  return { records: text.split('\n%%\n').length - 1 };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
