import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { XPathEngine, XPathQueryError, type XPathResult } from './xpath-engine';
import { formatXPathNumber, runQuery } from './xpath-worker';

const SYM = 'http://soapproxy.symphony/v1';
const RL = 'http://docs.oasis-open.org/wsrf/rl-2';
const DOC =
  `<sym:SessionResourceProperties xmlns:sym="${SYM}" xmlns:wsrf-rl="${RL}">` +
  '<sym:SessionId>s1</sym:SessionId><sym:State>open</sym:State>' +
  '<sym:PendingTaskCount>3</sym:PendingTaskCount>' +
  '<wsrf-rl:CurrentTime>2026-12-03T12:00:00Z</wsrf-rl:CurrentTime>' +
  '</sym:SessionResourceProperties>';
// The client's prefixes differ from the document's on purpose.
const NS = { s: SYM, r: RL };
const BIG_DOC = `<r>${'<a><b>x</b></a>'.repeat(1500)}</r>`; // 3001 elements
const SLOW = 'count(//*[count(//*)>0])'; // passes the static checks, quadratic in document size

async function rejection(promise: Promise<unknown>): Promise<XPathQueryError> {
  try {
    await promise;
  } catch (e) {
    expect(e).to.be.instanceOf(XPathQueryError);
    return e as XPathQueryError;
  }
  return expect.fail('expected a rejection');
}

