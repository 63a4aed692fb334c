/**
 * EMI CAR 1.2 writer for job records (docs/design/accounting.md 2, 6.1). Elements and attribute
 * types are the ones APEL's car_parser.py reads; no stored copy of car_v1.2.xsd was found, so
 * element order follows APEL's own writer (`JobRecord.get_ur`).
 */
import { escapeAttr, escapeText } from '../soap/xml';
import { asciiValue, CAR_NS, decimalText, intText } from './apel';
import type { JobRecord } from './records';

export { CAR_NS };

/**
 * One `urf:UsageRecords` document. Every attribute is `urf:`-qualified: the parser reads them
 * with getAttributeNS, so an unprefixed attribute is silently not found. Values go through
 * asciiValue, so the message is ASCII and a DN is the same string as in an APEL message.
 */
export function writeCarJobs(records: readonly JobRecord[]): string {
  let out = `<?xml version="1.0" encoding="UTF-8"?>\n<urf:UsageRecords xmlns:urf="${CAR_NS}">\n`;
  for (const r of records) out += usageRecord(r) + '\n';
  return out + '</urf:UsageRecords>\n';
}

type Attrs = Record<string, string | undefined>;

function el(name: string, text: string | undefined, attrs: Attrs = {}): string {
  if (text === undefined) return '';
  return `<urf:${name}${attrText(attrs)}>${escapeText(asciiValue(text))}</urf:${name}>`;
}

function attrText(attrs: Attrs): string {
  let s = '';
  for (const name in attrs) {
    const v = attrs[name];
    if (v !== undefined) s += ` urf:${name}="${escapeAttr(asciiValue(v))}"`;
  }
  return s;
}

/** ISO 8601 duration in whole seconds, the form APEL writes (`PT117S`). */
function duration(seconds: number): string {
  return `PT${intText(seconds)}S`;
}

/** `YYYY-MM-DDTHH:MM:SSZ`; the record's times are whole epoch seconds. */
function isoTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  // An impossible time is written as is, for the checks to report rather than the writer to throw.
  if (Number.isNaN(d.getTime())) return String(epochSeconds);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function usageRecord(r: JobRecord): string {
  const known = (kb: number | undefined): boolean => kb !== undefined && kb > 0;
  const hasInfra = r.infrastructureType !== undefined || r.infrastructureDescription !== undefined;
  const hasLevel = r.serviceLevelType !== undefined || r.serviceLevel !== undefined;
  return (
    '<urf:UsageRecord>' +
    // Both identity values come from the record, so a re-sent record is byte-identical.
    `<urf:RecordIdentity${attrText({ recordId: r.localJobId, createTime: isoTime(r.endTime) })}/>` +
    `<urf:JobIdentity>${el('LocalJobId', r.localJobId)}</urf:JobIdentity>` +
    userIdentity(r) +
    el('Status', r.status) +
    (hasInfra
      ? `<urf:Infrastructure${attrText({ type: r.infrastructureType, description: r.infrastructureDescription })}/>`
      : '') +
    el('WallDuration', duration(r.wallDuration)) +
    el('CpuDuration', duration(r.cpuDuration), { usageType: 'all' }) +
    (hasLevel
      ? el('ServiceLevel', r.serviceLevel === undefined ? '' : decimalText(r.serviceLevel), {
          type: r.serviceLevelType,
        })
      : '') +
    (known(r.memoryReal)
      ? el('Memory', intText(r.memoryReal!), { type: 'Physical', storageUnit: 'KB' })
      : '') +
    (known(r.memoryVirtual)
      ? el('Memory', intText(r.memoryVirtual!), { type: 'Shared', storageUnit: 'KB' })
      : '') +
    el('NodeCount', intText(r.nodeCount)) +
    el('Processors', intText(r.processors)) +
    el('EndTime', isoTime(r.endTime)) +
    el('StartTime', isoTime(r.startTime)) +
    el('MachineName', r.machineName) +
    el('SubmitHost', r.submitHost) +
    el('Queue', r.queue) +
    el('Site', r.site) +
    '</urf:UsageRecord>'
  );
}

function userIdentity(r: JobRecord): string {
  return (
    '<urf:UserIdentity>' +
    el('GlobalUserName', r.globalUserName, { type: 'opensslCompat' }) +
    el('Group', r.vo) +
    // `group` and `role` are the types car_parser.py reads (APEL's writer says vo-group/vo-role).
    el('GroupAttribute', r.voGroup, { type: 'group' }) +
    el('GroupAttribute', r.voRole, { type: 'role' }) +
    el('LocalUserId', r.localUserId) +
    '</urf:UserIdentity>'
  );
}
