import { expect } from 'chai';
import fc from 'fast-check';
import {
  APEL_JOB_HEADER,
  APEL_SUMMARY_HEADER,
  asciiValue,
  checkAccountingMessage,
  jobRecordProblems,
  summaryRecordProblems,
  writeApelJobs,
  writeApelSummaries,
} from './apel';
import type { JobRecord, SummaryRecord } from './records';

/** 2026-03-15T12:00:00Z: every time below is relative to it, never to the real clock. */
const NOW_MS = Date.UTC(2026, 2, 15, 12);
const NOW_S = NOW_MS / 1000;

function job(over: Partial<JobRecord> = {}): JobRecord {
  return {
    site: 'BANK-GRID-LON',
    submitHost: 'cluster-a',
    machineName: 'node17.grid.bank',
    queue: 'pricing-app',
    localJobId: 'cluster-a:s42:t1009',
    globalUserName: '/C=UK/O=Bank/OU=Rates/CN=svc-pricing',
    vo: 'rates',
    wallDuration: 124,
    cpuDuration: 117,
    processors: 1,
    nodeCount: 1,
    startTime: NOW_S - 3600,
    endTime: NOW_S - 3476,
    infrastructureType: 'grid',
    serviceLevelType: 'HEPscore23',
    serviceLevel: 12.5,
    status: 'completed',
    ...over,
  };
}

function summary(over: Partial<SummaryRecord> = {}): SummaryRecord {
  return {
    site: 'BANK-GRID-LON',
    month: 2,
    year: 2026,
    globalUserName: '/C=UK/O=Bank/CN=svc-pricing',
    vo: 'rates',
    submitHost: 'cluster-a/pricing-app',
    infrastructureType: 'grid',
    serviceLevelType: 'HEPSPEC',
    serviceLevel: 10,
    nodeCount: 1,
    processors: 1,
    earliestEndTime: Date.UTC(2026, 1, 1, 3) / 1000,
    latestEndTime: Date.UTC(2026, 1, 27, 18) / 1000,
    wallDuration: 360000,
    cpuDuration: 350000,
    numberOfJobs: 2900,
    ...over,
  };
}

/** A message with one record written by hand, for the rules our writers never break. */
function jobMessage(lines: string[]): string {
  return `${APEL_JOB_HEADER}\n${lines.join('\n')}\n%%\n`;
}

const VALID_LINES = [
  'Site: S',
  'LocalJobId: j1',
  'WallDuration: 10',
  'CpuDuration: 9',
  `StartTime: ${NOW_S - 100}`,
  `EndTime: ${NOW_S - 90}`,
];

function problemsOf(text: string): string[] {
  return checkAccountingMessage(text, NOW_MS).problems;
}