describe('XPathEngine', function () {
  this.timeout(5000);
  let engine: XPathEngine;
  const query = (
    expression: string,
    document = DOC,
    namespaces: Record<string, string> = NS,
  ): Promise<XPathResult> => engine.evaluate({ document, expression, namespaces });

  before(() => {
    engine = new XPathEngine();
  });
  after(() => engine.close());

  describe('results', () => {
    it('serializes element nodes as XML with the namespace declarations they need', async () => {
      expect(await query('/s:SessionResourceProperties/s:State')).to.deep.equal({
        kind: 'nodes',
        items: [{ kind: 'element', xml: `<sym:State xmlns:sym="${SYM}">open</sym:State>` }],
      });
    });

    it('returns a union in document order', async () => {
      const result = await query('//r:CurrentTime | //s:SessionId');
      expect(result.kind).to.equal('nodes');
      const xml = result.kind === 'nodes' ? result.items.map((i) => i.xml) : [];
      expect(xml).to.deep.equal([
        `<sym:SessionId xmlns:sym="${SYM}">s1</sym:SessionId>`,
        `<wsrf-rl:CurrentTime xmlns:wsrf-rl="${RL}">2026-12-03T12:00:00Z</wsrf-rl:CurrentTime>`,
      ]);
    });

    it('returns text and attribute nodes as their string value', async () => {
      expect(await query('//s:State/text()')).to.deep.equal({
        kind: 'nodes',
        items: [{ kind: 'text', xml: 'open' }],
      });
      const withAttr = DOC.replace('<sym:State>', '<sym:State since="2026-12-01" sym:by="a&amp;b">');
      expect(await query('//s:State/@*', withAttr)).to.deep.equal({
        kind: 'nodes',
        items: [
          { kind: 'text', xml: '2026-12-01' },
          { kind: 'text', xml: 'a&b' },
        ],
      });
    });

    it('returns the document element for / and an empty node-set when nothing matches', async () => {
      expect(await query('/')).to.deep.equal({ kind: 'nodes', items: [{ kind: 'element', xml: DOC }] });
      expect(await query('//s:Nothing')).to.deep.equal({ kind: 'nodes', items: [] });
    });

    it('returns strings, numbers and booleans as XPath string values', async () => {
      expect(await query('string(//s:SessionId)')).to.deep.equal({ kind: 'string', value: 's1' });
      expect(await query('concat(local-name(/*), "/", namespace-uri(//r:*))')).to.deep.equal({
        kind: 'string',
        value: `SessionResourceProperties/${RL}`,
      });
      expect(await query('count(/*/s:*)')).to.deep.equal({ kind: 'number', value: '3' });
      expect(await query('//s:PendingTaskCount * 2')).to.deep.equal({ kind: 'number', value: '6' });
      expect(await query('//s:PendingTaskCount div 2')).to.deep.equal({ kind: 'number', value: '1.5' });
      expect(await query('number(//s:State)')).to.deep.equal({ kind: 'number', value: 'NaN' });
      expect(await query('-1 div 0')).to.deep.equal({ kind: 'number', value: '-Infinity' });
      expect(await query('//s:State = "open"')).to.deep.equal({ kind: 'boolean', value: 'true' });
      expect(await query('boolean(//s:Closed)')).to.deep.equal({ kind: 'boolean', value: 'false' });
    });

    it('evaluates the deepest operator chain the default limits accept', async () => {
      expect(await query(`${'-'.repeat(511)}1`)).to.deep.equal({ kind: 'number', value: '-1' });
    });
  });

  describe('refusals', () => {
    it('refuses an undeclared prefix, even one the document itself declares', async () => {
      const e = await rejection(query('//x:State'));
      expect(e.kind).to.equal('invalid');
      expect(e.message).to.contain("prefix 'x' is not declared");
      expect((await rejection(query('//sym:State'))).kind).to.equal('invalid');
    });

    it('refuses a syntax error', async () => {
      const e = await rejection(query('//s:State[@'));
      expect(e.kind).to.equal('invalid');
      expect(e.message).to.contain('not valid XPath 1.0');
    });

    const limits: [string, string][] = [
      [`//s:State${' '.repeat(600)}`, 'at most 512 are allowed'],
      [`${'('.repeat(40)}1${')'.repeat(40)}`, 'nests brackets and parentheses 40 deep'],
      ['//s:a[s:b[s:c[1]]]', 'nests predicates 3 deep; at most 2 are allowed'],
      ['//s:a//s:b//s:c//s:d//s:e', '5 descendant steps'],
      ['count(//*[count(//*[count(//*)>0])>0])', 'nests document scans'],
      ['s:a[1][2][3][4][5][6][7][8][9]', '9 predicates; at most 8'],
      ['a|b|c|d|e|f|g|h|i', 'unions 9 operands'],
      ['//s:State[. = $state]', 'variable references ($state)'],
      ['id("s1")', "'id()' is not allowed"],
      ['concat(//s:State)', "'concat()' takes at least 2 arguments"],
    ];
    for (const [expression, message] of limits) {
      it(`refuses ${expression.trim().slice(0, 40)} before it reaches the worker`, async () => {
        const e = await rejection(query(expression));
        expect(e.kind).to.equal('invalid');
        expect(e.message).to.contain(message);
      });
    }

    it('reports type errors found while evaluating as evaluation errors', async () => {
      const e = await rejection(query('count("s1")'));
      expect(e.kind).to.equal('evaluation');
      expect(e.message).to.contain('count expects (node-set)');
    });

    it('refuses a DOCTYPE and a malformed document', async () => {
      const doctype = await rejection(query('/*', `<!DOCTYPE x>${DOC}`));
      expect(doctype.kind).to.equal('evaluation');
      expect(doctype.message).to.contain('DOCTYPE');
      const malformed = await rejection(query('/*', '<a><b></a>'));
      expect(malformed.kind).to.equal('evaluation');
      expect(malformed.message).to.contain('not well-formed');
    });

    it('caps the result at maxResultNodes nodes and maxResultChars characters', async () => {
      const small = new XPathEngine({ maxResultNodes: 3, maxResultChars: 120, timeoutMs: 2000 });
      try {
        const nodes = await rejection(small.evaluate({ document: DOC, expression: '//*', namespaces: {} }));
        expect(nodes.kind).to.equal('evaluation');
        expect(nodes.message).to.contain('too large (5 nodes)');
        const chars = await rejection(small.evaluate({ document: DOC, expression: '/', namespaces: {} }));
        expect(chars.message).to.contain('more than 120 characters');
        const long = `<a>${'x'.repeat(200)}</a>`;
        const text = await rejection(
          small.evaluate({ document: long, expression: 'string(/)', namespaces: {} }),
        );
        expect(text.message).to.contain('200 characters');
        const fits = await small.evaluate({
          document: DOC,
          expression: '/*/*[position() < 4]/text()',
          namespaces: {},
        });
        expect(fits).to.deep.equal({
          kind: 'nodes',
          items: ['s1', 'open', '3'].map((xml) => ({ kind: 'text', xml })),
        });
      } finally {
        await small.close();
      }
    });
  });

  describe('the worker', () => {
    it('terminates a slow evaluation at timeoutMs and serves the rest of the queue with a fresh worker', async () => {
      const timed = new XPathEngine({ timeoutMs: 100 });
      try {
        await timed.evaluate({ document: DOC, expression: '1', namespaces: {} }); // warm
        const started = Date.now();
        const slow = rejection(timed.evaluate({ document: BIG_DOC, expression: SLOW, namespaces: {} }));
        const next = timed.evaluate({ document: DOC, expression: 'string(//s:State)', namespaces: NS });
        const e = await slow;
        const elapsed = Date.now() - started;
        expect(e.kind).to.equal('timeout');
        expect(e.message).to.contain('did not finish within 100 ms');
        expect(elapsed).to.be.within(95, 1000);
        expect(await next).to.deep.equal({ kind: 'string', value: 'open' });
        expect(
          await timed.evaluate({ document: DOC, expression: 'count(//s:*)', namespaces: NS }),
        ).to.deep.equal({
          kind: 'number',
          value: '4',
        });
      } finally {
        await timed.close();
      }
    });

    it('reports a worker that runs out of memory as an evaluation error, then restarts', async () => {
      const tiny = new XPathEngine({ maxWorkerHeapMb: 8, timeoutMs: 4000 });
      try {
        const huge = `<r>${'<a>x</a>'.repeat(400_000)}</r>`;
        const e = await rejection(tiny.evaluate({ document: huge, expression: 'count(/r)', namespaces: {} }));
        expect(e.kind).to.equal('evaluation');
        expect(e.message).to.contain('ran out of memory');
        expect(await tiny.evaluate({ document: DOC, expression: 'count(/*)', namespaces: {} })).to.deep.equal(
          {
            kind: 'number',
            value: '1',
          },
        );
      } finally {
        await tiny.close();
      }
    });

    it("answers 'busy' at once when maxQueued requests already wait", async () => {
      const narrow = new XPathEngine({ maxQueued: 2 });
      try {
        await narrow.evaluate({ document: DOC, expression: '1', namespaces: {} }); // warm: the next one is in flight
        const accepted = [1, 2, 3].map((n) =>
          narrow.evaluate({ document: DOC, expression: `${n}`, namespaces: {} }),
        );
        const e = await rejection(narrow.evaluate({ document: DOC, expression: '4', namespaces: {} }));
        expect(e.kind).to.equal('busy');
        expect(e.message).to.contain('retry');
        expect((await Promise.all(accepted)).map((r) => (r.kind === 'number' ? r.value : ''))).to.deep.equal([
          '1',
          '2',
          '3',
        ]);
      } finally {
        await narrow.close();
      }
    });

    it('close() rejects what is in flight or queued, and later calls', async () => {
      const closing = new XPathEngine();
      await closing.evaluate({ document: DOC, expression: '1', namespaces: {} });
      const pending = [1, 2, 3].map((n) =>
        rejection(closing.evaluate({ document: DOC, expression: `${n}`, namespaces: {} })),
      );
      await closing.close();
      for (const e of await Promise.all(pending)) expect(e.kind).to.equal('busy');
      expect(
        (await rejection(closing.evaluate({ document: DOC, expression: '1', namespaces: {} }))).kind,
      ).to.equal('busy');
      await new XPathEngine().close(); // never started
    });

    it('does not keep the process alive when idle', async () => {
      const script = `
        const { XPathEngine } = require(${JSON.stringify(join(__dirname, 'xpath-engine.js'))});
        new XPathEngine().evaluate({ document: '<a>ok</a>', expression: 'string(/a)', namespaces: {} })
          .then((r) => console.log(r.value));`;
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['-e', script], { timeout: 4000 }, (error, out) =>
          error ? reject(error) : resolve(out),
        );
      });
      expect(stdout.trim()).to.equal('ok');
    });
  });
});

