/**
 * From a finished task to its usage record. Everything that identifies or times the record comes
 * from the grid (its ids, its usage report), never from this proxy's clock, so that an output the
 * grid hands out twice, to this proxy or another, yields a byte-identical record.
 */
import type { ProxyConfig } from '../config';
import { slashDn } from '../security/dn';
import type { UsageClaim } from '../store/accounting-store';
import type { JobRecord, SummaryRecord, TaskUsage } from './records';
import { createHash } from 'node:crypto';

type AccountingConfig = ProxyConfig['accounting'];

/** What a record needs to know about the session a task ran in. */
export interface SessionFacts {
  sessionId: string;
  cluster: string;
  /** The consumer id that owns the session. */
  owner: string;
  application: string | undefined;
  /** RFC 4514 subject of the consumer's certificate, when known. */
  subject: string | undefined;
}

export interface FinishedTask {
  taskId: string;
  successful: boolean;
  usage?: TaskUsage | undefined;
}

/** APEL keeps LocalJobId in a VARCHAR(255): a longer id is shortened to a stable digest. */
const MAX_JOB_ID = 255;

export function localJobId(cluster: string, sessionId: string, taskId: string): string {
  const id = `${cluster}:${sessionId}:${taskId}`;
  if (id.length <= MAX_JOB_ID) return id;
  return `${cluster.slice(0, 100)}:sha256:${createHash('sha256').update(id).digest('hex')}`;
}

export class RecordMaker {
  private readonly clusters: Map<string, AccountingConfig['clusters'][number]>;
  private readonly consumers: Map<string, AccountingConfig['consumers'][number]>;

  constructor(private readonly cfg: AccountingConfig) {
    this.clusters = new Map(cfg.clusters.map((c) => [c.name, c]));
    this.consumers = new Map(cfg.consumers.map((c) => [c.consumer, c]));
  }

  /** The record of one task, or undefined when the grid reported no usage for it. */
  job(s: SessionFacts, t: FinishedTask): JobRecord | undefined {
    const u = t.usage;
    if (!u || !(u.endTimeMs > 0)) return undefined;
    const cluster = this.clusters.get(s.cluster);
    const who = this.consumers.get(s.owner) ?? (s.subject ? this.consumers.get(s.subject) : undefined);
    const startTime = Math.floor(Math.max(0, u.startTimeMs) / 1000);
    const endTime = Math.max(startTime, Math.floor(u.endTimeMs / 1000));
    const r: JobRecord = {
      site: this.cfg.site ?? '',
      submitHost: cluster?.submitHost ?? s.cluster,
      queue: s.application ?? 'unknown',
      localJobId: localJobId(s.cluster, s.sessionId, t.taskId),
      wallDuration: Math.max(0, Math.round((u.endTimeMs - u.startTimeMs) / 1000)),
      cpuDuration: Math.max(0, Math.round(u.cpuTimeMs / 1000)),
      processors: u.processors > 0 ? u.processors : 1,
      nodeCount: 1,
      startTime,
      endTime,
      infrastructureType: this.cfg.infrastructureType,
      infrastructureDescription: this.cfg.infrastructureDescription,
      status: t.successful ? 'completed' : 'failed',
    };
    if (u.machine) r.machineName = u.machine;
    r.globalUserName = s.subject ? slashDn(s.subject) : s.owner;
    const vo = who?.vo ?? this.cfg.defaultVo;
    if (vo) r.vo = vo;
    if (who?.voGroup) r.voGroup = who.voGroup;
    if (who?.voRole) r.voRole = who.voRole;
    if (who?.localUserId) r.localUserId = who.localUserId;
    if (u.maxRssKb > 0) r.memoryReal = u.maxRssKb;
    if (u.maxVmemKb > 0) r.memoryVirtual = u.maxVmemKb;
    if (cluster?.serviceLevelType && cluster.serviceLevel !== undefined) {
      r.serviceLevelType = cluster.serviceLevelType;
      r.serviceLevel = cluster.serviceLevel;
    }
    return r;
  }
}

