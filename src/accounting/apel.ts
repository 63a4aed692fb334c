/**
 * APEL message writers (individual job v0.3, summary v0.2) and the receiver-side checks: what
 * the APEL loader (`apel/db/loader/record_factory.py`, `apel/db/records/*.py`) and the columns
 * it writes to (`schemas/server.sql`) would do with a message. docs/design/accounting.md 1, 2, 7.
 *
 * The checks matter because one bad record makes the loader reject the whole message (up to
 * 1,000 records), so every record is checked with the same rules before it is batched.
 */
import { DOMParser, type Element, type Node } from '@xmldom/xmldom';
import { MAX_RECORDS_PER_MESSAGE, type JobRecord, type SummaryRecord } from './records';

export const APEL_JOB_HEADER = 'APEL-individual-job-message: v0.3';
export const APEL_SUMMARY_HEADER = 'APEL-summary-job-message: v0.2';
/** EMI CAR 1.2; car.ts re-exports it. It lives here because the receiver-side check reads CAR. */
export const CAR_NS = 'http://eu-emi.eu/namespaces/2012/11/computerecord';

export type AccountingMessageKind = 'apel-job' | 'apel-summary' | 'car';

export interface AccountingMessageCheck {
  /** A best guess when the header is not recognised (then `problems` says so). */
  kind: AccountingMessageKind;
  /** Per record, the APEL keys and values as the loader reads them (CAR: mapped to APEL keys). */
  records: Record<string, string>[];
  /** Empty: the loader would accept the message. Otherwise it would reject all of it. */
  problems: string[];
}

// ---------------------------------------------------------------------------------------------
// Field tables (order = APEL's `_msg_fields`, which is also the order the writers use)

type FieldType = 'string' | 'int' | 'float' | 'datetime';

interface FieldSpec {
  key: string;
  type: FieldType;
  mandatory?: boolean;
  /** VARCHAR length of the column (or of the stored-procedure parameter, when shorter). */
  maxLength?: number;
  /** Largest value the column or procedure parameter holds (INT: 2^31 - 1). */
  max?: bigint;
}

const INT_MAX = 2n ** 31n - 1n;
const BIGINT_MAX = 2n ** 63n - 1n;
/** DECIMAL(10,3). */
const SERVICE_LEVEL_LIMIT = 1e7;
const VALID_BENCHMARKS = ['si2k', 'hepspec', 'hepscore23'];
const TWO_DAYS_MS = 2 * 24 * 3600 * 1000;
/** Printable ASCII without `%`: such a value is written as it is (asciiValue leaves it alone). */
const PLAIN_VALUE = /^[\x21-\x24\x26-\x7e](?:[\x20-\x24\x26-\x7e]*[\x21-\x24\x26-\x7e])?$/;

const str = (key: string, maxLength = 255, mandatory = false): FieldSpec => ({
  key,
  type: 'string',
  maxLength,
  mandatory,
});
const int = (key: string, max: bigint, mandatory = false): FieldSpec => ({
  key,
  type: 'int',
  max,
  mandatory,
});

// Job procedure parameters are INT, so durations and memory stop at 2^31 - 1 (ReplaceJobRecord).
const JOB_FIELDS: readonly FieldSpec[] = [
  str('Site', 255, true),
  str('SubmitHost'),
  str('MachineName'),
  str('Queue', 100),
  str('LocalJobId', 255, true),
  str('LocalUserId'),
  str('GlobalUserName'),
  str('FQAN'),
  str('VO'),
  str('VOGroup'),
  str('VORole'),
  int('WallDuration', INT_MAX, true),
  int('CpuDuration', INT_MAX, true),
  int('Processors', INT_MAX),
  int('NodeCount', INT_MAX),
  { key: 'StartTime', type: 'datetime', mandatory: true },
  { key: 'EndTime', type: 'datetime', mandatory: true },
  str('InfrastructureDescription', 100),
  str('InfrastructureType', 20),
  int('MemoryReal', INT_MAX),
  int('MemoryVirtual', INT_MAX),
  str('ServiceLevelType', 50),
  { key: 'ServiceLevel', type: 'float' },
];
const JOB_IGNORED = ['SubmitHostType', 'UpdateTime'];