describe('accounting: APEL message writers and the loader checks', () => {
  describe('writers', () => {
    it('writes the v0.3 header, APEL field order, epoch seconds and %% after each record', () => {
      const text = writeApelJobs([job(), job({ localJobId: 'cluster-a:s42:t1010' })]);
      const lines = text.split('\n');
      expect(lines[0]).to.equal(APEL_JOB_HEADER);
      expect(lines.slice(1, 18)).to.deep.equal([
        'Site: BANK-GRID-LON',
        'SubmitHost: cluster-a',
        'MachineName: node17.grid.bank',
        'Queue: pricing-app',
        'LocalJobId: cluster-a:s42:t1009',
        'GlobalUserName: /C=UK/O=Bank/OU=Rates/CN=svc-pricing',
        'VO: rates',
        'WallDuration: 124',
        'CpuDuration: 117',
        'Processors: 1',
        'NodeCount: 1',
        `StartTime: ${NOW_S - 3600}`,
        `EndTime: ${NOW_S - 3476}`,
        'InfrastructureType: grid',
        'ServiceLevelType: HEPscore23',
        'ServiceLevel: 12.5',
        '%%',
      ]);
      expect(text.match(/^%%$/gm)).to.have.length(2);
      expect(text).not.to.include('\r');
      expect(text.endsWith('%%\n')).to.equal(true);
    });

    it('omits undefined optional fields and never writes an exponent', () => {
      const text = writeApelJobs([
        job({ machineName: undefined, vo: undefined, globalUserName: undefined, serviceLevel: 1e-7 }),
      ]);
      expect(text).not.to.match(/MachineName|VO:|GlobalUserName/);
      expect(text).to.include('ServiceLevel: 0.0000001\n');
      expect(writeApelJobs([job({ serviceLevel: 2.5e-10, memoryReal: 1e21 })])).to.include(
        'MemoryReal: 1000000000000000000000\n',
      );
    });

    it('writes the v0.2 summary header and its field order', () => {
      const text = writeApelSummaries([summary()]);
      const keys = text
        .split('\n')
        .slice(1)
        .filter((l) => l.includes(':'))
        .map((l) => l.slice(0, l.indexOf(':')));
      expect(text.split('\n')[0]).to.equal(APEL_SUMMARY_HEADER);
      expect(keys).to.deep.equal([
        'Site',
        'Month',
        'Year',
        'GlobalUserName',
        'VO',
        'SubmitHost',
        'InfrastructureType',
        'ServiceLevelType',
        'ServiceLevel',
        'NodeCount',
        'Processors',
        'EarliestEndTime',
        'LatestEndTime',
        'WallDuration',
        'CpuDuration',
        'NumberOfJobs',
      ]);
    });
  });

  describe('round trips through the loader check', () => {
    it('reads back the same fields from a job message with no problems', () => {
      const r = job({ localUserId: 'svc01', voGroup: '/rates/fx', voRole: 'Role=pricer', memoryReal: 2048 });
      const check = checkAccountingMessage(writeApelJobs([r]), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.kind).to.equal('apel-job');
      expect(check.records).to.have.length(1);
      expect(check.records[0]).to.include({
        Site: r.site,
        LocalJobId: r.localJobId,
        LocalUserId: 'svc01',
        VOGroup: '/rates/fx',
        VORole: 'Role=pricer',
        WallDuration: '124',
        MemoryReal: '2048',
        EndTime: String(r.endTime),
      });
    });

    it('reads back a summary message with no problems', () => {
      const check = checkAccountingMessage(writeApelSummaries([summary(), summary({ vo: 'fx' })]), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.kind).to.equal('apel-summary');
      expect(check.records.map((f) => f.VO)).to.deep.equal(['rates', 'fx']);
      expect(check.records[0]!.NumberOfJobs).to.equal('2900');
    });

    it('takes 1,000 records in one message', () => {
      const records = Array.from({ length: 1000 }, (_, i) => job({ localJobId: `cluster-a:s1:t${i}` }));
      const check = checkAccountingMessage(writeApelJobs(records), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records).to.have.length(1000);
      expect(check.records[999]!.LocalJobId).to.equal('cluster-a:s1:t999');
    });

    it('refuses more than 1,000 records in one message', () => {
      const records = Array.from({ length: 1001 }, (_, i) => job({ localJobId: `t${i}` }));
      expect(problemsOf(writeApelJobs(records)).join('\n')).to.include('at most 1000');
    });

    it('keeps any string value intact through write and read (property)', () => {
      // Values are what the writer produces: asciiValue of any Unicode string.
      fc.assert(
        fc.property(
          // Short enough that even escaped 4-byte characters fit the columns (255, Queue 100).
          fc.string({ unit: 'binary', maxLength: 20 }),
          fc.string({ unit: 'binary', maxLength: 8 }),
          fc.nat({ max: 1_000_000 }),
          (dn, queue, wall) => {
            const r = job({ globalUserName: dn, queue, wallDuration: wall, cpuDuration: wall });
            const check = checkAccountingMessage(writeApelJobs([r]), NOW_MS);
            expect(check.problems).to.deep.equal([]);
            expect(check.records).to.have.length(1);
            const back = check.records[0]!;
            const expectValue = (v: string): string | undefined =>
              asciiValue(v) === '' ? undefined : asciiValue(v);
            expect(back.GlobalUserName).to.equal(expectValue(dn));
            expect(back.Queue).to.equal(expectValue(queue));
            expect(back.WallDuration).to.equal(String(wall));
            expect(back.Site).to.equal('BANK-GRID-LON');
          },
        ),
        { numRuns: 300, seed: 15 },
      );
    });
  });

  describe('asciiValue and framing', () => {
    it('escapes a UTF-8 DN as OpenSSL-style \\XX bytes, so the message stays ASCII', () => {
      expect(asciiValue('/C=DE/O=Bank/CN=Zoë Müller')).to.equal('/C=DE/O=Bank/CN=Zo\\C3\\AB M\\C3\\BCller');
      expect(asciiValue('CN=日本')).to.equal('CN=\\E6\\97\\A5\\E6\\9C\\AC');
      expect(asciiValue('tab\there\x7f')).to.equal('tab\\09here\\7F');
      expect(asciiValue('plain /C=UK/CN=a:b')).to.equal('plain /C=UK/CN=a:b');
      const text = writeApelJobs([job({ globalUserName: '/C=DE/CN=Zoë' })]);
      expect(/^\p{ASCII}*$/u.test(text)).to.equal(true);
      const check = checkAccountingMessage(text, NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records[0]!.GlobalUserName).to.equal('/C=DE/CN=Zo\\C3\\AB');
    });

    it('reports a message that is not ASCII', () => {
      const text = jobMessage(VALID_LINES.map((l) => (l.startsWith('Site') ? 'Site: Zoë' : l)));
      expect(problemsOf(text).join('\n')).to.include('non-ASCII');
    });

    it('a value with a newline cannot inject a key', () => {
      const r = job({
        queue: 'q\nServiceLevelType: bogus\r\nLocalJobId: other',
        machineName: 'm\u2028VO: x',
      });
      const check = checkAccountingMessage(writeApelJobs([r]), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records).to.have.length(1);
      expect(check.records[0]!.LocalJobId).to.equal(r.localJobId);
      expect(check.records[0]!.ServiceLevelType).to.equal('HEPscore23');
      expect(check.records[0]!.Queue).to.equal('q\\0AServiceLevelType: bogus\\0D\\0ALocalJobId: other');
    });

    it('a value with %% cannot split a record', () => {
      const r = job({ localJobId: 'a%%b%%%c', vo: '%%' });
      const check = checkAccountingMessage(writeApelJobs([r]), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records).to.have.length(1);
      expect(check.records[0]!.LocalJobId).to.equal('a\\25%b\\25\\25%c');
      expect(check.records[0]!.LocalJobId).not.to.include('%%');
    });

    it('keeps leading and trailing spaces that the loader would strip', () => {
      expect(asciiValue(' x ')).to.equal('\\20x\\20');
      const check = checkAccountingMessage(writeApelJobs([job({ vo: ' rates ' })]), NOW_MS);
      expect(check.records[0]!.VO).to.equal('\\20rates\\20');
    });
  });

  describe('the loader rules (one failing case each)', () => {
    it('accepts the hand-written valid record', () => {
      expect(problemsOf(jobMessage(VALID_LINES))).to.deep.equal([]);
    });

    it('rejects an unknown key, keys being case-sensitive, but takes the ignored ones', () => {
      expect(problemsOf(jobMessage([...VALID_LINES, 'Colour: blue'])).join()).to.include(
        'unknown field "Colour"',
      );
      expect(problemsOf(jobMessage([...VALID_LINES, 'vo: x'])).join()).to.include('unknown field "vo"');
      expect(problemsOf(jobMessage([...VALID_LINES, '__proto__: x'])).join()).to.include(
        'unknown field "__proto__"',
      );
      expect(problemsOf(jobMessage([...VALID_LINES, 'SubmitHostType: x', 'UpdateTime: y']))).to.deep.equal(
        [],
      );
    });

    it('rejects a missing mandatory field and the null spellings in one', () => {
      const withoutSite = VALID_LINES.filter((l) => !l.startsWith('Site'));
      expect(problemsOf(jobMessage(withoutSite)).join()).to.include('Site is missing or null');
      for (const nullish of ['None', 'NULL', '']) {
        const lines = VALID_LINES.map((l) => (l.startsWith('LocalJobId') ? `LocalJobId: ${nullish}` : l));
        expect(problemsOf(jobMessage(lines)).join()).to.include('LocalJobId is missing or null');
      }
      expect(jobRecordProblems(job({ site: 'none' }), NOW_MS).join()).to.include('Site is missing or null');
    });

    it('rejects a non-integer duration', () => {
      const lines = VALID_LINES.map((l) => (l.startsWith('WallDuration') ? 'WallDuration: 12.5' : l));
      expect(problemsOf(jobMessage(lines)).join()).to.include('WallDuration "12.5" is not an integer');
      expect(jobRecordProblems(job({ cpuDuration: 1.5 }), NOW_MS).join()).to.include('CpuDuration "1.5"');
      expect(jobRecordProblems(job({ wallDuration: -1 }), NOW_MS).join()).to.include(
        'WallDuration is negative',
      );
    });

    it('rejects EndTime before StartTime', () => {
      const p = jobRecordProblems(job({ startTime: NOW_S - 10, endTime: NOW_S - 20 }), NOW_MS);
      expect(p.join()).to.include('EndTime');
      expect(p.join()).to.include('before StartTime');
    });

    it('rejects an EndTime more than 2 days ahead, and allows one just inside', () => {
      const twoDays = 2 * 86400;
      expect(jobRecordProblems(job({ endTime: NOW_S + twoDays + 1 }), NOW_MS).join()).to.include('future');
      expect(jobRecordProblems(job({ endTime: NOW_S + twoDays }), NOW_MS)).to.deep.equal([]);
    });

    it('reads times as epoch seconds or ISO with Z, and rejects other forms', () => {
      const iso = VALID_LINES.map((l) => (l.startsWith('EndTime') ? 'EndTime: 2026-03-15T11:59:00Z' : l));
      expect(problemsOf(jobMessage(iso))).to.deep.equal([]);
      const bad = VALID_LINES.map((l) => (l.startsWith('EndTime') ? 'EndTime: yesterday' : l));
      expect(problemsOf(jobMessage(bad)).join()).to.include('EndTime "yesterday" is not a time');
    });

    it('rejects a bad benchmark type, and a type or level alone', () => {
      expect(jobRecordProblems(job({ serviceLevelType: 'SPECint' }), NOW_MS).join()).to.include(
        'not one APEL accepts',
      );
      expect(jobRecordProblems(job({ serviceLevelType: 'hepspec' }), NOW_MS)).to.deep.equal([]);
      expect(jobRecordProblems(job({ serviceLevelType: 'SI2K' }), NOW_MS)).to.deep.equal([]);
      expect(jobRecordProblems(job({ serviceLevel: undefined }), NOW_MS).join()).to.include(
        'without ServiceLevel',
      );
      expect(jobRecordProblems(job({ serviceLevelType: undefined }), NOW_MS).join()).to.include(
        'without ServiceLevelType',
      );
      expect(
        jobRecordProblems(job({ serviceLevelType: undefined, serviceLevel: undefined }), NOW_MS),
      ).to.deep.equal([]);
    });

    it('checks the column lengths', () => {
      expect(jobRecordProblems(job({ localJobId: 'x'.repeat(255) }), NOW_MS)).to.deep.equal([]);
      expect(jobRecordProblems(job({ localJobId: 'x'.repeat(256) }), NOW_MS).join()).to.include(
        'LocalJobId has 256',
      );
      expect(jobRecordProblems(job({ infrastructureType: 'x'.repeat(21) }), NOW_MS).join()).to.include(
        'holds 20',
      );
      expect(
        jobRecordProblems(job({ infrastructureDescription: 'x'.repeat(101) }), NOW_MS).join(),
      ).to.include('holds 100');
      // A UTF-8 character becomes six ASCII characters, and the escaped form is what is stored.
      expect(jobRecordProblems(job({ globalUserName: 'é'.repeat(50) }), NOW_MS).join()).to.include(
        'GlobalUserName has 300',
      );
    });

    it('one bad record gives problems for the whole message, naming the record', () => {
      const records = [job({ localJobId: 'good-1' }), job({ localJobId: 'bad', wallDuration: 0.5 }), job()];
      const check = checkAccountingMessage(writeApelJobs(records), NOW_MS);
      expect(check.records).to.have.length(3);
      expect(check.problems).to.have.length(1);
      expect(check.problems[0]).to.match(/^record 2 \(LocalJobId "bad"\): WallDuration/);
    });

    it('rejects a line without a colon, including a blank line inside a record', () => {
      expect(problemsOf(jobMessage([...VALID_LINES, 'just words'])).join()).to.include('has no "Key: Value"');
      expect(problemsOf(jobMessage([VALID_LINES[0]!, '', ...VALID_LINES.slice(1)])).join()).to.include(
        'has no "Key: Value"',
      );
    });

    it('splits each line at the first colon, so values may hold colons', () => {
      const lines = [...VALID_LINES, 'GlobalUserName: /C=UK/CN=host:8443', 'VO:rates'];
      const check = checkAccountingMessage(jobMessage(lines), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records[0]).to.include({ GlobalUserName: '/C=UK/CN=host:8443', VO: 'rates' });
    });
  });

  describe('summary rules', () => {
    it('accepts a valid summary', () => {
      expect(summaryRecordProblems(summary(), NOW_MS)).to.deep.equal([]);
    });

    it('rejects a month out of range or in the future', () => {
      expect(summaryRecordProblems(summary({ month: 13 }), NOW_MS).join()).to.include('Month is 1-12');
      expect(summaryRecordProblems(summary({ month: 0 }), NOW_MS).join()).to.include('Month is 1-12');
      expect(summaryRecordProblems(summary({ month: 4 }), NOW_MS).join()).to.include('in the future');
    });

    it('rejects end times outside the month or out of order', () => {
      const feb = (d: number): number => Date.UTC(2026, 1, d) / 1000;
      expect(summaryRecordProblems(summary({ latestEndTime: feb(1) - 1 }), NOW_MS).join()).to.include(
        'LatestEndTime',
      );
      const swapped = summaryRecordProblems(
        summary({ earliestEndTime: feb(20), latestEndTime: feb(10) }),
        NOW_MS,
      );
      expect(swapped.join()).to.include('after LatestEndTime');
      // The first second of the next month is still inside, as in the loader.
      expect(
        summaryRecordProblems(summary({ latestEndTime: Date.UTC(2026, 2, 1) / 1000 }), NOW_MS),
      ).to.deep.equal([]);
    });

    it('rejects negative or fractional totals and a bad benchmark type', () => {
      expect(summaryRecordProblems(summary({ cpuDuration: -5 }), NOW_MS).join()).to.include(
        'CpuDuration is negative',
      );
      expect(summaryRecordProblems(summary({ numberOfJobs: 2.5 }), NOW_MS).join()).to.include('NumberOfJobs');
      expect(summaryRecordProblems(summary({ serviceLevelType: 'bogomips' }), NOW_MS).join()).to.include(
        'not one APEL accepts',
      );
    });

    it('rejects job keys in a summary message', () => {
      const text = `${APEL_SUMMARY_HEADER}\nSite: S\nMonth: 1\nYear: 2026\nWallDuration: 1\nCpuDuration: 1\nNumberOfJobs: 1\nLocalJobId: x\n%%\n`;
      expect(problemsOf(text).join()).to.include('unknown field "LocalJobId"');
    });
  });

  describe('headers and garbage', () => {
    it('recognises job messages by type and summaries by the whole header', () => {
      expect(
        checkAccountingMessage(jobMessage(VALID_LINES).replace('v0.3', 'v0.2'), NOW_MS).problems,
      ).to.deep.equal([]);
      expect(problemsOf(jobMessage(VALID_LINES).replace('v0.3', 'v0.4')).join()).to.include('v0.4');
      const summaryNoSpace = writeApelSummaries([summary()]).replace(
        APEL_SUMMARY_HEADER,
        'APEL-summary-job-message:v0.2',
      );
      expect(problemsOf(summaryNoSpace).join()).to.include('is not a kind we send');
      expect(problemsOf(writeApelSummaries([summary()]).replace('v0.2', 'v0.3')).join()).to.include(
        'is not a kind we send',
      );
    });

    it('gives problems, never an exception, for garbage', () => {
      const garbage = [
        '',
        '   ',
        'hello',
        '%%%%',
        'APEL-individual-job-message: v0.3',
        '<',
        '<a/>',
        '\u0000\uffff',
        ':',
      ];
      for (const text of garbage) {
        const check = checkAccountingMessage(text, NOW_MS);
        expect(check.problems, JSON.stringify(text)).to.have.length.greaterThan(0);
      }
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
          const check = checkAccountingMessage(APEL_JOB_HEADER + '\n' + text, NOW_MS);
          expect(check.kind).to.equal('apel-job');
          expect(check.problems).to.be.an('array');
        }),
        { numRuns: 200, seed: 15 },
      );
    });
  });
});
