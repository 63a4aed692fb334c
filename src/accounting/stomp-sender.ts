/**
 * Sends accounting messages to a STOMP broker and reports each one as done only when the
 * broker's RECEIPT for it arrives (docs/design/accounting.md 6.4). Framing, heart-beats and the
 * reconnect timer are @stomp/stompjs'; this class adds the broker list (each attempt tries the
 * next one), backoff with jitter between full rounds, and receipts matched per message.
 *
 * A RECEIPT only means the broker took the frame (pitfall 6); `persistent: true` is what keeps
 * it across a broker restart (pitfall 3).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, IFrame } from '@stomp/stompjs' with { 'resolution-mode': 'import' };
import { StompSocket, stompjs, type StompTlsOptions } from './stomp-socket';

export interface BrokerAddress {
  host: string;
  port: number;
  /** PEM texts; absent: plain TCP. */
  tls?: StompTlsOptions;
}

export interface StompSenderOptions {
  brokers: BrokerAddress[];
  /** e.g. `/queue/bank.apel`. */
  destination: string;
  login?: string;
  passcode?: string;
  /** STOMP `host` header (RabbitMQ: the virtual host). */
  vhost?: string;
  receiptTimeoutMs: number;
  /** A broker whose CONNECTED has not arrived by then counts as failed. */
  connectTimeoutMs: number;
  /** Heart-beats both ways; 0 disables them. */
  heartbeatMs: number;
  /** Delay after a full round of failed brokers: initialMs, doubling up to maxMs, with jitter. */
  reconnect: { initialMs: number; maxMs: number };
}

/** The subset of a winston logger the sender uses. */
export interface SenderLog {
  debug(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  error(message: string, meta?: Record<string, unknown>): unknown;
}

export type SendFailureReason = 'timeout' | 'error' | 'disconnected' | 'not-connected';

export class StompSendError extends Error {
  constructor(
    readonly reason: SendFailureReason,
    message: string,
    readonly broker?: string,
  ) {
    super(message);
    this.name = 'StompSendError';
  }
}

export interface SenderStatus {
  connected: boolean;
  broker?: string;
  lastError?: string;
  /** Epoch ms of the last change of `connected`. */
  since: number;
}

interface Pending {
  resolve(): void;
  reject(err: StompSendError): void;
  timer: NodeJS.Timeout;
}

const CHECK_BROKER =
  'check that the broker is up and reachable, the login/passcode/vhost, and the TLS files (ca, cert, key)';

/** Delay before the next round: min(max, initial·2^round), of which a random half is jitter. */
export function roundDelayMs(round: number, initialMs: number, maxMs: number, random = Math.random): number {
  // Equal jitter rather than full jitter: a floor keeps a dead broker list from being hammered.
  const bound = Math.min(maxMs, initialMs * 2 ** Math.min(round, 30));
  return Math.floor(bound / 2 + (random() * bound) / 2);
}

export function brokerName(b: BrokerAddress): string {
  return `${b.host}:${b.port}`;
}

export class StompSender {
  private readonly client: Client;
  private readonly pending = new Map<string, Pending>();
  private readonly stopping = new AbortController();
  /** Index (modulo the list) of the broker the next attempt goes to. */
  private nextBroker = 0;
  /** Consecutive attempts without a lasting connection; a multiple of the list ends a round. */
  private failures = 0;
  private attempting: BrokerAddress | undefined;
  private connectedTo: string | undefined;
  private connectedAt = 0;
  private socket: StompSocket | undefined;
  private lastError: string | undefined;
  /** Why the current attempt failed, if the broker said (an ERROR before CONNECTED). */
  private attemptError: string | undefined;
  private since = Date.now();
  private seq = 0;