describe('xpath-worker', () => {
  const opts = { maxResultNodes: 10, maxResultChars: 1000 };

  it('formats numbers as XPath 1.0 string() does', () => {
    const cases: [number, string][] = [
      [3, '3'],
      [-0, '0'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      [Infinity, 'Infinity'],
      [-Infinity, '-Infinity'],
      [1e21, '1000000000000000000000'],
      [-1.5e22, '-15000000000000000000000'],
      [1e-7, '0.0000001'],
      [-1.25e-7, '-0.000000125'],
      [123456.789, '123456.789'],
    ];
    for (const [n, text] of cases) expect(formatXPathNumber(n), String(n)).to.equal(text);
  });

  it('answers with the request id, in the calling thread too', () => {
    expect(
      runQuery({ id: 7, document: DOC, expression: 'string(//s:State)', namespaces: NS }, opts),
    ).to.deep.equal({
      id: 7,
      result: { kind: 'string', value: 'open' },
    });
    expect(runQuery({ id: 8, document: DOC, expression: '-0.0000001', namespaces: {} }, opts)).to.deep.equal({
      id: 8,
      result: { kind: 'number', value: '-0.0000001' },
    });
  });

  it('refuses, while evaluating, what the static checks would have refused', () => {
    const ask = (expression: string): unknown =>
      runQuery({ id: 1, document: DOC, expression, namespaces: NS }, opts);
    expect(ask('//sym:State')).to.have.nested.property('error.kind', 'invalid');
    expect(ask('id("s1")')).to.have.nested.property('error.kind', 'invalid');
    expect(ask('$v')).to.have.nested.property('error.kind', 'invalid');
    expect(ask('s:count(1)')).to.have.nested.property('error.kind', 'invalid');
  });
});