const SUMMARY_FIELDS: readonly FieldSpec[] = [
  str('Site', 255, true),
  int('Month', INT_MAX, true),
  int('Year', INT_MAX, true),
  str('GlobalUserName'),
  str('VO'),
  str('VOGroup'),
  str('VORole'),
  str('SubmitHost'),
  str('InfrastructureType', 20),
  str('InfrastructureDescription', 100),
  str('ServiceLevelType', 50),
  { key: 'ServiceLevel', type: 'float' },
  int('NodeCount', INT_MAX),
  int('Processors', INT_MAX),
  { key: 'EarliestEndTime', type: 'datetime' },
  { key: 'LatestEndTime', type: 'datetime' },
  int('WallDuration', BIGINT_MAX, true),
  int('CpuDuration', BIGINT_MAX, true),
  int('NumberOfJobs', INT_MAX, true),
];
const SUMMARY_IGNORED = ['UpdateTime'];

// ---------------------------------------------------------------------------------------------
// ASCII values

/**
 * Makes a value safe for a message. SSM decodes message bodies as ASCII (`body.decode('ascii')`
 * in ssm2.py), so a single UTF-8 byte would make the receiver reject the whole message. Non-ASCII
 * and control characters become OpenSSL's RFC 2253-style `\XX` escapes of their UTF-8 bytes
 * (`CN=Zoë` → `CN=Zo\C3\AB`). That also escapes line breaks, so a value cannot start a new
 * `Key:` line; a `%` followed by another `%` is escaped (`\25`) so a value cannot split a record;
 * leading and trailing spaces are escaped because the loader strips them. Printable ASCII is
 * left alone, so the mapping is not reversible for values that already contain `\XX`.
 */
export function asciiValue(s: string): string {
  if (PLAIN_VALUE.test(s)) return s;
  if (/^[\x20-\x7e]*$/.test(s) && !s.includes('%%') && !/^ | $/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    out += c >= 0x20 && c < 0x7f ? ch : hexEscape(ch);
  }
  return out
    .replace(/%(?=%)/g, '\\25')
    .replace(/^ /, '\\20')
    .replace(/ $/, '\\20');
}

