import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../config';
import { SCHEMA_DIR } from '../paths';
import {
  doctypeLine,
  loadControlFile,
  parseControlFile,
  resolveSchemaRef,
  type LoadOptions,
} from './control-file';
import { PolicyLoadError, type ControlFile, type PolicyProblem } from './model';
import { clusterResolver, policyCommand, type CommandIo } from '../commands/policy';
import {
  buildPolicy,
  describeInterval,
  describePolicy,
  nameScope,
  parsePolicyName,
  type PolicyAttributes,
  type PolicyBuild,
} from './policy-name';

const EXAMPLES = join(SCHEMA_DIR, 'sla-examples');
const PAYLOADS = join(SCHEMA_DIR, 'payloads');

const CLUSTERS: Record<string, string> = { 'symphony://grid-a': 'grid-a', 'symphony://grid-b': 'grid-b' };
const KNOWN: LoadOptions = { resolveCluster: (url) => CLUSTERS[url] };

function ok(b: PolicyBuild) {
  if (!b.ok) throw new Error(`expected a policy, got: ${b.problems.join(' | ')}`);
  return b.policy;
}

function problemsOf(b: PolicyBuild): string[] {
  if (b.ok) throw new Error(`expected problems, got policy ${b.policy.name}`);
  return b.problems;
}

/** 1-based line of the n-th occurrence of needle. */
function lineOf(text: string, needle: string, nth = 1): number {
  let at = -1;
  for (let i = 0; i < nth; i++) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`"${needle}" #${nth} not in text`);
  }
  return text.slice(0, at).split('\n').length;
}

const sla = (consumer: string, policy?: string, context?: string) =>
  `        <SLA consumerId="${consumer}"${context ? ` contextId="${context}"` : ''}>` +
  (policy ? `\n          <Policy>${policy}</Policy>\n        </SLA>` : '</SLA>');

const endpoint = (urls: string[], extra = '') =>
  `        <EndPoint>\n${urls.map((u) => `          <URL>${u}</URL>\n`).join('')}${extra}        </EndPoint>`;

function version(
  uri: string,
  slas: string[],
  opts: { sldPolicy?: string; urls?: string[]; extra?: string } = {},
) {
  return [
    `    <ServiceVersion uri="${uri}">`,
    '      <SLAs>',
    ...slas,
    '      </SLAs>',
    '      <SLD>',
    ...(opts.sldPolicy ? [`        <Policy>${opts.sldPolicy}</Policy>`] : []),
    endpoint(opts.urls ?? ['symphony://grid-a'], opts.extra),
    '      </SLD>',
    '    </ServiceVersion>',
  ].join('\n');
}

function controlXml(...versions: string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<BusinessServices>',
    '  <BusinessService name="MathServer">',
    ...versions,
    '  </BusinessService>',
    '</BusinessServices>',
    '',
  ].join('\n');
}

