/**
 * The in-process test layer: the whole pipeline built from its dependencies, with the memory
 * store and the real reference grid started in this process (real TCP on loopback, its echo
 * service in worker processes), and requests fed to the pipeline without a listener. No
 * Debian peer is needed, so `npm test` runs these in seconds.
 */
import { Destinations, type DestinationRule } from '../../src/notifications/destinations';
import type { NotificationLimits } from '../../src/notifications/handlers';
import { Notifier } from '../../src/notifications/notifier';
import { DEFAULT_ENUMERATION, type EnumerationConfig } from '../../src/resources/enumeration';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { GridRouter } from '../../src/backend/grid-router';
import type { GridConfigInput } from '../../src/grid/config';
import type { Grid } from '../../src/grid/server';
import { startTestGrid as startGridOnLoopback } from '../grid/helpers';
import type { AuditLog } from '../../src/observability/audit-log';
import { Lifetimes, NEVER_IDLE, type LifetimeConfig } from '../../src/lifetime/lifetimes';
import { ProxyMetrics } from '../../src/observability/metrics';
import { operationTable } from '../../src/operations/table';
import { ROOT } from '../../src/paths';
import { buildPhases, type PipelineDeps } from '../../src/pipeline/build';
import { newCall, type CallContext } from '../../src/pipeline/context';
import { bindOperations, type BoundOperation } from '../../src/pipeline/operation';
import { createPipeline, type Answer, type Phases, type Pipeline } from '../../src/pipeline/phases';
import type { PolicyManager } from '../../src/policy/policy-manager';
import type { WssVerifier } from '../../src/security/verifier';
import { envelope as plainEnvelope, type EnvelopeWriter } from '../../src/soap/envelope';
import type { Contract } from '../../src/soap/wsdl';
import { loadProxyContract } from '../../src/operations/contract';
import { MemoryStore } from '../../src/store/memory-store';
import type { StateStore } from '../../src/store/store';
import { envelope11, op, pick } from './soap-http';

export { envelope11, op, pick };

let contract: Contract | null = null;
/** The WSDL contract, loaded once per test process. */
export function testContract(): Contract {
  contract ??= loadProxyContract(ROOT);
  return contract;
}

export interface FakeRequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The TLS peer certificate's SHA-256 fingerprint, for an mTLS socket. */
  tlsPeerFingerprint256?: string;
}

/**
 * An IncomingMessage as the pipeline reads it: a readable body, method, url, lowercase headers
 * and a socket with an address (TLS when a peer fingerprint is given).
 */
export function fakeRequest(o: FakeRequestOptions = {}): IncomingMessage {
  const body = o.body === undefined ? [] : [Buffer.from(o.body)];
  const req = Readable.from(body);
  const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8' };
  for (const [k, v] of Object.entries(o.headers ?? {})) headers[k.toLowerCase()] = v;
  const socket = o.tlsPeerFingerprint256
    ? {
        remoteAddress: '127.0.0.1',
        destroyed: false,
        encrypted: true,
        getPeerCertificate: () => ({ fingerprint256: o.tlsPeerFingerprint256 }),
      }
    : { remoteAddress: '127.0.0.1', destroyed: false };
  Object.assign(req, { method: o.method ?? 'POST', url: o.path ?? '/soap', headers, socket, complete: true });
  return req as unknown as IncomingMessage;
}

let counter = 0;
/** A fresh call context for a fake request, as the listener makes it. */
export function fakeCall(o: FakeRequestOptions = {}): CallContext {
  const req = fakeRequest(o);
  return newCall(req, o.path ?? '/soap', `test-${++counter}`);
}

export interface CallResult {
  answer: Answer;
  ctx: CallContext;
  /** The catalogue code of the fault, or undefined for a success. */
  code: string | undefined;
  /** Text of the first element with this local name in the answer. */
  pick(local: string): string | undefined;
}

/** Runs one request through a pipeline and its completion phase, as the listener would. */
export async function runRequest(pipeline: Pipeline, o: FakeRequestOptions): Promise<CallResult> {
  const ctx = fakeCall(o);
  const answer = await pipeline.handle(ctx);
  pipeline.complete(ctx, answer);
  return { answer, ctx, code: answer.fault?.code, pick: (l) => pick(answer.body, l) };
}

/** The reference grid in this process, with one echo worker (enough for these tests, quick to start). */
export function startTestGrid(overrides: GridConfigInput = {}): Promise<Grid> {
  return startGridOnLoopback({ applications: [{ name: 'echo', service: 'echo', workers: 1 }], ...overrides });
}

/** With security off every caller is one anonymous consumer; this header names a consumer instead. */
export const CONSUMER_HEADER = 'x-test-consumer';

/** A `phases` option for startHarness: the consumer comes from CONSUMER_HEADER when present. */
export function consumersFromHeader(p: Phases): Phases {
  return {
    ...p,
    security: [
      ...p.security,
      async (ctx) => {
        const id = ctx.req.headers[CONSUMER_HEADER];
        if (typeof id === 'string') ctx.consumer = { id, via: 'anonymous' };
      },
    ],
  };
}