/** The fields that make one monthly summary: consumer × application (and what APEL groups by). */
interface SummaryGroup {
  globalUserName?: string;
  vo?: string;
  voGroup?: string;
  voRole?: string;
  submitHost: string;
  infrastructureType?: string;
  serviceLevelType?: string;
  serviceLevel?: number;
  processors: number;
  nodeCount: number;
}

/** `YYYY-MM` (UTC) of epoch seconds. */
export function monthOf(epochSeconds: number): string {
  if (epochSeconds >= monthCache.from && epochSeconds < monthCache.to) return monthCache.month;
  const d = new Date(epochSeconds * 1000);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  // Records of one batch nearly always share a month: remember its bounds.
  monthCache.from = Date.UTC(y, m, 1) / 1000;
  monthCache.to = Date.UTC(y, m + 1, 1) / 1000;
  monthCache.month = `${String(y).padStart(4, '0')}-${String(m + 1).padStart(2, '0')}`;
  return monthCache.month;
}
const monthCache = { from: 0, to: 0, month: '' };

/** What a record adds to its month's totals; the group is the same JSON on every proxy. */
export function claimOf(r: JobRecord): UsageClaim {
  return {
    id: r.localJobId,
    month: monthOf(r.endTime),
    group: groupOf(r),
    wallSeconds: r.wallDuration,
    cpuSeconds: r.cpuDuration,
    endTime: r.endTime,
  };
}

/** The last group written: the records of a batch come in runs from the same session. */
let lastGroup: { key: readonly unknown[]; json: string } | undefined;

function groupOf(r: JobRecord): string {
  const key = [
    r.globalUserName,
    r.vo,
    r.voGroup,
    r.voRole,
    r.submitHost,
    r.queue,
    r.infrastructureType,
    r.serviceLevelType,
    r.serviceLevel,
    r.processors,
    r.nodeCount,
  ] as const;
  if (lastGroup && key.every((v, i) => v === lastGroup!.key[i])) return lastGroup.json;
  const g: SummaryGroup = {
    globalUserName: r.globalUserName,
    vo: r.vo,
    voGroup: r.voGroup,
    voRole: r.voRole,
    submitHost: `${r.submitHost}/${r.queue}`,
    infrastructureType: r.infrastructureType,
    serviceLevelType: r.serviceLevelType,
    serviceLevel: r.serviceLevel,
    processors: r.processors,
    nodeCount: r.nodeCount,
  };
  lastGroup = { key, json: JSON.stringify(g) };
  return lastGroup.json;
}

/** A month's totals as summary records. */
export function summariesOf(
  site: string,
  month: string,
  totals: {
    group: string;
    jobs: number;
    wallSeconds: number;
    cpuSeconds: number;
    earliestEnd: number;
    latestEnd: number;
  }[],
): SummaryRecord[] {
  const [year, mon] = month.split('-').map(Number) as [number, number];
  return totals.map((t) => {
    const g = JSON.parse(t.group) as SummaryGroup;
    const s: SummaryRecord = {
      site,
      month: mon,
      year,
      submitHost: g.submitHost,
      earliestEndTime: t.earliestEnd,
      latestEndTime: t.latestEnd,
      wallDuration: t.wallSeconds,
      cpuDuration: t.cpuSeconds,
      numberOfJobs: t.jobs,
      processors: g.processors,
      nodeCount: g.nodeCount,
    };
    if (g.globalUserName) s.globalUserName = g.globalUserName;
    if (g.vo) s.vo = g.vo;
    if (g.voGroup) s.voGroup = g.voGroup;
    if (g.voRole) s.voRole = g.voRole;
    if (g.infrastructureType) s.infrastructureType = g.infrastructureType;
    if (g.serviceLevelType && g.serviceLevel !== undefined) {
      s.serviceLevelType = g.serviceLevelType;
      s.serviceLevel = g.serviceLevel;
    }
    return s;
  });
}