function hexEscape(ch: string): string {
  let out = '';
  for (const b of Buffer.from(ch, 'utf8')) out += '\\' + b.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writers

type Entries = [key: string, value: string | undefined][];

/** Integers in decimal, never with an exponent; a non-integer is written as is for the checks to catch. */
export function intText(n: number): string {
  // String() of a safe integer never uses an exponent; BigInt only for the rare larger ones.
  return Number.isSafeInteger(n) ? String(n) : Number.isInteger(n) ? BigInt(n).toString() : String(n);
}

/** A plain decimal (`0.0000001`, not `1e-7`): APEL's `float()` reads both, MySQL DECIMAL may not. */
export function decimalText(n: number): string {
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, lead, frac = '', expText] = m;
  const exp = Number(expText);
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${lead}${frac}`;
  return sign + lead + frac + '0'.repeat(exp - frac.length);
}

const optInt = (n: number | undefined): string | undefined => (n === undefined ? undefined : intText(n));

function jobEntries(r: JobRecord): Entries {
  return [
    ['Site', r.site],
    ['SubmitHost', r.submitHost],
    ['MachineName', r.machineName],
    ['Queue', r.queue],
    ['LocalJobId', r.localJobId],
    ['LocalUserId', r.localUserId],
    ['GlobalUserName', r.globalUserName],
    // No FQAN: it would overwrite VO/VOGroup/VORole on the receiver (parse_fqan).
    ['VO', r.vo],
    ['VOGroup', r.voGroup],
    ['VORole', r.voRole],
    ['WallDuration', intText(r.wallDuration)],
    ['CpuDuration', intText(r.cpuDuration)],
    ['Processors', intText(r.processors)],
    ['NodeCount', intText(r.nodeCount)],
    ['StartTime', intText(r.startTime)],
    ['EndTime', intText(r.endTime)],
    ['InfrastructureDescription', r.infrastructureDescription],
    ['InfrastructureType', r.infrastructureType],
    ['MemoryReal', optInt(r.memoryReal)],
    ['MemoryVirtual', optInt(r.memoryVirtual)],
    ['ServiceLevelType', r.serviceLevelType],
    ['ServiceLevel', r.serviceLevel === undefined ? undefined : decimalText(r.serviceLevel)],
  ];
}

function summaryEntries(r: SummaryRecord): Entries {
  return [
    ['Site', r.site],
    ['Month', intText(r.month)],
    ['Year', intText(r.year)],
    ['GlobalUserName', r.globalUserName],
    ['VO', r.vo],
    ['VOGroup', r.voGroup],
    ['VORole', r.voRole],
    ['SubmitHost', r.submitHost],
    ['InfrastructureType', r.infrastructureType],
    ['ServiceLevelType', r.serviceLevelType],
    ['ServiceLevel', r.serviceLevel === undefined ? undefined : decimalText(r.serviceLevel)],
    ['NodeCount', optInt(r.nodeCount)],
    ['Processors', optInt(r.processors)],
    ['EarliestEndTime', intText(r.earliestEndTime)],
    ['LatestEndTime', intText(r.latestEndTime)],
    ['WallDuration', intText(r.wallDuration)],
    ['CpuDuration', intText(r.cpuDuration)],
    ['NumberOfJobs', intText(r.numberOfJobs)],
  ];
}

/** The fields as they go on the wire: ASCII-safe, empty optional values left out. */
function wireFields(entries: Entries): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    const v = asciiValue(value);
    if (v !== '') out[key] = v;
  }
  return out;
}

function writeMessage(header: string, records: Record<string, string>[]): string {
  let out = header + '\n';
  for (const fields of records) {
    for (const key in fields) out += `${key}: ${fields[key]}\n`;
    out += '%%\n';
  }
  return out;
}

/** An `APEL-individual-job-message: v0.3`. Check each record with jobRecordProblems first. */
export function writeApelJobs(records: readonly JobRecord[]): string {
  return writeMessage(
    APEL_JOB_HEADER,
    records.map((r) => wireFields(jobEntries(r))),
  );
}

/** An `APEL-summary-job-message: v0.2`. Check each record with summaryRecordProblems first. */
export function writeApelSummaries(records: readonly SummaryRecord[]): string {
  return writeMessage(
    APEL_SUMMARY_HEADER,
    records.map((r) => wireFields(summaryEntries(r))),
  );
}

// ---------------------------------------------------------------------------------------------
// Record checks (shared by our pre-send checks and the message check)

/** A job record as the loader would see it, in either format. */
export function jobRecordProblems(r: JobRecord, nowMs: number): string[] {
  return fieldProblems('apel-job', wireFields(jobEntries(r)), nowMs);
}

const INT_MAX_NUMBER = Number(INT_MAX);

/**
 * The common case of jobRecordProblems at a fraction of its cost (it runs on the grid path for
 * every record): true only when the record is certainly valid. Anything unusual (escapes, a
 * value near a limit, a missing field) answers false, and the caller runs the full check.
 */
export function jobRecordLooksValid(r: JobRecord, nowMs: number): boolean {
  const ints = [r.wallDuration, r.cpuDuration, r.processors, r.nodeCount, r.memoryReal, r.memoryVirtual];
  for (const n of ints)
    if (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= INT_MAX_NUMBER)) return false;
  if (!(Number.isInteger(r.startTime) && Number.isInteger(r.endTime) && r.startTime > 0)) return false;
  if (r.endTime < r.startTime || r.endTime * 1000 > nowMs + TWO_DAYS_MS) return false;
  const strings: [string | undefined, number][] = [
    [r.site, 255],
    [r.submitHost, 255],
    [r.machineName, 255],
    [r.queue, 100],
    [r.localJobId, 255],
    [r.localUserId, 255],
    [r.globalUserName, 255],
    [r.vo, 255],
    [r.voGroup, 255],
    [r.voRole, 255],
    [r.infrastructureDescription, 100],
    [r.infrastructureType, 20],
  ];
  if (!r.site || !r.localJobId) return false;
  for (const [v, max] of strings)
    if (v !== undefined && (v.length > max || !PLAIN_VALUE.test(v))) return false;
  if ((r.serviceLevelType === undefined) !== (r.serviceLevel === undefined)) return false;
  if (r.serviceLevelType !== undefined) {
    if (!VALID_BENCHMARKS.includes(r.serviceLevelType.toLowerCase())) return false;
    if (!(r.serviceLevel! > 0 && r.serviceLevel! < 1e6)) return false;
  }
  return true;
}

export function summaryRecordProblems(r: SummaryRecord, nowMs: number): string[] {
  return fieldProblems('apel-summary', wireFields(summaryEntries(r)), nowMs);
}

type Parsed = Map<string, string | bigint | number>;

function fieldProblems(
  kind: 'apel-job' | 'apel-summary',
  fields: Record<string, string>,
  nowMs: number,
): string[] {
  const specs = kind === 'apel-job' ? JOB_FIELDS : SUMMARY_FIELDS;
  const ignored = kind === 'apel-job' ? JOB_IGNORED : SUMMARY_IGNORED;
  const problems: string[] = [];
  for (const key of Object.keys(fields)) {
    if (!specs.some((s) => s.key === key) && !ignored.includes(key)) {
      problems.push(
        `unknown field ${show(key)}: remove it (keys are case-sensitive; APEL rejects the message)`,
      );
    }
  }
  const parsed: Parsed = new Map();
  for (const spec of specs) {
    const raw = fields[spec.key];
    if (raw === undefined || isNull(raw)) {
      if (spec.mandatory) problems.push(`${spec.key} is missing or null: it is mandatory, set it`);
      continue;
    }
    const result = parseField(spec, raw);
    if (typeof result === 'string') problems.push(result);
    else parsed.set(spec.key, result.value);
  }
  if (kind === 'apel-job') problems.push(...benchmarkProblems(parsed), ...jobTimeProblems(parsed, nowMs));
  else problems.push(...benchmarkProblems(parsed), ...summaryTimeProblems(parsed, nowMs));
  return problems;
}

/** APEL's `check_for_null`. */
function isNull(v: string): boolean {
  const l = v.toLowerCase();
  return l === '' || l === 'none' || l === 'null';
}

function parseField(spec: FieldSpec, raw: string): { value: string | bigint | number } | string {
  switch (spec.type) {
    case 'string':
      if (spec.maxLength !== undefined && raw.length > spec.maxLength) {
        return `${spec.key} has ${raw.length} characters; the APEL column holds ${spec.maxLength}: shorten it`;
      }
      return { value: raw };
    case 'int':
      return parseIntField(spec, raw);
    case 'float':
      return parseServiceLevel(spec.key, raw);
    case 'datetime': {
      const t = parseApelTime(raw);
      return t === undefined
        ? `${spec.key} ${show(raw)} is not a time: write whole epoch seconds (UTC) or YYYY-MM-DDTHH:MM:SSZ`
        : { value: t };
    }
  }
}

/** Python's `int()` on a stripped string: optional sign, digits, single underscores between digits. */
const PY_INT = /^[+-]?\d+(?:_\d+)*$/;

function parseIntField(spec: FieldSpec, raw: string): { value: bigint } | string {
  if (!PY_INT.test(raw))
    return `${spec.key} ${show(raw)} is not an integer: write whole numbers only (no unit, no fraction)`;
  const n = BigInt(raw.replace(/_/g, ''));
  if (n < 0n)
    return `${spec.key} is negative (${n}): the APEL column is unsigned; report 0 or fix the source`;
  if (spec.max !== undefined && n > spec.max)
    return `${spec.key} ${n} is larger than the APEL column holds (${spec.max})`;
  return { value: n };
}

const PY_FLOAT = /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?$/;

function parseServiceLevel(key: string, raw: string): { value: number } | string {
  if (!PY_FLOAT.test(raw)) return `${key} ${show(raw)} is not a number: write a plain decimal such as 12.5`;
  const n = Number(raw.replace(/_/g, ''));
  if (!(n >= 0 && n < SERVICE_LEVEL_LIMIT)) {
    return `${key} ${show(raw)} is outside the APEL column DECIMAL(10,3): use a value from 0 to 9999999.999`;
  }
  return { value: n };
}

/** Smallest and largest epoch seconds Python's `datetime` holds (years 1-9999). */
const MIN_EPOCH = -62135596800;
const MAX_EPOCH = 253402300799;

/** Whole epoch seconds, or the loader's ISO form `%Y-%m-%dT%H:%M:%S%Z` with `Z` meaning UTC. */
function parseApelTime(raw: string): number | undefined {
  if (PY_INT.test(raw)) {
    const n = Number(raw.replace(/_/g, ''));
    return n >= MIN_EPOCH && n <= MAX_EPOCH ? n : undefined;
  }
  const m = /^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:Z|UTC|GMT)$/.exec(raw);
  return m ? utcSeconds(m.slice(1, 7).map(Number)) : undefined;
}

/** Epoch seconds of a UTC calendar time, or undefined when a part is out of range. */
function utcSeconds([y, mo, d, h, mi, s]: number[]): number | undefined {
  const ms = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  const back = new Date(ms);
  const same =
    back.getUTCFullYear() === y &&
    back.getUTCMonth() === mo! - 1 &&
    back.getUTCDate() === d &&
    back.getUTCHours() === h &&
    back.getUTCMinutes() === mi &&
    back.getUTCSeconds() === s;
  return same ? ms / 1000 : undefined;
}

function benchmarkProblems(p: Parsed): string[] {
  const type = p.get('ServiceLevelType');
  const level = p.get('ServiceLevel');
  if (type === undefined && level === undefined) return [];
  if (type === undefined) return ['ServiceLevel is set without ServiceLevelType: set both or neither'];
  if (level === undefined) return ['ServiceLevelType is set without ServiceLevel: set both or neither'];
  if (!VALID_BENCHMARKS.includes(String(type).toLowerCase())) {
    return [
      `ServiceLevelType ${show(String(type))} is not one APEL accepts: use HEPSPEC, si2k or HEPscore23`,
    ];
  }
  return [];
}

function jobTimeProblems(p: Parsed, nowMs: number): string[] {
  const start = p.get('StartTime');
  const end = p.get('EndTime');
  if (typeof start !== 'number' || typeof end !== 'number') return [];
  const problems: string[] = [];
  if (end < start) problems.push(`EndTime ${end} is before StartTime ${start}: use the grid's task times`);
  if (end * 1000 > nowMs + TWO_DAYS_MS) {
    problems.push(`EndTime ${end} is more than 2 days in the future: check the grid's clock`);
  }
  return problems;
}

