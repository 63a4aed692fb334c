import { expect } from 'chai';
import {
  ALLOWED_FUNCTIONS,
  DEFAULT_XPATH_LIMITS,
  XPathQueryError,
  checkExpression,
  resolveLimits,
  xpath,
  type ExpressionStats,
  type XPathLimits,
} from './xpath-limits';

const NS = { s: 'http://soapproxy.symphony/v1', r: 'http://docs.oasis-open.org/wsrf/rl-2' };
const BOMB = 'count(//*[count(//*[count(//*)>0])>0])';

function refusal(
  expression: string,
  limits: Partial<XPathLimits> = {},
  ns: Record<string, string> = NS,
): XPathQueryError {
  try {
    checkExpression(expression, ns, limits);
  } catch (e) {
    expect(e).to.be.instanceOf(XPathQueryError);
    return e as XPathQueryError;
  }
  expect.fail(`expected ${JSON.stringify(expression)} to be refused`);
}

function stats(expression: string, limits: Partial<XPathLimits> = {}): ExpressionStats {
  return checkExpression(expression, NS, limits);
}

describe('xpath-limits', () => {
  describe('the xpath package AST the walker relies on (xpath@0.0.33)', () => {
    type Any = Record<string, unknown>;
    const root = (e: string): Any => xpath.parse(e).expression.expression as Any;

    it('parses // into a descendant-or-self::node() step followed by the named step', () => {
      const path = root('//s:a') as Any;
      expect(path).to.be.instanceOf(xpath.PathExpr);
      const loc = path.locationPath as Any;
      expect(loc).to.be.instanceOf(xpath.LocationPath);
      expect(loc.absolute).to.equal(true);
      const steps = loc.steps as Any[];
      expect(steps.map((s) => s.axis)).to.deep.equal([xpath.Step.DESCENDANTORSELF, xpath.Step.CHILD]);
      expect(steps[0].nodeTest).to.have.property('type', xpath.NodeTest.NODE);
      expect(steps[1].nodeTest).to.include({
        type: xpath.NodeTest.NAMETESTQNAME,
        prefix: 's',
        localName: 'a',
      });
      expect(steps[1].predicates).to.deep.equal([]);
    });

    it('keeps step predicates in Step.predicates and filter predicates in PathExpr.filterPredicates', () => {
      const step = ((root('a[1]').locationPath as Any).steps as Any[])[0];
      expect(step.predicates).to.have.length(1);
      const filtered = root('(a)[1][2]');
      expect(filtered.filter).to.be.instanceOf(xpath.PathExpr);
      expect(filtered.filterPredicates).to.have.length(2);
    });

    it('exposes functionName, arguments, variable, lhs/rhs and p:* prefixes', () => {
      const call = root('concat("a", "b")').filter as Any;
      expect(call).to.be.instanceOf(xpath.FunctionCall);
      expect(call.functionName).to.equal('concat');
      expect(call.arguments).to.have.length(2);
      expect(root('$v').filter).to.be.instanceOf(xpath.VariableReference).and.have.property('variable', 'v');
      const union = root('a | b');
      expect(union).to.be.instanceOf(xpath.BarOperation);
      expect(union.lhs).to.be.instanceOf(xpath.PathExpr);
      expect(union.rhs).to.be.instanceOf(xpath.PathExpr);
      const anyInNs = ((root('s:*').locationPath as Any).steps as Any[])[0].nodeTest;
      expect(anyInNs).to.include({ type: xpath.NodeTest.NAMETESTPREFIXANY, prefix: 's' });
    });

    it('leaves no trace of parentheses and parses an unknown axis to -1 instead of failing', () => {
      expect(root('((a))'))
        .to.be.instanceOf(xpath.PathExpr)
        .and.have.property('filter')
        .that.is.instanceOf(xpath.PathExpr);
      expect(((root('bogus::a').locationPath as Any).steps as Any[])[0].axis).to.equal(-1);
    });
  });

  describe('what the walker measures', () => {
    const cases: [string, Partial<ExpressionStats>][] = [
      [
        '/s:SessionResourceProperties/s:State',
        { descendantSteps: 0, scanNesting: 0, predicates: 0, prefixes: ['s'] },
      ],
      ['//s:State', { descendantSteps: 1, scanNesting: 1 }],
      ['s:a//s:b', { descendantSteps: 1, scanNesting: 1 }],
      ['.//s:b', { descendantSteps: 1 }],
      ['descendant::s:a/descendant-or-self::s:b', { descendantSteps: 2, scanNesting: 1 }],
      ['//s:a[s:b][s:c]', { predicates: 2, predicateDepth: 1 }],
      ['(//s:a)[1]', { predicates: 1, predicateDepth: 1, scanNesting: 1 }],
      ['//s:a[s:b[s:c]]', { predicates: 2, predicateDepth: 2 }],
      ['s:a[1]/following::s:b', { descendantSteps: 0, scanNesting: 1 }],
      [
        'count(//*[count(//*)>0])',
        { descendantSteps: 2, scanNesting: 2, predicateDepth: 1, functions: ['count'] },
      ],
      ['//s:a[.//s:b]', { scanNesting: 2 }],
      ['//s:a[s:b/s:c]', { scanNesting: 1 }],
      ['count(//s:a) + count(//s:b)', { scanNesting: 1, descendantSteps: 2 }],
      ['a | b | c', { unionOperands: 3 }],
      ['(a | b) | (c | d)', { unionOperands: 4 }],
      ['a[b | c] | d', { unionOperands: 4 }],
      ['-(-(1))', { descendantSteps: 0, functions: [] }],
      ['//@xml:lang | //s:*/@r:*', { prefixes: ['xml', 's', 'r'], unionOperands: 2 }],
      ['concat(string(s:a), "(((", \'[[[\')', { nesting: 2, functions: ['concat', 'string'] }],
    ];
    for (const [expression, expected] of cases) {
      it(`measures ${expression}`, () => {
        expect(stats(expression)).to.deep.include(expected);
      });
    }
  });

  describe('refusals', () => {
    it('refuses an expression longer than maxExpressionChars', () => {
      const e = refusal('s:a'.padEnd(513, 'b'));
      expect(e.kind).to.equal('invalid');
      expect(e.message).to.contain('513 characters long; at most 512 are allowed');
      expect(() => checkExpression('a'.repeat(512), NS)).not.to.throw();
    });

    it('refuses nesting beyond maxNesting before parsing, ignoring brackets in string literals', () => {
      const deep = '('.repeat(33) + '1' + ')'.repeat(33);
      expect(refusal(deep).message).to.contain(
        'nests brackets and parentheses 33 deep; at most 32 are allowed',
      );
      expect(refusal('a[(((1)))][b[c[(((((d)))))]]]', { maxNesting: 7 }).message).to.contain('8 deep');
      expect(stats('(((("((((((((((((((((((((((((((((((((((((("))))').nesting).to.equal(4);
    });

    it('copes with deep parentheses when the caller raises the limits', () => {
      const nested = (n: number): string => '('.repeat(n) + '1' + ')'.repeat(n);
      const raised = { maxExpressionChars: 10_000, maxNesting: 5000 };
      expect(stats(nested(900), raised).nesting).to.equal(900);
      // Each level adds an AST node; the walker refuses instead of overflowing its stack.
      expect(refusal(nested(3000), raised).message).to.contain('nested too deeply');
    });

    it('refuses predicates nested deeper than maxPredicateDepth', () => {
      const e = refusal('//s:a[s:b[s:c[s:d]]]');
      expect(e.message).to.contain('nests predicates 3 deep; at most 2 are allowed');
      expect(refusal('s:a[1]', { maxPredicateDepth: 0 }).message).to.contain('1 deep; at most 0');
    });

    it('refuses more than maxDescendantSteps descendant steps, counting //', () => {
      const e = refusal('//s:a//s:b/descendant::s:c//s:d/descendant-or-self::s:e');
      expect(e.message).to.contain(
        "5 descendant steps ('//', descendant::, descendant-or-self::); at most 4 are allowed",
      );
      expect(stats('//s:a//s:b//s:c//s:d').descendantSteps).to.equal(4);
    });

    it('refuses the design document bomb statically: document scans nested 3 deep', () => {
      const e = refusal(BOMB);
      expect(e.message).to.contain('nests document scans');
      expect(e.message).to.contain('3 deep inside predicates; at most 2 are allowed');
      expect(stats(BOMB, { maxScanNesting: 3 }).scanNesting).to.equal(3);
    });

    it('refuses the same bomb built on the following axis', () => {
      const f = '/*/*/following::*';
      const e = refusal(`count(${f}[count(${f}[count(${f})>0])>0])`);
      expect(e.message).to.contain('nests document scans');
    });

    it('refuses more than maxPredicates predicates', () => {
      expect(refusal('s:a[1][2][3][4][5][6][7][8][9]').message).to.contain(
        'has 9 predicates; at most 8 are allowed',
      );
      expect(stats('s:a[1][2][3][4]/s:b[1][2][3][4]').predicates).to.equal(8);
    });

    it('refuses more than maxUnions union operands', () => {
      expect(refusal('a|b|c|d|e|f|g|h|i').message).to.contain(
        "unions 9 operands with '|'; at most 8 are allowed",
      );
      expect(refusal('(a|b|c)|(d|e|f)|(g|h|(i))').message).to.contain('unions 9 operands');
      expect(stats('a|b|c|d|e|f|g|h').unionOperands).to.equal(8);
    });

    it('refuses variable references', () => {
      expect(refusal('$x').message).to.contain('variable references ($x) are not supported');
      expect(refusal('//s:a[. = $v]').message).to.contain('($v)');
    });

    it('refuses id(), unknown and prefixed functions, and lists the allowed ones', () => {
      const id = refusal('id("s1")');
      expect(id.message).to.contain("the function 'id()' is not allowed");
      expect(id.message).to.contain('count, local-name');
      expect(refusal('evaluate("//*")').message).to.contain("'evaluate()' is not allowed");
      expect(refusal('s:count(a)').message).to.contain("'s:count()' is not allowed");
      expect([...ALLOWED_FUNCTIONS.keys()])
        .to.have.length(26)
        .and.not.include('id');
    });

    it('refuses calls with the wrong number of arguments', () => {
      expect(refusal('concat("a")').message).to.contain("'concat()' takes at least 2 arguments, not 1");
      expect(refusal('count()').message).to.contain("'count()' takes 1 argument, not 0");
      expect(refusal('substring("abc")').message).to.contain('takes 2 to 3 arguments, not 1');
      expect(refusal('true(1)').message).to.contain('takes 0 arguments, not 1');
      expect(stats('concat("a", "b", "c", "d")').functions).to.deep.equal(['concat']);
    });

    it('refuses undeclared prefixes, including inherited Object properties and empty URIs', () => {
      expect(refusal('/x:a').message).to.contain("the namespace prefix 'x' is not declared");
      expect(refusal('x:*').message).to.contain("'x'");
      expect(refusal('//@x:a').message).to.contain("'x'");
      expect(refusal('//constructor:a').message).to.contain("'constructor'");
      expect(refusal('//e:a', {}, { e: '' }).message).to.contain("'e'");
      expect(stats('//@xml:lang').prefixes).to.deep.equal(['xml']);
    });

    it('refuses syntax errors and unknown axes', () => {
      for (const bad of ['s:a[', '1 +', '#', '"open', 'foo(', 'bogus::a']) {
        const e = refusal(bad);
        expect(e.kind, bad).to.equal('invalid');
        expect(e.message, bad).to.contain('not valid XPath 1.0');
      }
      expect(refusal('   ').message).to.contain('empty');
    });

    it('applies limits given by the caller', () => {
      expect(() => checkExpression('//s:a//s:b', NS, { maxDescendantSteps: 1 })).to.throw(
        XPathQueryError,
        '2 descendant steps',
      );
      expect(() => checkExpression('a|b', NS, { maxUnions: 1 })).to.throw(
        XPathQueryError,
        'unions 2 operands',
      );
      // An explicit undefined keeps the default instead of disabling the check.
      expect(() => checkExpression('a|b|c|d|e|f|g|h|i', NS, { maxUnions: undefined })).to.throw(
        XPathQueryError,
        'at most 8',
      );
    });
  });

  describe('resolveLimits', () => {
    it('fills in the defaults', () => {
      expect(resolveLimits()).to.deep.equal(DEFAULT_XPATH_LIMITS);
      expect(DEFAULT_XPATH_LIMITS).to.deep.include({
        maxExpressionChars: 512,
        maxNesting: 32,
        maxPredicateDepth: 2,
        maxDescendantSteps: 4,
        maxPredicates: 8,
        maxUnions: 8,
        maxResultNodes: 1000,
        maxResultChars: 262144,
        timeoutMs: 100,
        maxQueued: 64,
      });
      expect(resolveLimits({ timeoutMs: 250, maxQueued: 0 })).to.include({
        timeoutMs: 250,
        maxQueued: 0,
        maxUnions: 8,
      });
    });

    it('rejects negative and fractional values, and zero where it makes no sense', () => {
      expect(() => resolveLimits({ timeoutMs: 0 })).to.throw(RangeError, 'timeoutMs');
      expect(() => resolveLimits({ maxPredicates: 1.5 })).to.throw(RangeError);
      expect(() => resolveLimits({ maxQueued: -1 })).to.throw(RangeError);
      expect(() => resolveLimits({ maxWorkerHeapMb: 0 })).to.throw(RangeError);
      expect(resolveLimits({ maxPredicates: 0 }).maxPredicates).to.equal(0);
      expect(() => resolveLimits({ maxResultChars: Number.NaN })).to.throw(RangeError);
    });
  });
});
