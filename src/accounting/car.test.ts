import { DOMParser, type Element } from '@xmldom/xmldom';
import { expect } from 'chai';
import { checkAccountingMessage, writeApelJobs } from './apel';
import { CAR_NS, writeCarJobs } from './car';
import type { JobRecord } from './records';

const NOW_MS = Date.UTC(2026, 2, 15, 12);
const NOW_S = NOW_MS / 1000;

function job(over: Partial<JobRecord> = {}): JobRecord {
  return {
    site: 'BANK-GRID-LON',
    submitHost: 'cluster-a',
    machineName: 'node17.grid.bank',
    queue: 'pricing-app',
    localJobId: 'cluster-a:s42:t1009',
    localUserId: 'svc01',
    globalUserName: '/C=UK/O=Bank/OU=Rates/CN=svc-pricing',
    vo: 'rates',
    voGroup: '/rates/fx',
    voRole: 'Role=pricer',
    wallDuration: 3725,
    cpuDuration: 117,
    processors: 4,
    nodeCount: 1,
    startTime: NOW_S - 7200,
    endTime: NOW_S - 3475,
    infrastructureType: 'grid',
    infrastructureDescription: 'symphony',
    memoryReal: 2048,
    memoryVirtual: 4096,
    serviceLevelType: 'HEPscore23',
    serviceLevel: 12.5,
    status: 'completed',
    ...over,
  };
}

function parse(xml: string): Element {
  return new DOMParser().parseFromString(xml, 'text/xml').documentElement!;
}

function elements(root: Element): Element[] {
  return Array.from(root.getElementsByTagName('*'));
}

/** A CAR document with one record body written by hand. */
function car(body: string): string {
  return `<urf:UsageRecords xmlns:urf="${CAR_NS}"><urf:UsageRecord>${body}</urf:UsageRecord></urf:UsageRecords>`;
}

const MANDATORY = [
  '<urf:Site>S</urf:Site>',
  '<urf:JobIdentity><urf:LocalJobId>j1</urf:LocalJobId></urf:JobIdentity>',
  '<urf:WallDuration>PT10S</urf:WallDuration>',
  '<urf:CpuDuration urf:usageType="all">PT9S</urf:CpuDuration>',
  '<urf:StartTime>2026-03-15T11:00:00Z</urf:StartTime>',
  '<urf:EndTime>2026-03-15T11:00:10Z</urf:EndTime>',
].join('');