function summaryTimeProblems(p: Parsed, nowMs: number): string[] {
  const month = p.get('Month');
  const year = p.get('Year');
  if (typeof month !== 'bigint' || typeof year !== 'bigint') return [];
  if (month < 1n || month > 12n || year < 1n || year > 9999n) {
    return [`Month ${month} / Year ${year} is not a calendar month: Month is 1-12`];
  }
  const startMs = Date.UTC(Number(year), Number(month) - 1, 1);
  const endMs = Date.UTC(Number(year), Number(month), 1);
  const problems: string[] = [];
  if (startMs > nowMs)
    problems.push(`Month ${year}-${month} is in the future: summarise past or current months only`);
  const earliest = p.get('EarliestEndTime');
  const latest = p.get('LatestEndTime');
  // The loader compares these only when both are present.
  if (typeof earliest !== 'number' || typeof latest !== 'number') return problems;
  for (const [key, t] of [
    ['EarliestEndTime', earliest],
    ['LatestEndTime', latest],
  ] as const) {
    if (t * 1000 < startMs || t * 1000 > endMs) {
      problems.push(`${key} ${t} is not within ${year}-${month}: summarise each month's jobs separately`);
    }
  }
  if (earliest > latest)
    problems.push(`EarliestEndTime ${earliest} is after LatestEndTime ${latest}: swap them`);
  return problems;
}