  constructor(
    private readonly opts: StompSenderOptions,
    private readonly log: SenderLog,
  ) {
    if (opts.brokers.length === 0) throw new Error('accounting STOMP sender: configure at least one broker');
    this.client = new stompjs.Client({
      webSocketFactory: () => this.openSocket(),
      connectHeaders: connectHeaders(opts),
      connectionTimeout: opts.connectTimeoutMs,
      heartbeatIncoming: opts.heartbeatMs,
      heartbeatOutgoing: opts.heartbeatMs,
      // Our own delay runs in beforeConnect; the library's only has to be non-zero to retry.
      reconnectDelay: 1,
      reconnectTimeMode: stompjs.ReconnectionTimeMode.LINEAR,
      beforeConnect: () => this.beforeConnect(),
      onConnect: () => this.onConnected(),
      onStompError: (frame) => this.onStompError(frame),
      onWebSocketClose: () => this.onClosed(),
      onUnhandledReceipt: (frame) => this.onReceipt(frame.headers['receipt-id']),
    });
  }

  start(): void {
    this.client.activate();
  }

  /** Sends DISCONNECT (receipts of earlier SENDs arrive first), then fails what is still waiting. */
  async stop(): Promise<void> {
    this.stopping.abort();
    const graceful = this.client.deactivate();
    const bounded = await Promise.race([
      graceful.then(() => true),
      sleep(this.opts.receiptTimeoutMs, false, { ref: false }),
    ]);
    if (!bounded) await this.client.deactivate({ force: true });
    this.failAll('disconnected', 'the sender was stopped before the broker confirmed the message');
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get broker(): string | undefined {
    return this.client.connected ? this.connectedTo : undefined;
  }

  status(): SenderStatus {
    return {
      connected: this.connected,
      ...(this.broker !== undefined ? { broker: this.broker } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      since: this.since,
    };
  }

  /** One SEND; resolves when the broker's RECEIPT for it arrives. */
  send(body: string, empaId: string): Promise<void> {
    if (!this.client.connected) {
      const err = new StompSendError(
        'not-connected',
        'not connected to any accounting broker; the message stays queued',
      );
      return Promise.reject(err);
    }
    this.seq += 1;
    const receipt = `${empaId}#${this.seq}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.onReceiptTimeout(receipt), this.opts.receiptTimeoutMs);
      this.pending.set(receipt, { resolve, reject, timer });
      try {
        this.client.watchForReceipt(receipt, () => this.onReceipt(receipt));
        this.client.publish({
          destination: this.opts.destination,
          headers: {
            'empa-id': empaId,
            receipt,
            persistent: 'true',
            'content-type': 'text/plain',
          },
          body,
        });
      } catch {
        this.settle(
          receipt,
          new StompSendError('not-connected', 'the broker connection closed before the message was sent'),
        );
      }
    });
  }

  private openSocket(): StompSocket {
    const broker = this.attempting ?? this.opts.brokers[0]!;
    this.socket = new StompSocket(broker);
    return this.socket;
  }

  /** Picks the next broker; after a full round of failures, waits first. */
  private async beforeConnect(): Promise<void> {
    const n = this.opts.brokers.length;
    if (this.failures > 0 && this.failures % n === 0) {
      const round = this.failures / n - 1;
      const delay = roundDelayMs(round, this.opts.reconnect.initialMs, this.opts.reconnect.maxMs);
      this.log.info('no accounting broker reachable; retrying the list after a pause', {
        delayMs: delay,
        brokers: this.opts.brokers.map(brokerName),
      });
      try {
        await sleep(delay, undefined, { signal: this.stopping.signal });
      } catch {
        return; // stopped: stompjs sees the client inactive and does not connect
      }
    }
    this.attemptError = undefined;
    this.attempting = this.opts.brokers[this.nextBroker % n]!;
    this.nextBroker = (this.nextBroker + 1) % n;
    this.log.debug('connecting to accounting broker', { broker: brokerName(this.attempting) });
  }

  private onConnected(): void {
    this.connectedTo = this.attempting ? brokerName(this.attempting) : undefined;
    this.connectedAt = Date.now();
    this.since = this.connectedAt;
    this.log.info('connected to accounting broker', { broker: this.connectedTo });
  }

  private onClosed(): void {
    const name = this.attempting ? brokerName(this.attempting) : 'unknown';
    const reason = this.attemptError ?? this.socket?.lastError;
    if (this.connectedAt > 0) {
      // A connection that dropped at once counts as a failure, so a flapping broker backs off too.
      const lasted = Date.now() - this.connectedAt;
      this.failures = lasted >= this.opts.connectTimeoutMs ? 0 : this.failures + 1;
      this.connectedAt = 0;
      this.connectedTo = undefined;
      this.since = Date.now();
      this.lastError = `connection to ${name} lost${reason ? `: ${reason}` : ''}`;
      this.failAll('disconnected', `${this.lastError} before the broker confirmed the message`, name);
      if (!this.stopping.signal.aborted) {
        this.log.warn('lost the accounting broker connection; trying the next broker', {
          broker: name,
          reason,
        });
      }
      return;
    }
    this.failures += 1;
    this.lastError = `could not connect to ${name}: ${reason ?? 'no CONNECTED frame in time'}`;
    if (!this.stopping.signal.aborted) {
      this.log.warn(`could not connect to accounting broker; ${CHECK_BROKER}`, {
        broker: name,
        reason: reason ?? `no CONNECTED within ${this.opts.connectTimeoutMs} ms`,
      });
    }
  }

  private onStompError(frame: IFrame): void {
    const name = this.attempting ? brokerName(this.attempting) : 'unknown';
    // The message header is the broker's summary; the body may echo more, so only a bounded slice.
    const summary = frame.headers['message'] ?? frame.body.slice(0, 200);
    this.lastError = `ERROR from ${name}: ${summary}`;
    if (!this.client.connected) {
      this.attemptError = `ERROR frame: ${summary}`;
      this.log.error(`accounting broker refused the connection; ${CHECK_BROKER}`, {
        broker: name,
        error: summary,
      });
      return;
    }
    this.log.warn('accounting broker sent an ERROR frame', { broker: name, error: summary });
    const receipt = frame.headers['receipt-id'];
    const err = (): StompSendError => new StompSendError('error', this.lastError!, name);
    if (receipt !== undefined && this.pending.has(receipt)) this.settle(receipt, err());
    // The broker closes the connection after an ERROR (STOMP 1.2): nothing else will be confirmed.
    else for (const id of [...this.pending.keys()]) this.settle(id, err());
  }

  private onReceipt(receipt: string | undefined): void {
    if (receipt !== undefined) this.settle(receipt);
  }

  private onReceiptTimeout(receipt: string): void {
    const name = this.connectedTo ?? 'unknown';
    this.settle(
      receipt,
      new StompSendError('timeout', `no RECEIPT from ${name} within ${this.opts.receiptTimeoutMs} ms`, name),
    );
    // A broker that loses receipts is suspect: reconnect, which moves to the next broker.
    this.log.warn('no RECEIPT in time; reconnecting to the next accounting broker', {
      broker: name,
      receipt,
      timeoutMs: this.opts.receiptTimeoutMs,
    });
    this.client.forceDisconnect();
  }

  private settle(receipt: string, err?: StompSendError): void {
    const p = this.pending.get(receipt);
    if (!p) return; // late receipt after a timeout or a disconnect
    this.pending.delete(receipt);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve();
  }

  private failAll(reason: SendFailureReason, message: string, broker?: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, new StompSendError(reason, message, broker));
  }
}

function connectHeaders(opts: StompSenderOptions): Record<string, string> {
  return {
    ...(opts.login !== undefined ? { login: opts.login } : {}),
    ...(opts.passcode !== undefined ? { passcode: opts.passcode } : {}),
    ...(opts.vhost !== undefined ? { host: opts.vhost } : {}),
  };
}