/** Notification bounds of the harness: small enough to reach in a test. */
export const TEST_NOTIFICATION_LIMITS: NotificationLimits = {
  defaultSubscriptionMs: 3_600_000,
  maxSubscriptionMs: 86_400_000,
  maxSubscriptionsPerConsumer: 20,
  maxPullPointsPerConsumer: 5,
  pullPointIdleMs: 600_000,
  maxMessagesPerPull: 100,
  queueMaxMessages: 10_000,
};

export interface HarnessOptions {
  verifier?: WssVerifier;
  policies?: PolicyManager;
  write?: EnvelopeWriter;
  audit?: AuditLog;
  store?: StateStore;
  maxTasksPerBatch?: number;
  /** Idle leases (default: nothing lapses). */
  lifetime?: LifetimeConfig;
  /** WS-Enumeration settings over the defaults. */
  enumeration?: Partial<EnumerationConfig>;
  /** How far ahead SetTerminationTime may go (default 30 days). */
  maxTerminationMs?: number;
  /** Whether clients may set termination times (default true). */
  clientTerminationTimes?: boolean;
  /** Changes the declared phases before the pipeline is made (for example to add a probe hook). */
  phases?: (p: Phases) => Phases;
  /** WS-BaseNotification: allowed consumer destinations and bounds over the defaults. */
  notifications?: { destinations?: DestinationRule[]; limits?: Partial<NotificationLimits> };
}

export interface Harness {
  grid: Grid;
  router: GridRouter;
  store: StateStore;
  lifetimes: Lifetimes;
  /** Publishes session and connection events into subscriptions (as the proxy does). */
  notifier: Notifier;
  metrics: ProxyMetrics;
  operations: Map<string, BoundOperation>;
  deps: PipelineDeps;
  pipeline: Pipeline;
  /** Posts a SOAP 1.1 envelope around `bodyXml` to the endpoint. */
  post(bodyXml: string, o?: Omit<FakeRequestOptions, 'body'>): Promise<CallResult>;
  /** connect + createSession on the echo application; returns both ids. */
  openSession(): Promise<{ connectionId: string; sessionId: string }>;
  close(): Promise<void>;
}

/** Builds the whole pipeline around an in-process grid; call close() in after(). */
export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const grid = await startTestGrid();
  const router = new GridRouter(
    [
      {
        name: 'default',
        urls: ['grid-a'],
        addresses: [`${grid.address.host}:${grid.address.port}`],
        sharedSecret: '',
        poolSize: 1,
        connectTimeoutMs: 2000,
        requestTimeoutMs: 5000,
        plaintext: false,
      },
    ],
    'default',
  );
  const store = opts.store ?? new MemoryStore();
  const metrics = new ProxyMetrics(() => router.status());
  const reliability = { clientKeyTtlMs: 60_000, maxLeaseMs: 60_000, gridHoldMs: 5_000 };
  const lifetimes = new Lifetimes(store, opts.lifetime ?? NEVER_IDLE);
  const limits: NotificationLimits = { ...TEST_NOTIFICATION_LIMITS, ...opts.notifications?.limits };
  const notifier = new Notifier(store, { maxMessages: limits.queueMaxMessages });
  const operations = bindOperations(
    testContract().operations,
    operationTable({
      router,
      store,
      lifetimes,
      maxTasksPerBatch: opts.maxTasksPerBatch ?? 1000,
      reliability,
      resources: {
        maxTerminationMs: opts.maxTerminationMs ?? 30 * 86_400_000,
        clientTerminationTimes: opts.clientTerminationTimes ?? true,
      },
      enumeration: { ...DEFAULT_ENUMERATION, ...opts.enumeration },
      notifier,
      notifications: { limits, destinations: new Destinations(opts.notifications?.destinations ?? []) },
    }),
  );
  const write = opts.write ?? plainEnvelope;
  const deps: PipelineDeps = {
    endpointPath: '/soap',
    maxBodyBytes: 1024 * 1024,
    xmlLimits: { maxDepth: 64, maxAttributes: 64, maxNameLength: 256, maxElements: 200_000, maxHeaders: 32 },
    verifier: opts.verifier ?? null,
    identity: { consumers: [], requireMappedConsumer: false },
    policies: opts.policies ?? null,
    operations,
    store,
    clientKeyTtlMs: reliability.clientKeyTtlMs,
    metrics,
    write,
    audit: opts.audit ?? null,
  };
  const phases = buildPhases(deps);
  const pipeline = createPipeline(opts.phases ? opts.phases(phases) : phases, write);
  const post = (bodyXml: string, o: Omit<FakeRequestOptions, 'body'> = {}): Promise<CallResult> =>
    runRequest(pipeline, { ...o, body: envelope11(bodyXml) });
  return {
    grid,
    router,
    store,
    lifetimes,
    notifier,
    metrics,
    operations,
    deps,
    pipeline,
    post,
    async openSession() {
      const c = await post(
        op(
          'connect',
          '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
        ),
      );
      const connectionId = c.pick('connectionId');
      if (!connectionId) throw new Error(`connect failed: ${c.answer.body}`);
      const s = await post(op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`));
      const sessionId = s.pick('sessionId');
      if (!sessionId) throw new Error(`createSession failed: ${s.answer.body}`);
      return { connectionId, sessionId };
    },
    async close() {
      router.close();
      await store.close();
      await grid.close();
    },
  };
}