describe('accounting: CAR writer, read back as APEL car_parser.py does', () => {
  it('round trips to the same APEL fields as the APEL message, less memory', () => {
    const r = job();
    const viaCar = checkAccountingMessage(writeCarJobs([r]), NOW_MS);
    const viaApel = checkAccountingMessage(writeApelJobs([r]), NOW_MS);
    expect(viaCar.problems).to.deep.equal([]);
    expect(viaCar.kind).to.equal('car');
    const { MemoryReal, MemoryVirtual, ...apelWithoutMemory } = viaApel.records[0]!;
    expect([MemoryReal, MemoryVirtual]).to.deep.equal(['2048', '4096']);
    expect(viaCar.records).to.deep.equal([apelWithoutMemory]);
  });

  it('writes one urf:UsageRecords root, ISO 8601 durations and Z times', () => {
    const xml = writeCarJobs([job(), job({ localJobId: 'cluster-a:s42:t1010', status: 'failed' })]);
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<urf:UsageRecords ')).to.equal(true);
    const root = parse(xml);
    expect([root.namespaceURI, root.localName]).to.deep.equal([CAR_NS, 'UsageRecords']);
    const records = root.getElementsByTagNameNS(CAR_NS, 'UsageRecord');
    expect(records.length).to.equal(2);
    const text = (tag: string, i = 0): string | null | undefined =>
      root.getElementsByTagNameNS(CAR_NS, tag)[i]?.textContent;
    expect(text('WallDuration')).to.equal('PT3725S');
    expect(text('CpuDuration')).to.equal('PT117S');
    expect(text('StartTime')).to.equal(new Date((NOW_S - 7200) * 1000).toISOString().replace('.000Z', 'Z'));
    expect(text('EndTime')).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect([text('Status', 0), text('Status', 1)]).to.deep.equal(['completed', 'failed']);
    const identity = root.getElementsByTagNameNS(CAR_NS, 'RecordIdentity')[0]!;
    expect(identity.getAttributeNS(CAR_NS, 'recordId')).to.equal('cluster-a:s42:t1009');
    expect(identity.getAttributeNS(CAR_NS, 'createTime')).to.equal(text('EndTime'));
    const cpu = root.getElementsByTagNameNS(CAR_NS, 'CpuDuration')[0]!;
    expect(cpu.getAttributeNS(CAR_NS, 'usageType')).to.equal('all');
  });

  it('qualifies every attribute and element with the CAR namespace', () => {
    const root = parse(writeCarJobs([job()]));
    for (const el of [root, ...elements(root)]) {
      expect(el.namespaceURI, el.nodeName).to.equal(CAR_NS);
      for (const a of Array.from(el.attributes)) {
        if (a.name.startsWith('xmlns')) continue;
        expect(a.namespaceURI, `${el.nodeName}/@${a.name}`).to.equal(CAR_NS);
        expect(a.prefix).to.equal('urf');
      }
    }
    const memory = root.getElementsByTagNameNS(CAR_NS, 'Memory');
    expect(
      Array.from(memory).map((m) => [
        m.getAttributeNS(CAR_NS, 'type'),
        m.getAttributeNS(CAR_NS, 'storageUnit'),
      ]),
    ).to.deep.equal([
      ['Physical', 'KB'],
      ['Shared', 'KB'],
    ]);
    const dn = root.getElementsByTagNameNS(CAR_NS, 'GlobalUserName')[0]!;
    expect(dn.getAttributeNS(CAR_NS, 'type')).to.equal('opensslCompat');
  });

  it('writes group attributes with the types the parser reads (group, role)', () => {
    const root = parse(writeCarJobs([job()]));
    const types = Array.from(root.getElementsByTagNameNS(CAR_NS, 'GroupAttribute')).map((g) =>
      g.getAttributeNS(CAR_NS, 'type'),
    );
    expect(types).to.deep.equal(['group', 'role']);
    const check = checkAccountingMessage(writeCarJobs([job()]), NOW_MS);
    expect(check.records[0]).to.include({ VO: 'rates', VOGroup: '/rates/fx', VORole: 'Role=pricer' });
  });

  it('leaves out unknown memory and optional parts', () => {
    const xml = writeCarJobs([
      job({
        memoryReal: 0,
        memoryVirtual: undefined,
        machineName: undefined,
        serviceLevelType: undefined,
        serviceLevel: undefined,
      }),
    ]);
    expect(xml).not.to.match(/Memory|MachineName|ServiceLevel/);
    expect(checkAccountingMessage(xml, NOW_MS).problems).to.deep.equal([]);
  });

  it('escapes markup and keeps the document ASCII', () => {
    const r = job({ globalUserName: '/C=DE/O=A&B <"x">/CN=Zoë', queue: 'q\n<urf:Site>evil</urf:Site>' });
    const xml = writeCarJobs([r]);
    expect(/^\p{ASCII}*$/u.test(xml)).to.equal(true);
    const check = checkAccountingMessage(xml, NOW_MS);
    expect(check.problems).to.deep.equal([]);
    expect(check.records[0]).to.include({
      GlobalUserName: '/C=DE/O=A&B <"x">/CN=Zo\\C3\\AB',
      Queue: 'q\\0A<urf:Site>evil</urf:Site>',
      Site: 'BANK-GRID-LON',
    });
  });

  it('takes 1,000 records in one message', () => {
    const records = Array.from({ length: 1000 }, (_, i) => job({ localJobId: `cluster-a:s1:t${i}` }));
    const check = checkAccountingMessage(writeCarJobs(records), NOW_MS);
    expect(check.problems).to.deep.equal([]);
    expect(check.records).to.have.length(1000);
    expect(check.records[999]!.LocalJobId).to.equal('cluster-a:s1:t999');
  });

  describe('what the receiver rejects', () => {
    it('accepts the hand-written mandatory fields', () => {
      const check = checkAccountingMessage(car(MANDATORY), NOW_MS);
      expect(check.problems).to.deep.equal([]);
      expect(check.records[0]).to.deep.equal({
        Site: 'S',
        LocalJobId: 'j1',
        WallDuration: '10',
        CpuDuration: '9',
        StartTime: String(Date.UTC(2026, 2, 15, 11) / 1000),
        EndTime: String(Date.UTC(2026, 2, 15, 11, 0, 10) / 1000),
      });
    });

    it('does not see unqualified attributes', () => {
      const unqualified = car(`${MANDATORY}<urf:ServiceLevel type="HEPSPEC">10</urf:ServiceLevel>`);
      expect(checkAccountingMessage(unqualified, NOW_MS).problems.join()).to.include(
        'without ServiceLevelType',
      );
    });

    it('reads durations as ISO 8601 and rejects plain seconds', () => {
      const days = car(MANDATORY.replace('PT10S', 'P1DT1H1M1.5S'));
      expect(checkAccountingMessage(days, NOW_MS).records[0]!.WallDuration).to.equal(
        String(86400 + 3600 + 60 + 2),
      );
      // Python's round() is half-to-even, so 2.5 seconds count as 2.
      const half = car(MANDATORY.replace('PT10S', 'PT2.5S'));
      expect(checkAccountingMessage(half, NOW_MS).records[0]!.WallDuration).to.equal('2');
      const plain = car(MANDATORY.replace('PT10S', '10'));
      const problems = checkAccountingMessage(plain, NOW_MS).problems.join();
      expect(problems).to.include('not an ISO 8601 duration');
      expect(problems).to.include('WallDuration is missing');
    });

    it('rejects a missing mandatory element, a bad benchmark and EndTime before StartTime', () => {
      const noSite = car(MANDATORY.replace('<urf:Site>S</urf:Site>', ''));
      expect(checkAccountingMessage(noSite, NOW_MS).problems.join()).to.include('Site is missing');
      const bench = car(`${MANDATORY}<urf:ServiceLevel urf:type="SPECint">10</urf:ServiceLevel>`);
      expect(checkAccountingMessage(bench, NOW_MS).problems.join()).to.include('not one APEL accepts');
      const backwards = car(MANDATORY.replace('11:00:10Z', '10:00:00Z'));
      expect(checkAccountingMessage(backwards, NOW_MS).problems.join()).to.include('before StartTime');
    });

    it('rejects other namespaces, no records, and malformed XML', () => {
      const other = car(MANDATORY).replace(CAR_NS, 'urn:other');
      expect(checkAccountingMessage(other, NOW_MS).problems.join()).to.include('not CAR');
      const empty = `<urf:UsageRecords xmlns:urf="${CAR_NS}"/>`;
      expect(checkAccountingMessage(empty, NOW_MS).problems.join()).to.include('no urf:UsageRecord');
      for (const bad of [car(MANDATORY).slice(0, -5), `<!-- c -->${car(MANDATORY)}`, '<urf:x/>']) {
        const check = checkAccountingMessage(bad, NOW_MS);
        expect(check.kind).to.equal('car');
        expect(check.problems, bad).to.have.length.greaterThan(0);
      }
    });

    it('one bad record gives problems for the whole message', () => {
      const xml = writeCarJobs([job(), job({ localJobId: 'bad', endTime: NOW_S + 3 * 86400 }), job()]);
      const check = checkAccountingMessage(xml, NOW_MS);
      expect(check.problems).to.have.length(1);
      expect(check.problems[0]).to.match(/^record 2 \(LocalJobId "bad"\): EndTime .* future/);
    });
  });
});