describe('policy/policy-name: the naming convention and Policy attributes', () => {
  describe('parsePolicyName', () => {
    it('reads the seed names: scope, threshold, interval and action', () => {
      expect(parsePolicyName('SLA_5MessagesPer10Seconds_Throttle')).to.deep.equal({
        scope: 'sla',
        threshold: 5,
        intervalMs: 10_000,
        action: 'throttle',
      });
      expect(parsePolicyName('SLD_10MessagesPer60Seconds_Throttle')).to.deep.equal({
        scope: 'sld',
        threshold: 10,
        intervalMs: 60_000,
        action: 'throttle',
      });
    });

    it('takes a missing interval count as 1, singular units, minutes and hours', () => {
      expect(parsePolicyName('SLA_100MessagesPerMinute_Notify')).to.deep.include({
        threshold: 100,
        intervalMs: 60_000,
        action: 'notify',
      });
      expect(parsePolicyName('SLA_1MessagePerSecond_Shape')).to.deep.include({
        threshold: 1,
        intervalMs: 1000,
        action: 'shape',
      });
      expect(parsePolicyName('SLD_500MessagesPer2Hours_Throttle')?.intervalMs).to.equal(7_200_000);
      expect(parsePolicyName('SLD_7MessagesPerHour_Notify')?.intervalMs).to.equal(3_600_000);
      expect(parsePolicyName('SLA_3MessagesPer5Minutes_Shape')?.intervalMs).to.equal(300_000);
    });

    it('returns null for names that do not follow the convention', () => {
      for (const name of [
        'Gold',
        'sla_5MessagesPer10Seconds_Throttle',
        'SLA_5MessagesPer10Seconds_throttle',
        'SLA_5MessagesPer10Secs_Throttle',
        'SLA_5MsgsPer10Seconds_Throttle',
        'SLA_MessagesPer10Seconds_Throttle',
        'SLA_5MessagesPer10Seconds_Throttle_extra',
        'SLX_5MessagesPer10Seconds_Throttle',
        'SLA_5MessagesPer1.5Seconds_Throttle',
      ]) {
        expect(parsePolicyName(name), name).to.equal(null);
      }
    });

    it('nameScope reads the prefix even when the rest does not follow the convention', () => {
      expect(nameScope('SLA_anything')).to.equal('sla');
      expect(nameScope('SLD_anything')).to.equal('sld');
      expect(nameScope('Gold')).to.equal(null);
    });
  });

  describe('buildPolicy', () => {
    it('fills in the defaults: moving interval, store failure closed, no shaping delay', () => {
      expect(ok(buildPolicy('SLA_5MessagesPer10Seconds_Throttle', {}, 'sla', 7))).to.deep.equal({
        name: 'SLA_5MessagesPer10Seconds_Throttle',
        scope: 'sla',
        threshold: 5,
        intervalMs: 10_000,
        intervalType: 'moving',
        action: 'throttle',
        maxDelayMs: 0,
        onStoreFailure: 'closed',
        line: 7,
      });
    });

    it('gives shape a 2000 ms delay by default, and maxDelayMs overrides it', () => {
      expect(ok(buildPolicy('SLD_10MessagesPer60Seconds_Shape', {}, 'sld', 1)).maxDelayMs).to.equal(2000);
      expect(
        ok(buildPolicy('SLD_10MessagesPer60Seconds_Shape', { maxDelayMs: '0' }, 'sld', 1)).maxDelayMs,
      ).to.equal(0);
      expect(
        ok(buildPolicy('SLD_10MessagesPer60Seconds_Shape', { maxDelayMs: '750' }, 'sld', 1)).maxDelayMs,
      ).to.equal(750);
    });

    it('lets every attribute override the part of the name it names', () => {
      const attrs: PolicyAttributes = {
        threshold: '50',
        intervalSeconds: '1.5',
        intervalType: 'fixed',
        action: 'shape',
        maxDelayMs: '300',
        onStoreFailure: 'open',
      };
      expect(ok(buildPolicy('SLA_5MessagesPer10Seconds_Throttle', attrs, 'sla', 3))).to.deep.include({
        name: 'SLA_5MessagesPer10Seconds_Throttle',
        threshold: 50,
        intervalMs: 1500,
        intervalType: 'fixed',
        action: 'shape',
        maxDelayMs: 300,
        onStoreFailure: 'open',
      });
    });

    it('accepts any name when threshold, intervalSeconds and action are all given', () => {
      const p = ok(
        buildPolicy('Gold', { threshold: '20', intervalSeconds: '60', action: 'notify' }, 'sla', 4),
      );
      expect(p).to.deep.include({ name: 'Gold', threshold: 20, intervalMs: 60_000, action: 'notify' });
      expect(p.intervalType).to.equal('moving');
    });

    it('names the attributes that are missing for a name outside the convention', () => {
      const [msg, ...rest] = problemsOf(buildPolicy('Gold', { threshold: '20' }, 'sla', 4));
      expect(rest).to.have.length(0);
      expect(msg).to.contain('"Gold" does not follow the convention');
      expect(msg).to.contain('SLA_5MessagesPer10Seconds_Throttle');
      expect(msg).to.contain('intervalSeconds, action attributes');
      expect(msg).not.to.contain('threshold,');
    });

    it('refuses a name whose prefix says the other scope, in both directions', () => {
      const [inSla] = problemsOf(buildPolicy('SLD_10MessagesPer60Seconds_Throttle', {}, 'sla', 1));
      expect(inSla).to.contain('named for an SLD but sits inside an SLA');
      expect(inSla).to.contain('SLA_10MessagesPer60Seconds_Throttle');
      const [inSld] = problemsOf(buildPolicy('SLA_5MessagesPer10Seconds_Throttle', {}, 'sld', 1));
      expect(inSld).to.contain('named for an SLA but sits inside an SLD');
    });

    it('refuses a zero threshold or interval in the name unless an attribute replaces it', () => {
      expect(problemsOf(buildPolicy('SLA_0MessagesPer10Seconds_Throttle', {}, 'sla', 1))[0]).to.contain(
        'threshold of 0',
      );
      expect(problemsOf(buildPolicy('SLA_5MessagesPer0Seconds_Throttle', {}, 'sla', 1))[0]).to.contain(
        'interval',
      );
      expect(
        ok(buildPolicy('SLA_0MessagesPer10Seconds_Throttle', { threshold: '3' }, 'sla', 1)).threshold,
      ).to.equal(3);
    });

    it('refuses bad attribute values, all of them together', () => {
      const problems = problemsOf(
        buildPolicy(
          'SLA_5MessagesPer10Seconds_Throttle',
          {
            threshold: '0',
            intervalSeconds: '0.0001',
            intervalType: 'sliding',
            action: 'drop',
            maxDelayMs: '-1',
            onStoreFailure: 'maybe',
          },
          'sla',
          1,
        ),
      );
      expect(problems).to.have.length(6);
      expect(problems.join('\n')).to.contain('threshold="0" must be a positive integer');
      expect(problems.join('\n')).to.contain('intervalSeconds="0.0001"');
      expect(problems.join('\n')).to.contain('intervalType="sliding" must be one of fixed, moving');
      expect(problems.join('\n')).to.contain('action="drop" must be one of throttle, shape, notify');
      expect(problems.join('\n')).to.contain('maxDelayMs="-1" must be a non-negative integer');
      expect(problems.join('\n')).to.contain('onStoreFailure="maybe" must be one of open, closed');
    });

    it('refuses maxDelayMs on an action other than shape', () => {
      const [msg] = problemsOf(
        buildPolicy('SLA_5MessagesPer10Seconds_Throttle', { maxDelayMs: '100' }, 'sla', 1),
      );
      expect(msg).to.contain('maxDelayMs applies only to action shape');
      expect(
        ok(
          buildPolicy('SLA_5MessagesPer10Seconds_Throttle', { action: 'shape', maxDelayMs: '100' }, 'sla', 1),
        ),
      ).to.have.property('maxDelayMs', 100);
    });

    it('describes a policy in one line', () => {
      expect(describePolicy(ok(buildPolicy('SLA_5MessagesPer10Seconds_Throttle', {}, 'sla', 1)))).to.equal(
        '5 per 10 s (moving), throttle',
      );
      expect(
        describePolicy(
          ok(buildPolicy('SLD_10MessagesPerMinute_Shape', { onStoreFailure: 'open' }, 'sld', 1)),
        ),
      ).to.equal('10 per minute (moving), shape up to 2000 ms, admits when the store is down');
      expect(describeInterval(7_200_000)).to.equal('2 h');
      expect(describeInterval(1500)).to.equal('1.5 s');
    });
  });
});