/** Quotes a value for a problem message, short, so a message never carries a whole payload. */
function show(v: string): string {
  return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
}

// ---------------------------------------------------------------------------------------------
// Message check

const MAX_PROBLEMS = 50;

/**
 * What the receiver would do with a message we are about to send (or that sits in our queue):
 * non-empty `problems` means the whole message would be rejected. Never throws.
 */
export function checkAccountingMessage(text: string, nowMs: number): AccountingMessageCheck {
  let result: AccountingMessageCheck;
  try {
    result = checkMessage(text, nowMs);
  } catch (e) {
    // A bug here must not stop a sender; report it as a problem with the message instead.
    const kind: AccountingMessageKind = text.trim().startsWith('<') ? 'car' : 'apel-job';
    result = { kind, records: [], problems: [`the message could not be checked: ${String(e)}`] };
  }
  if (result.problems.length > MAX_PROBLEMS) {
    const more = result.problems.length - MAX_PROBLEMS;
    result.problems = [...result.problems.slice(0, MAX_PROBLEMS), `… and ${more} more problems`];
  }
  return result;
}

function checkMessage(text: string, nowMs: number): AccountingMessageCheck {
  const body = text.trim();
  const problems: string[] = [];
  const nonAscii = /[^\p{ASCII}]/u.exec(text);
  if (nonAscii) {
    problems.push(
      `the message has a non-ASCII character at offset ${nonAscii.index}: SSM decodes bodies as ASCII; pass values through asciiValue`,
    );
  }
  if (body.startsWith('<')) return withRecordChecks('car', readCar(body), problems, nowMs);
  const [header = '', ...rest] = splitPythonLines(body);
  const kind = headerKind(header);
  if (typeof kind === 'string') {
    const records = splitApelRecords(rest.join('\n'));
    return withRecordChecks(kind, records, problems, nowMs);
  }
  problems.push(kind.problem);
  return { kind: header.includes('summary') ? 'apel-summary' : 'apel-job', records: [], problems };
}

