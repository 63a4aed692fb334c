/**
 * Prometheus metrics (prom-client) on the admin listener. One registry per proxy instance, so
 * tests and embedders can run several in one process. Labels are bounded: operation names come
 * from the WSDL, outcomes from the error catalogue, clusters from the configuration; no
 * consumer, connection or session id ever becomes a label.
 */
import type { ResourceUsage } from '../lifetime/lifetimes';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type LimiterDecision = 'ok' | 'over_limit' | 'shaped' | 'notify' | 'error' | 'fail_open';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'operation' | 'outcome'>;
  readonly proxySeconds: Histogram<'operation'>;
  readonly gridSeconds: Histogram<'operation'>;
  readonly limiter: Counter<'scope' | 'decision'>;
  readonly validations: Counter<'direction' | 'result'>;
  readonly gridConnections: Gauge<'cluster'>;
  readonly policyReloads: Counter<'trigger' | 'result'>;
  readonly policyLastReloadFailed: Gauge;
  readonly policyLastReloadTime: Gauge;
  readonly policyServiceVersions: Gauge;
  readonly terminations: Counter<'kind' | 'cause' | 'outcome'>;
  readonly applicationCalls: Counter<'application' | 'operation' | 'outcome'>;
  readonly resourcesOpened: Counter<'kind' | 'application'>;
  readonly resourcesEnded: Counter<'kind' | 'application' | 'cause'>;
  readonly notificationsQueued: Counter<'result'>;
  readonly notificationsSent: Counter<'outcome'>;
  readonly notifySeconds: Histogram;
  readonly outputsCollected: Counter;

  constructor(gridStatus: () => { cluster: string; connected: number }[]) {
    const registers = [this.registry];
    // Standard names (process_*, nodejs_*), so the usual Node.js dashboards and alerts work as they are.
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'ssp_requests_total',
      help: 'SOAP calls by operation and outcome (ok or the fault code)',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.proxySeconds = new Histogram({
      name: 'ssp_proxy_duration_seconds',
      help: 'Time spent in the proxy per call, excluding the wait for the grid',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.gridSeconds = new Histogram({
      name: 'ssp_grid_duration_seconds',
      help: 'Time spent waiting for the grid per call',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.limiter = new Counter({
      name: 'ssp_limiter_decisions_total',
      help: 'Rate-limit decisions: ok, over_limit (refused), shaped (delayed then admitted), notify (over a notify-only limit), error (store unreachable, failed closed), fail_open (store unreachable, admitted)',
      labelNames: ['scope', 'decision'],
      registers,
    });
    this.validations = new Counter({
      name: 'ssp_payload_validations_total',
      help: 'Typed XML task payloads validated against a service version schema',
      labelNames: ['direction', 'result'],
      registers,
    });
    this.gridConnections = new Gauge({
      name: 'ssp_grid_connections',
      help: 'Live TCP connections to each grid cluster',
      labelNames: ['cluster'],
      registers,
      collect() {
        for (const s of gridStatus()) this.set({ cluster: s.cluster }, s.connected);
      },
    });
    this.policyReloads = new Counter({
      name: 'ssp_policy_reloads_total',
      help: 'SLA control file loads by trigger (start, file, signal, admin) and result (ok, unchanged, error)',
      labelNames: ['trigger', 'result'],
      registers,
    });
    this.policyLastReloadFailed = new Gauge({
      name: 'ssp_policy_last_reload_failed',
      help: '1 while the last reload of the SLA control file failed (the previous policy stays in effect); the error is on /readyz',
      registers,
    });
    this.policyLastReloadTime = new Gauge({
      name: 'ssp_policy_last_reload_timestamp_seconds',
      help: 'When the SLA control file was last (re)loaded or rejected',
      registers,
    });
    this.policyServiceVersions = new Gauge({
      name: 'ssp_policy_service_versions',
      help: 'Service versions in the policy in effect',
      registers,
    });
    this.terminations = new Counter({
      name: 'ssp_resource_terminations_total',
      help: 'Connections and sessions ended by this proxy because their lifetime ran out, by kind, cause (idle) and outcome (destroyed, detached, gone: the grid no longer knew it, retry: the grid could not be reached and another sweep will try)',
      labelNames: ['kind', 'cause', 'outcome'],
      registers,
    });
    // Usage per application. Summed over the farm's proxies, opened minus ended is the number
    // of active resources: any proxy may open a resource and another end it.
    this.applicationCalls = new Counter({
      name: 'ssp_application_calls_total',
      help: 'Calls on a connection or session of an application, by application, operation and outcome (ok or the fault code)',
      labelNames: ['application', 'operation', 'outcome'],
      registers,
    });
    this.resourcesOpened = new Counter({
      name: 'ssp_resources_opened_total',
      help: 'Connections and sessions opened through this proxy, by kind and application',
      labelNames: ['kind', 'application'],
      registers,
    });
    this.resourcesEnded = new Counter({
      name: 'ssp_resources_ended_total',
      help: 'Connections and sessions ended through this proxy, by kind, application and cause (client: closed or destroyed by its client; idle: its idle lease ran out; scheduled: the termination time its client set came; gone: the grid no longer knew it)',
      labelNames: ['kind', 'application', 'cause'],
      registers,
    });
    this.notificationsQueued = new Counter({
      name: 'ssp_notifications_queued_total',
      help: 'Notification messages published to subscriptions (queued), or not (dropped: a queue was full; failed: the store could not take them)',
      labelNames: ['result'],
      registers,
    });
    this.notificationsSent = new Counter({
      name: 'ssp_notifications_sent_total',
      help: 'Notification messages sent by this proxy in Notify calls, by outcome (delivered, retry: the attempt failed and will be repeated, dead: moved to the dead letters)',
      labelNames: ['outcome'],
      registers,
    });
    this.notifySeconds = new Histogram({
      name: 'ssp_notify_seconds',
      help: 'Time of one Notify call to a consumer, answered or not',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.outputsCollected = new Counter({
      name: 'ssp_notification_outputs_collected_total',
      help: 'Task outputs collected from the grid for subscribed sessions',
      registers,
    });
  }

  /** The usage counters as the lifetime bookkeeping reports to them. */
  resourceUsage(): ResourceUsage {
    return {
      opened: (kind, application) =>
        this.resourcesOpened.inc({ kind, application: application ?? 'unknown' }),
      ended: (kind, application, cause) =>
        this.resourcesEnded.inc({ kind, application: application ?? 'unknown', cause }),
    };
  }
}