describe('policy/control-file: loading SLA control files', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'control-file-'));
    writeFileSync(join(dir, 'in.xsd'), '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'out.xsd'), '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  async function problems(text: string, opts: LoadOptions = KNOWN): Promise<PolicyProblem[]> {
    try {
      await parseControlFile(text, join(dir, 'control.xml'), opts);
    } catch (e) {
      if (e instanceof PolicyLoadError) {
        expect(e.file).to.equal(join(dir, 'control.xml'));
        return e.problems;
      }
      throw e;
    }
    throw new Error('the control file loaded');
  }

  async function load(text: string, opts: LoadOptions = KNOWN): Promise<ControlFile> {
    return parseControlFile(text, join(dir, 'control.xml'), opts);
  }

  describe('the seed examples', () => {
    it('one-service-version.xml: one version, two SLAs, one SLD on grid-a', async () => {
      const file = join(EXAMPLES, 'one-service-version.xml');
      const c = await loadControlFile(file, KNOWN);
      expect(c.file).to.equal(file);
      expect(c.sha256).to.equal(createHash('sha256').update(readFileSync(file)).digest('hex'));
      expect(c.domain).to.equal('examples');
      expect([...c.versions.keys()]).to.deep.equal(['/services/MathServer/V1']);
      const v = c.versions.get('/services/MathServer/V1')!;
      expect(v).to.deep.include({
        uri: '/services/MathServer/V1',
        service: 'MathServer',
        application: 'MathServer',
      });
      // Silver and Gold are tier labels in comments: no contextId, so no header is needed.
      expect(v.slas.map((s) => [s.consumerId, s.contextId, s.policy?.name])).to.deep.equal([
        ['APPLICATION1', undefined, 'SLA_2MessagesPer10Seconds_Throttle'],
        ['APPLICATION2', undefined, 'SLA_5MessagesPer10Seconds_Throttle'],
      ]);
      expect(v.slas[1]!.policy).to.deep.include({
        scope: 'sla',
        threshold: 5,
        intervalMs: 10_000,
        action: 'throttle',
      });
      expect(v.sld.policy).to.deep.include({
        name: 'SLD_10MessagesPer60Seconds_Throttle',
        scope: 'sld',
        threshold: 10,
        intervalMs: 60_000,
      });
      expect(v.sld.endpoint).to.deep.include({ urls: ['symphony://grid-a'], clusters: ['grid-a'] });
      expect(v.sld.endpoint.request).to.deep.equal({});
      const text = readFileSync(file, 'utf8');
      expect(v.line).to.equal(lineOf(text, '<ServiceVersion'));
      expect(v.slas[0]!.line).to.equal(lineOf(text, '<SLA consumerId="APPLICATION1"'));
      expect(v.sld.policy!.line).to.equal(lineOf(text, '<Policy>SLD_'));
    });

    it('two-service-versions.xml: V2 on grid-b with grid-a as failover, each version its own SLD', async () => {
      const c = await loadControlFile(join(EXAMPLES, 'two-service-versions.xml'), KNOWN);
      expect([...c.versions.keys()]).to.deep.equal(['/services/MathServer/V1', '/services/MathServer/V2']);
      const v1 = c.versions.get('/services/MathServer/V1')!;
      const v2 = c.versions.get('/services/MathServer/V2')!;
      expect(v1.slas.map((s) => [s.consumerId, s.policy?.threshold])).to.deep.equal([['APPLICATION1', 1]]);
      expect(v2.slas.map((s) => [s.consumerId, s.policy?.threshold])).to.deep.equal([
        ['APPLICATION3', 2],
        ['APPLICATION4', 5],
      ]);
      expect(v1.sld.endpoint.clusters).to.deep.equal(['grid-a']);
      expect(v2.sld.endpoint.urls).to.deep.equal(['symphony://grid-b', 'symphony://grid-a']);
      expect(v2.sld.endpoint.clusters).to.deep.equal(['grid-b', 'grid-a']);
      expect(v1.sld.policy!.name).not.to.equal(v2.sld.policy!.name);
    });

    it('versioned-payloads.xml: each version validates its own payloads, paths resolved from the file', async () => {
      const c = await loadControlFile(join(EXAMPLES, 'versioned-payloads.xml'), KNOWN);
      const v1 = c.versions.get('/services/MathServer/V1')!;
      const v2 = c.versions.get('/services/MathServer/V2')!;
      const text = readFileSync(join(EXAMPLES, 'versioned-payloads.xml'), 'utf8');
      expect(text).not.to.match(/<XForm/);
      expect(v1.sld.endpoint.request).to.deep.equal({
        inputSchema: join(PAYLOADS, 'mathserver-v1.xsd'),
        inputSchemaLine: lineOf(text, '<InputSchemaURL>../payloads/mathserver-v1.xsd', 1),
      });
      expect(v1.sld.endpoint.response.inputSchema).to.equal(join(PAYLOADS, 'mathserver-v1.xsd'));
      expect(v2.sld.endpoint.request.inputSchema).to.equal(join(PAYLOADS, 'mathserver-v2.xsd'));
      expect(v2.sld.endpoint.response).to.deep.equal({
        inputSchema: join(PAYLOADS, 'mathserver-v2.xsd'),
        inputSchemaLine: lineOf(text, '<InputSchemaURL>../payloads/mathserver-v2.xsd', 2),
      });
    });

    it('without resolveCluster the URLs are taken as cluster names, unchecked', async () => {
      const c = await loadControlFile(join(EXAMPLES, 'two-service-versions.xml'));
      expect(c.versions.get('/services/MathServer/V2')!.sld.endpoint.clusters).to.deep.equal([
        'symphony://grid-b',
        'symphony://grid-a',
      ]);
    });
  });

  describe('what a valid file yields', () => {
    it('uses @application as the grid application, else @name, and keeps domain and version', async () => {
      const text = controlXml(version('/a', [sla('C1')]))
        .replace(
          '<BusinessService name="MathServer">',
          '<BusinessService name="MathServer" application="math-app">',
        )
        .replace('<BusinessServices>', '<BusinessServices domain="risk" version="7">');
      const c = await load(text);
      expect(c.versions.get('/a')).to.deep.include({ service: 'MathServer', application: 'math-app' });
      expect(c).to.deep.include({ domain: 'risk', version: '7' });
      const plain = await load(controlXml(version('/a', [sla('C1')])));
      expect(plain.versions.get('/a')!.application).to.equal('MathServer');
      expect(plain.domain).to.equal(undefined);
    });

    it('reads idle timeouts per application (an extension), and refuses one that is not a duration', async () => {
      const text = controlXml(version('/a', [sla('C1')])).replace(
        '<BusinessService name="MathServer">',
        '<BusinessService name="MathServer" sessionIdleTimeout="PT30M" connectionIdleTimeout="PT0S">',
      );
      expect((await load(text)).versions.get('/a')!.idle).to.deep.equal({
        sessionMs: 1_800_000,
        connectionMs: 0,
      });
      expect((await load(controlXml(version('/a', [sla('C1')])))).versions.get('/a')!.idle).to.equal(
        undefined,
      );
      const bad = await problems(
        controlXml(version('/a', [sla('C1')])).replace(
          '<BusinessService name="MathServer">',
          '<BusinessService name="MathServer" sessionIdleTimeout="half an hour">',
        ),
      );
      expect(bad.map((p) => p.message).join('\n')).to.match(/sessionIdleTimeout/);
    });

    it('an SLA without Policy has no limit; an SLAs element may be empty', async () => {
      const c = await load(controlXml(version('/a', [sla('C1')]), version('/b', [])));
      expect(c.versions.get('/a')!.slas).to.deep.equal([{ consumerId: 'C1', policy: null, line: 6 }]);
      expect(c.versions.get('/b')!.slas).to.deep.equal([]);
      expect(c.versions.get('/a')!.sld.policy).to.equal(null);
    });

    it('reads Policy attributes in the file', async () => {
      const text = controlXml(
        version('/a', [
          '        <SLA consumerId="C1"><Policy threshold="9" intervalType="fixed" onStoreFailure="open">SLA_5MessagesPer10Seconds_Throttle</Policy></SLA>',
          '        <SLA consumerId="C2"><Policy threshold="3" intervalSeconds="0.5" action="shape" maxDelayMs="100">Burst</Policy></SLA>',
        ]),
      );
      const [c1, c2] = (await load(text)).versions.get('/a')!.slas;
      expect(c1!.policy).to.deep.include({
        threshold: 9,
        intervalMs: 10_000,
        intervalType: 'fixed',
        onStoreFailure: 'open',
      });
      expect(c2!.policy).to.deep.include({
        name: 'Burst',
        threshold: 3,
        intervalMs: 500,
        action: 'shape',
        maxDelayMs: 100,
      });
    });

    it('the same consumer may hold one SLA per contextId plus one without', async () => {
      const c = await load(
        controlXml(version('/a', [sla('C1'), sla('C1', undefined, 'Gold'), sla('C1', undefined, 'Silver')])),
      );
      expect(c.versions.get('/a')!.slas.map((s) => s.contextId)).to.deep.equal([undefined, 'Gold', 'Silver']);
    });

    it('maps URLs to clusters in order and drops a cluster named twice', async () => {
      const opts: LoadOptions = { resolveCluster: (u) => ({ x1: 'X', x2: 'X', y: 'Y' })[u] };
      const c = await load(controlXml(version('/a', [], { urls: ['x1', 'y', 'x2'] })), opts);
      expect(c.versions.get('/a')!.sld.endpoint).to.deep.include({
        urls: ['x1', 'y', 'x2'],
        clusters: ['X', 'Y'],
      });
    });

    it('resolves local:///, relative, absolute and file:/// schema locations', async () => {
      const rules = (tag: string, ref: string) =>
        `          <${tag}><InputSchemaURL>${ref}</InputSchemaURL></${tag}>\n`;
      const text = controlXml(
        version('/a', [], { extra: rules('Request', 'local:///in.xsd') + rules('Response', 'sub/out.xsd') }),
        version('/b', [], {
          extra:
            rules('Request', join(dir, 'in.xsd')) +
            rules('Response', pathToFileURL(join(dir, 'sub', 'out.xsd')).href),
        }),
      );
      const c = await load(text);
      for (const uri of ['/a', '/b']) {
        const ep = c.versions.get(uri)!.sld.endpoint;
        expect(ep.request.inputSchema, uri).to.equal(join(dir, 'in.xsd'));
        expect(ep.response.inputSchema, uri).to.equal(join(dir, 'sub', 'out.xsd'));
      }
      expect(resolveSchemaRef('local:///sub/out.xsd', dir)).to.deep.equal({
        path: join(dir, 'sub', 'out.xsd'),
      });
    });

    it('keeps both schemas of a direction, with their lines', async () => {
      const text = controlXml(
        version('/a', [], {
          extra:
            '          <Request>\n            <InputSchemaURL>in.xsd</InputSchemaURL>\n            <OutputSchemaURL>local:///sub/out.xsd</OutputSchemaURL>\n          </Request>\n',
        }),
      );
      const rules = (await load(text)).versions.get('/a')!.sld.endpoint.request;
      expect(rules).to.deep.equal({
        inputSchema: join(dir, 'in.xsd'),
        inputSchemaLine: lineOf(text, '<InputSchemaURL>'),
        outputSchema: join(dir, 'sub', 'out.xsd'),
        outputSchemaLine: lineOf(text, '<OutputSchemaURL>'),
      });
    });

    it('hashes the bytes, so an unchanged file has the same sha256 and a changed one does not', async () => {
      const text = controlXml(version('/a', [sla('C1')]));
      const a = await load(text);
      const b = await load(text);
      const c = await load(text.replace('C1', 'C2'));
      expect(a.sha256).to.equal(createHash('sha256').update(text).digest('hex'));
      expect(b.sha256).to.equal(a.sha256);
      expect(c.sha256).not.to.equal(a.sha256);
    });
  });

  describe('problems, each named by line and element', () => {
    it('schema: a missing consumerId', async () => {
      const text = controlXml(version('/a', ['        <SLA contextId="Gold"/>']));
      const [p, ...rest] = await problems(text);
      expect(rest).to.deep.equal([]);
      expect(p).to.deep.include({ line: lineOf(text, '<SLA contextId'), element: 'SLA' });
      expect(p!.message).to.contain("attribute 'consumerId' is required");
    });

    it('schema: an unknown element', async () => {
      const text = controlXml(version('/a', [sla('C1'), '        <Quota max="3"/>']));
      const [p] = await problems(text);
      expect(p).to.deep.include({ line: lineOf(text, '<Quota'), element: 'Quota' });
      expect(p!.message).to.contain('This element is not expected');
    });

    it('schema: two SLDs in one ServiceVersion', async () => {
      const one = version('/a', [sla('C1')]);
      const sld = one.slice(one.indexOf('      <SLD>'), one.indexOf('    </ServiceVersion>'));
      const text = controlXml(one.replace('    </ServiceVersion>', `${sld}    </ServiceVersion>`));
      const [p, ...rest] = await problems(text);
      expect(rest).to.deep.equal([]);
      expect(p).to.deep.include({ line: lineOf(text, '<SLD>', 2), element: 'SLD' });
      expect(p!.message).to.contain('not expected');
    });

    it('schema: a bad attribute value names the attribute', async () => {
      const text = controlXml(
        version('/a', [
          '        <SLA consumerId="C1"><Policy threshold="0">SLA_5MessagesPer10Seconds_Throttle</Policy></SLA>',
        ]),
      );
      const ps = await problems(text);
      expect(ps).to.have.length(1);
      expect(ps[0]).to.deep.include({ line: lineOf(text, '<Policy threshold'), element: 'Policy' });
      expect(ps[0]!.message).to.match(/^attribute 'threshold': '0' is not a valid value/);
    });

    it('a duplicate uri, naming the first one', async () => {
      const text = controlXml(version('/a', [sla('C1')]), version('/a', [sla('C2')]));
      const [p, ...rest] = await problems(text);
      expect(rest).to.deep.equal([]);
      expect(p).to.deep.include({ line: lineOf(text, '<ServiceVersion', 2), element: 'ServiceVersion' });
      expect(p!.message).to.equal(
        `uri "/a" is already used by the ServiceVersion at line ${lineOf(text, '<ServiceVersion')}; each uri selects one version`,
      );
    });

    it('a uri that is not a request path', async () => {
      const text = controlXml(version('services/a', []), version('/b?x=1', []), version('/c#top', []));
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, 'uri="services/a"'), 'ServiceVersion'],
        [lineOf(text, 'uri="/b?x=1"'), 'ServiceVersion'],
        [lineOf(text, 'uri="/c#top"'), 'ServiceVersion'],
      ]);
      expect(ps[0]!.message).to.contain("must start with '/'");
      expect(ps[1]!.message).to.contain("without '?' or '#'");
    });

    it('a uri with empty, dot or encoded segments, or a trailing slash', async () => {
      const bad = ['//evil.example/x', '/a/../b', '/a/./b', '/a/', '/a%2Fb', '/a/b\u00e9'];
      const text = controlXml(...bad.map((u) => version(u, [])), version('/services/Math-Server_v1.2', []));
      const ps = await problems(text);
      expect(ps.map((p) => p.line)).to.deep.equal(bad.map((u) => lineOf(text, `uri="${u}"`)));
      for (const p of ps) expect(p.message).to.contain('must be plain path segments');
    });

    it('a duplicate consumer (with the same contextId) in one version', async () => {
      const text = controlXml(
        version('/a', [sla('C1'), sla('C1', undefined, 'Gold'), sla('C1'), sla('C1', undefined, 'Gold')]),
        version('/b', [sla('C1')]),
      );
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, '<SLA consumerId="C1">', 2), 'SLA'],
        [lineOf(text, 'contextId="Gold"', 2), 'SLA'],
      ]);
      expect(ps[0]!.message).to.equal(
        `consumer "C1" (no contextId) already has an SLA at line ${lineOf(text, '<SLA consumerId="C1">')} in this ServiceVersion`,
      );
      expect(ps[1]!.message).to.contain('consumer "C1" with contextId "Gold" already has an SLA');
    });

    it('a bad policy name', async () => {
      const text = controlXml(version('/a', [sla('C1', 'SLA_5MessagesPer10Secs_Throttle')]));
      const [p] = await problems(text);
      expect(p).to.deep.include({ line: lineOf(text, '<Policy>'), element: 'Policy' });
      expect(p!.message).to.contain('does not follow the convention');
    });

    it('a policy whose prefix says the other scope, in an SLA and in an SLD', async () => {
      const text = controlXml(
        version('/a', [sla('C1', 'SLD_5MessagesPer10Seconds_Throttle')], {
          sldPolicy: 'SLA_10MessagesPer60Seconds_Throttle',
        }),
      );
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, '<Policy>SLD_'), 'Policy'],
        [lineOf(text, '<Policy>SLA_'), 'Policy'],
      ]);
      expect(ps[0]!.message).to.contain('sits inside an SLA');
      expect(ps[1]!.message).to.contain('sits inside an SLD');
    });

    it('an EndPoint URL that names no configured cluster', async () => {
      const text = controlXml(version('/a', [], { urls: ['symphony://grid-a', 'symphony://grid-z'] }));
      const [p, ...rest] = await problems(text);
      expect(rest).to.deep.equal([]);
      expect(p).to.deep.include({ line: lineOf(text, 'grid-z'), element: 'URL' });
      expect(p!.message).to.equal(
        '"symphony://grid-z" names no configured grid cluster; add it to grid.clusters[].urls in the proxy config',
      );
    });

    it('a schema file that does not exist, and one that is a directory', async () => {
      const text = controlXml(
        version('/a', [], {
          extra:
            '          <Request><InputSchemaURL>local:///missing.xsd</InputSchemaURL></Request>\n' +
            '          <Response><OutputSchemaURL>sub</OutputSchemaURL></Response>\n',
        }),
      );
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, 'missing.xsd'), 'InputSchemaURL'],
        [lineOf(text, '<OutputSchemaURL>'), 'OutputSchemaURL'],
      ]);
      expect(ps[0]!.message).to.equal(
        `schema "local:///missing.xsd" (${join(dir, 'missing.xsd')}) does not exist`,
      );
      expect(ps[1]!.message).to.contain('is not a file');
    });

    it('a remote schema URL, and an unsupported scheme', async () => {
      const text = controlXml(
        version('/a', [], {
          extra:
            '          <Request><InputSchemaURL>https://schemas.example.com/math.xsd</InputSchemaURL></Request>\n' +
            '          <Response><InputSchemaURL>store:///math.xsd</InputSchemaURL></Response>\n',
        }),
      );
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, 'https://'), 'InputSchemaURL'],
        [lineOf(text, 'store://'), 'InputSchemaURL'],
      ]);
      expect(ps[0]!.message).to.contain(
        'remote schemas are not fetched ("https://schemas.example.com/math.xsd"); copy the file next to the control file and use local:///name.xsd',
      );
      expect(ps[1]!.message).to.contain('only local:///, file:///');
    });

    it('an XForm, in Request and in Response', async () => {
      const text = controlXml(
        version('/a', [], {
          extra:
            '          <Request><InputSchemaURL>in.xsd</InputSchemaURL><XForm>local:///v1-to-v2.xsl</XForm></Request>\n' +
            '          <Response>\n            <XForm>local:///v2-to-v1.xsl</XForm>\n          </Response>\n',
        }),
      );
      const ps = await problems(text);
      expect(ps.map((p) => [p.line, p.element])).to.deep.equal([
        [lineOf(text, 'v1-to-v2'), 'XForm'],
        [lineOf(text, 'v2-to-v1'), 'XForm'],
      ]);
      expect(ps[0]!.message).to.equal(
        'XForm (XSLT) is not supported by this proxy; remove it or transform in the client — see docs/policy.md',
      );
    });

    it('a DOCTYPE, before libxml2 parses anything', async () => {
      const text =
        '<?xml version="1.0"?>\n<!-- a comment -->\n<!DOCTYPE BusinessServices [\n  <!ENTITY big "x">\n]>\n<BusinessServices>&big;</BusinessServices>\n';
      const ps = await problems(text);
      expect(ps).to.have.length(1);
      expect(ps[0]).to.deep.include({ line: 3, element: '!DOCTYPE' });
      expect(ps[0]!.message).to.contain('DOCTYPE is not allowed');
    });

    it('doctypeLine looks only at the prolog', () => {
      expect(doctypeLine('\uFEFF<!DOCTYPE a><a/>')).to.equal(1);
      expect(doctypeLine('<?xml version="1.0"?>\n\n<!doctype a>')).to.equal(3);
      expect(doctypeLine('<!-- <!DOCTYPE a> -->\n<a/>')).to.equal(null);
      expect(doctypeLine('<a><![CDATA[<!DOCTYPE a>]]></a>')).to.equal(null);
    });

    it('malformed XML, at the line of the error', async () => {
      const text = controlXml(version('/a', [sla('C1')])).replace('      </SLAs>', '      </SLAz>');
      const ps = await problems(text);
      expect(ps).to.have.length(1);
      expect(ps[0]!.line).to.equal(lineOf(text, '</SLAz>'));
      expect(ps[0]!.element).to.equal('SLAs');
      expect(ps[0]!.message).to.match(/^not well-formed XML: Opening and ending tag mismatch/);
    });

    it('malformed XML without an element to name, and an empty file', async () => {
      const text = '<BusinessServices>\n  <BusinessService name="a" name="b"/>\n</BusinessServices>\n';
      const [p] = await problems(text);
      expect(p).to.deep.include({ line: 2, element: '?xml' });
      expect(p!.message).to.contain('redefined');
      const [empty] = await problems('');
      expect(empty!.line).to.equal(1);
      expect(empty!.message).to.contain('not well-formed XML');
    });

    it('reports schema and semantic problems of one file together, in line order', async () => {
      const text = controlXml(
        version('/a', ['        <SLA/>', sla('C1', 'SLA_5MessagesPerFortnight_Throttle')], {
          urls: ['nowhere'],
        }),
        version('/a', [sla('C2')], {
          extra:
            '          <Request><InputSchemaURL>http://x/y.xsd</InputSchemaURL><XForm>t.xsl</XForm></Request>\n',
        }),
      );
      const ps = await problems(text);
      expect(ps.map((p) => `${p.line}:${p.element}`)).to.deep.equal([
        `${lineOf(text, '<SLA/>')}:SLA`,
        `${lineOf(text, '<Policy>')}:Policy`,
        `${lineOf(text, 'nowhere')}:URL`,
        `${lineOf(text, '<ServiceVersion', 2)}:ServiceVersion`,
        `${lineOf(text, 'http://x')}:InputSchemaURL`,
        `${lineOf(text, 'http://x')}:XForm`,
      ]);
      const err = await parseControlFile(text, join(dir, 'control.xml'), KNOWN).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(PolicyLoadError);
      expect((err as Error).message).to.contain(
        `line ${lineOf(text, 'nowhere')}, <URL>: "nowhere" names no configured`,
      );
    });

    it('a file that cannot be read', async () => {
      const err = await loadControlFile(join(dir, 'absent.xml')).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(PolicyLoadError);
      expect((err as PolicyLoadError).problems[0]!.message).to.contain('cannot read');
    });
  });

  it('loads a file quickly once the control schema is compiled', async () => {
    const file = join(EXAMPLES, 'versioned-payloads.xml');
    await loadControlFile(file, KNOWN);
    const start = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) await loadControlFile(file, KNOWN);
    const perLoadMs = Number(process.hrtime.bigint() - start) / 1e6 / 20;
    expect(perLoadMs).to.be.below(50);
  });
});