/** As record_factory.py: job messages by type (any version but v0.4), summaries by the whole header. */
function headerKind(header: string): 'apel-job' | 'apel-summary' | { problem: string } {
  const colon = header.indexOf(':');
  if (colon < 0) {
    return {
      problem: `the first line ${show(header)} is not an APEL header: start with ${show(APEL_JOB_HEADER)}`,
    };
  }
  const type = header.slice(0, colon).trim();
  const version = header.slice(colon).replace(/^[:\s]+|[:\s]+$/g, '');
  if (type === 'APEL-individual-job-message') {
    if (version !== 'v0.4') return 'apel-job';
    return { problem: `job messages v0.4 are not what we send: use ${show(APEL_JOB_HEADER)}` };
  }
  if (header.trim() === APEL_SUMMARY_HEADER) return 'apel-summary';
  return {
    problem: `header ${show(header)} is not a kind we send: use ${show(APEL_JOB_HEADER)} or ${show(APEL_SUMMARY_HEADER)}`,
  };
}

/** Python's `str.splitlines()` boundaries, since a value must not break a line anywhere the loader does. */
function splitPythonLines(s: string): string[] {
  // eslint-disable-next-line no-control-regex -- these control characters are line breaks to Python
  const lines = s.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

interface ReadRecords {
  records: Record<string, string>[];
  /** Problems that stop a record from being read at all (the loader raises before checking it). */
  problems: string[];
}

/** `%%` splitting and `Key: Value` lines, as `_create_record_objects` and `load_from_msg`. */
function splitApelRecords(text: string): ReadRecords {
  const records: Record<string, string>[] = [];
  const problems: string[] = [];
  for (const piece of text.trim().split('%%')) {
    if (piece.trim() === '') continue;
    const fields: Record<string, string> = {};
    for (const line of splitPythonLines(piece.trim())) {
      const colon = line.indexOf(':');
      if (colon < 0) {
        problems.push(
          `record ${records.length + 1}: line ${show(line)} has no "Key: Value": every line needs a colon (no blank lines inside a record)`,
        );
        continue;
      }
      // defineProperty, so that a key such as `__proto__` is kept (and reported) like any other.
      Object.defineProperty(fields, line.slice(0, colon).trim(), {
        value: line.slice(colon + 1).trim(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    records.push(fields);
  }
  return { records, problems };
}

function withRecordChecks(
  kind: AccountingMessageKind,
  read: ReadRecords,
  problems: string[],
  nowMs: number,
): AccountingMessageCheck {
  problems.push(...read.problems);
  if (read.records.length === 0 && read.problems.length === 0) {
    problems.push('the message has no records: do not send empty messages');
  }
  if (read.records.length > MAX_RECORDS_PER_MESSAGE) {
    problems.push(
      `the message has ${read.records.length} records; at most ${MAX_RECORDS_PER_MESSAGE} per message: split it`,
    );
  }
  read.records.forEach((fields, i) => {
    const label = `record ${i + 1}${fields.LocalJobId ? ` (LocalJobId ${show(fields.LocalJobId)})` : ''}`;
    const rules = kind === 'apel-summary' ? 'apel-summary' : 'apel-job';
    for (const p of fieldProblems(rules, fields, nowMs)) problems.push(`${label}: ${p}`);
  });
  return { kind, records: read.records, problems };
}

// ---------------------------------------------------------------------------------------------
// CAR reading, as apel/db/loader/car_parser.py (and xml_parser.py) do it

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const PROCESSING_INSTRUCTION_NODE = 7;

function readCar(text: string): ReadRecords {
  let root: Element;
  try {
    root = parseCarRoot(text);
  } catch (e) {
    return { records: [], problems: [e instanceof Error ? e.message : String(e)] };
  }
  const cars = carElements(root).get('UsageRecord') ?? [];
  if (cars.length === 0) {
    return { records: [], problems: ['the CAR message has no urf:UsageRecord: write at least one record'] };
  }
  const records: Record<string, string>[] = [];
  const problems: string[] = [];
  cars.forEach((car, i) => {
    const read = readCarRecord(car);
    records.push(read.fields);
    for (const p of read.problems) problems.push(`record ${i + 1}: ${p}`);
  });
  return { records, problems };
}

/** Strict well-formedness like expat; the first node must be the root (minidom's `firstChild`). */
function parseCarRoot(text: string): Element {
  let doc;
  try {
    // No locator: line numbers cost a quarter of the parse time, and problems do not need them.
    const parser = new DOMParser({
      locator: false,
      onError: (level, message) => {
        throw new Error(`${level}: ${message}`);
      },
    });
    doc = parser.parseFromString(text, 'text/xml');
  } catch (e) {
    throw new Error(
      `the CAR message is not well-formed XML (${e instanceof Error ? e.message : String(e)}): fix the writer`,
      { cause: e },
    );
  }
  let first: Node | null = doc.firstChild;
  // xmldom keeps the XML declaration and the white space after it as nodes; minidom does not.
  if (first?.nodeType === PROCESSING_INSTRUCTION_NODE && first.nodeName === 'xml') first = first.nextSibling;
  while (first?.nodeType === TEXT_NODE && /^\s*$/.test(first.nodeValue ?? '')) first = first.nextSibling;
  if (first?.nodeType !== ELEMENT_NODE) {
    throw new Error(
      'the XML message must start with its root element (no DOCTYPE, comment or PI): fix the writer',
    );
  }
  const root = first as Element;
  if (root.namespaceURI !== CAR_NS) {
    throw new Error(
      `the root element is in namespace ${show(root.namespaceURI ?? '')}, not CAR's ${CAR_NS}: fix the writer`,
    );
  }
  return root;
}

/**
 * The CAR elements at and below `top` by local name, in document order: what minidom's
 * getElementsByTagNameNS finds, in one walk (xmldom's live lists cost a walk per lookup).
 */
function carElements(top: Element): Map<string, Element[]> {
  const found = new Map<string, Element[]>();
  const stack: Node[] = [top];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.nodeType !== ELEMENT_NODE) continue;
    const el = n as Element;
    if (el.namespaceURI === CAR_NS && el.localName) {
      const list = found.get(el.localName);
      if (list) list.push(el);
      else found.set(el.localName, [el]);
    }
    for (let c = el.lastChild; c; c = c.previousSibling) stack.push(c);
  }
  return found;
}

/** Direct text children only, as `XMLParser.getText` (CDATA sections are not read). */
function textOf(el: Element | undefined): string | undefined {
  if (!el) return undefined;
  let s = '';
  for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === TEXT_NODE) s += n.nodeValue ?? '';
  return s;
}

/** A `urf:`-qualified attribute; minidom returns '' when it is absent, and so do we. */
function attrOf(el: Element | undefined, name: string): string | undefined {
  if (!el) return undefined;
  return el.hasAttributeNS(CAR_NS, name) ? (el.getAttributeNS(CAR_NS, name) ?? '') : '';
}

function withAttr(els: Element[], name: string, value: string): Element[] {
  return els.filter((e) => e.hasAttributeNS(CAR_NS, name) && e.getAttributeNS(CAR_NS, name) === value);
}

function readCarRecord(car: Element): { fields: Record<string, string>; problems: string[] } {
  const byName = carElements(car);
  const all = (tag: string): Element[] => byName.get(tag) ?? [];
  const first = (tag: string): Element | undefined => all(tag)[0];
  const groupAttr = (type: string): string | undefined =>
    textOf(withAttr(all('GroupAttribute'), 'type', type)[0]);
  const problems: string[] = [];
  const duration = (key: string, iso: string | undefined): string | undefined => {
    if (iso === undefined) return undefined;
    const s = isoDurationSeconds(iso);
    // The parser swallows the failure; the record then lacks a mandatory field.
    if (s === undefined) problems.push(`${key} ${show(iso)} is not an ISO 8601 duration: write PT<seconds>S`);
    return s === undefined ? undefined : String(s);
  };
  const time = (key: string, iso: string | undefined): string | undefined => {
    if (iso === undefined) return undefined;
    const s = isoTimestampSeconds(iso);
    if (s === undefined)
      problems.push(`${key} ${show(iso)} is not an ISO 8601 time: write YYYY-MM-DDTHH:MM:SSZ`);
    return s === undefined ? undefined : String(s);
  };
  const candidates: Entries = [
    ['Site', textOf(first('Site'))],
    ['SubmitHost', textOf(first('SubmitHost'))],
    ['MachineName', textOf(first('MachineName'))],
    ['Queue', textOf(first('Queue'))],
    ['LocalJobId', textOf(first('LocalJobId'))],
    ['LocalUserId', textOf(first('LocalUserId'))],
    ['GlobalUserName', textOf(first('GlobalUserName'))],
    ['FQAN', groupAttr('FQAN')],
    ['VO', textOf(first('Group'))],
    // car_parser reads `group` and `role`, although APEL's own writer emits `vo-group`/`vo-role`.
    ['VOGroup', groupAttr('group')],
    ['VORole', groupAttr('role')],
    ['WallDuration', duration('WallDuration', textOf(first('WallDuration')))],
    ['CpuDuration', duration('CpuDuration', cpuText(all('CpuDuration')))],
    ['Processors', textOf(first('Processors'))],
    ['NodeCount', textOf(first('NodeCount'))],
    ['StartTime', time('StartTime', textOf(first('StartTime')))],
    ['EndTime', time('EndTime', textOf(first('EndTime')))],
    ['InfrastructureDescription', attrOf(first('Infrastructure'), 'description')],
    ['InfrastructureType', attrOf(first('Infrastructure'), 'type')],
    // The parser sets MemoryReal/MemoryVirtual to None: CAR memory never reaches APEL.
    ['ServiceLevelType', attrOf(first('ServiceLevel'), 'type')],
    ['ServiceLevel', textOf(first('ServiceLevel'))],
  ];
  const fields: Record<string, string> = {};
  // An empty value is NULL to the loader, the same as an absent element.
  for (const [key, value] of candidates) if (value !== undefined && value !== '') fields[key] = value;
  return { fields, problems };
}

/** `retrieve_cpu`: the one `usageType="all"`, else the first; two "all"s read as nothing. */
function cpuText(nodes: Element[]): string | undefined {
  const all = withAttr(nodes, 'usageType', 'all');
  if (all.length === 1) return textOf(all[0]);
  if (all.length === 0) return textOf(nodes[0]);
  return '';
}

/** `iso2seconds`: P[nY][nM][nW][nD][T][nH][nM][n[.n]S], years 365 days, months 2628000 s. */
function isoDurationSeconds(iso: string): number | undefined {
  const m = /^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?T?(\d+H)?(\d+M)?(\d+[.,]?\d*S)?$/.exec(iso);
  if (!m) return undefined;
  const n = (g: string | undefined): number =>
    g ? roundHalfEven(Number(g.slice(0, -1).replace(',', '.'))) : 0;
  return (
    n(m[1]) * 31536000 +
    n(m[2]) * 2628000 +
    n(m[3]) * 604800 +
    n(m[4]) * 86400 +
    n(m[5]) * 3600 +
    n(m[6]) * 60 +
    n(m[7])
  );
}

/** Python 3's `round()`. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** `iso8601.parse_date` for the forms a CAR writer uses; no zone means UTC. Whole seconds. */
function isoTimestampSeconds(iso: string): number | undefined {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(
      iso,
    );
  if (!m) return undefined;
  const base = utcSeconds([m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number));
  if (base === undefined) return undefined;
  return base - zoneOffsetSeconds(m[7]);
}

function zoneOffsetSeconds(zone: string | undefined): number {
  if (!zone || zone === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2) || '0') * 60);
}
