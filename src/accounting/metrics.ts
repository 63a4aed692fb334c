/** Accounting's metrics, in the proxy's registry (see docs/accounting.md for what to alert on). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface QueueGauges {
  queuedMessages: number;
  stagedElements: number;
  rejectedMessages: number;
  oldestAgeMs: number | undefined;
}

export class AccountingMetrics {
  readonly records: Counter<'result'>;
  readonly recordsSent: Counter;
  readonly messages: Counter<'result'>;
  readonly brokerConnected: Gauge;
  readonly signSeconds: Histogram;
  readonly sendSeconds: Histogram;

  constructor(registry: Registry, queue: () => QueueGauges) {
    const registers = [registry];
    this.records = new Counter({
      name: 'ssp_accounting_records_total',
      help: 'Usage records by what became of them: queued (on disk), skipped (the grid reported no usage), rejected (would be refused by the receiver), failed (could not be written: lost), duplicate (another proxy records the task)',
      labelNames: ['result'],
      registers,
    });
    this.recordsSent = new Counter({
      name: 'ssp_accounting_records_sent_total',
      help: 'Records in messages the broker acknowledged with a RECEIPT',
      registers,
    });
    this.messages = new Counter({
      name: 'ssp_accounting_messages_total',
      help: 'Accounting messages by outcome: sent (RECEIPT received), failed (attempt failed, sent again later), rejected (corrupt, set aside)',
      labelNames: ['result'],
      registers,
    });
    this.brokerConnected = new Gauge({
      name: 'ssp_accounting_broker_connected',
      help: '1 while connected to an accounting broker',
      registers,
    });
    this.signSeconds = new Histogram({
      name: 'ssp_accounting_sign_seconds',
      help: 'Time to sign (and encrypt) one accounting message',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.sendSeconds = new Histogram({
      name: 'ssp_accounting_send_seconds',
      help: 'Time from SEND to the broker RECEIPT for one accounting message',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers,
    });
    new Gauge({
      name: 'ssp_accounting_queue_messages',
      help: 'Messages on disk waiting to be sent',
      registers,
      collect() {
        this.set(queue().queuedMessages);
      },
    });
    new Gauge({
      name: 'ssp_accounting_staged_elements',
      help: 'Staged record files on disk waiting to be batched into messages',
      registers,
      collect() {
        this.set(queue().stagedElements);
      },
    });
    new Gauge({
      name: 'ssp_accounting_rejected_messages',
      help: 'Corrupt elements set aside in rejected/ (see the accounting CLI)',
      registers,
      collect() {
        this.set(queue().rejectedMessages);
      },
    });
    new Gauge({
      name: 'ssp_accounting_oldest_record_age_seconds',
      help: 'Age of the oldest record not yet acknowledged by the broker (0: none waiting)',
      registers,
      collect() {
        this.set((queue().oldestAgeMs ?? 0) / 1000);
      },
    });
  }
}