describe('policy/policy-command: policy check', () => {
  let dir: string;
  let out: string[];
  let err: string[];
  const io: CommandIo = { out: (l) => out.push(l), err: (l) => err.push(l) };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'policy-command-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    out = [];
    err = [];
  });

  function writeConfig(name: string, clusters: Array<{ name: string; urls: string[] }>): string {
    const file = join(dir, name);
    const yaml = [
      'security:',
      '  mode: "off"',
      'grid:',
      `  defaultCluster: ${clusters[0]?.name ?? 'default'}`,
      '  clusters:',
      ...clusters.flatMap((c) => [
        `    - name: ${c.name}`,
        `      urls: [${c.urls.map((u) => `"${u}"`).join(', ')}]`,
        '      addresses: ["127.0.0.1:7000"]',
      ]),
      '',
    ].join('\n');
    writeFileSync(file, yaml);
    return file;
  }

  it('prints a summary and returns 0 for a good file', async () => {
    const rc = await policyCommand(['check', join(EXAMPLES, 'two-service-versions.xml')], io);
    expect(rc).to.equal(0);
    const text = out.join('\n');
    expect(text).to.contain('1 service, 2 versions, 3 SLAs');
    expect(text).to.contain('/services/MathServer/V2');
    expect(text).to.contain('symphony://grid-b → symphony://grid-a (not checked: no --config)');
    expect(text).to.contain('SLA APPLICATION4: SLA_5MessagesPer10Seconds_Throttle = 5 per 10 s');
    expect(err).to.deep.equal([]);
  });

  it('shows contexts, unlimited SLAs and versions nobody may call', async () => {
    const file = join(dir, 'contexts.xml');
    writeFileSync(
      file,
      controlXml(
        version('/a', [sla('C1', 'SLA_5MessagesPer10Seconds_Shape', 'Gold'), sla('C2')]),
        version('/b', []),
      ),
    );
    expect(await policyCommand(['check', file], io)).to.equal(0);
    const text = out.join('\n');
    expect(text).to.contain(
      'SLA C1 [context Gold]: SLA_5MessagesPer10Seconds_Shape = 5 per 10 s (moving), shape up to 2000 ms',
    );
    expect(text).to.contain('SLA C2: no limit');
    expect(text).to.contain('/b  (service MathServer)\n    clusters: symphony://grid-a');
    expect(text).to.contain('SLAs: none (no consumer may call this version)');
  });

  it('with --config, resolves URLs to the configured clusters', async () => {
    const config = writeConfig('ok.yaml', [
      { name: 'grid-a', urls: ['symphony://grid-a'] },
      { name: 'grid-b', urls: ['symphony://grid-b'] },
    ]);
    const rc = await policyCommand(
      ['check', join(EXAMPLES, 'two-service-versions.xml'), '--config', config],
      io,
    );
    expect(rc).to.equal(0);
    expect(out.join('\n')).to.contain('clusters: grid-b → grid-a\n');
  });

  it('with --config, fails on a URL no cluster lists and prints the problem to stderr', async () => {
    const config = writeConfig('only-a.yaml', [{ name: 'grid-a', urls: ['symphony://grid-a'] }]);
    const file = join(EXAMPLES, 'two-service-versions.xml');
    const rc = await policyCommand(['check', file, '-c', config], io);
    expect(rc).to.equal(1);
    expect(out).to.deep.equal([]);
    const line = lineOf(readFileSync(file, 'utf8'), 'symphony://grid-b');
    expect(err.join('\n')).to.contain(
      `line ${line}, <URL>: "symphony://grid-b" names no configured grid cluster`,
    );
  });

  it('returns 1 for an invalid control file and for an invalid config', async () => {
    const bad = join(dir, 'bad.xml');
    writeFileSync(bad, '<BusinessServices>\n<BusinessService/>\n</BusinessServices>\n');
    expect(await policyCommand(['check', bad], io)).to.equal(1);
    expect(err.join('\n')).to.contain("line 2, <BusinessService>: The attribute 'name' is required");
    const config = join(dir, 'broken.yaml');
    writeFileSync(config, 'grid:\n  clusters: 3\n');
    err = [];
    expect(
      await policyCommand(['check', join(EXAMPLES, 'one-service-version.xml'), '--config', config], io),
    ).to.equal(1);
    expect(err.join('\n')).to.contain('invalid configuration');
  });

  it('returns 2 on usage errors', async () => {
    expect(await policyCommand([], io)).to.equal(2);
    expect(await policyCommand(['check'], io)).to.equal(2);
    expect(await policyCommand(['lint', 'x.xml'], io)).to.equal(2);
    expect(await policyCommand(['check', 'x.xml', '--bogus'], io)).to.equal(2);
    expect(err.every((l) => l.includes('usage: symphony-soap-proxy policy check'))).to.equal(true);
    expect(await policyCommand(['--help'], io)).to.equal(0);
    expect(out).to.deep.equal(['usage: symphony-soap-proxy policy check <control file> [--config FILE]']);
  });

  it('clusterResolver matches cluster names and urls, and the embedded default cluster', () => {
    const grid = parseConfig({
      security: { mode: 'off' },
      grid: {
        embedded: true,
        defaultCluster: 'local',
        clusters: [{ name: 'grid-a', urls: ['symphony://grid-a', 'grid-b'], addresses: ['127.0.0.1:7000'] }],
      },
    }).grid;
    const resolve = clusterResolver(grid);
    expect(resolve('grid-a')).to.equal('grid-a');
    expect(resolve('symphony://grid-a')).to.equal('grid-a');
    expect(resolve('grid-b')).to.equal('grid-a');
    expect(resolve('local')).to.equal('local');
    expect(resolve('embedded')).to.equal('local');
    expect(resolve('symphony://nowhere')).to.equal(undefined);
    const notEmbedded = clusterResolver({ ...grid, embedded: false });
    expect(notEmbedded('embedded')).to.equal(undefined);
    expect(notEmbedded('local')).to.equal(undefined);
  });
});
