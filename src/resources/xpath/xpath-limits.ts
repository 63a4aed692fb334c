/**
 * Static checks on a consumer-supplied XPath 1.0 expression, run before it reaches the worker.
 * See docs/design/xpath-engines.md: a length limit alone does not bound the cost, so the parsed
 * AST is walked and expensive shapes are refused up front. The worker's timeout is the backstop.
 */
import { createRequire } from 'node:module';

export type XPathErrorKind = 'invalid' | 'evaluation' | 'timeout' | 'busy';

/** The caller maps `kind` to a SOAP fault; `message` is written for the client. */
export class XPathQueryError extends Error {
  readonly kind: XPathErrorKind;

  constructor(kind: XPathErrorKind, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'XPathQueryError';
    this.kind = kind;
  }
}

export interface XPathLimits {
  /** Longest expression accepted, in UTF-16 code units. */
  maxExpressionChars: number;
  /** Deepest nesting of ( and [ (checked before parsing). */
  maxNesting: number;
  /** Deepest nesting of predicates inside predicates. */
  maxPredicateDepth: number;
  /** Most descendant:: / descendant-or-self:: steps, `//` included. */
  maxDescendantSteps: number;
  /**
   * Deepest nesting of document-wide scans (descendant, descendant-or-self, following,
   * preceding) through predicates: the evaluation cost grows as (document size)^depth.
   */
  maxScanNesting: number;
  /** Most predicates in the whole expression. */
  maxPredicates: number;
  /** Most operands of `|`, summed over the expression. */
  maxUnions: number;
  /** Most nodes in a node-set result. */
  maxResultNodes: number;
  /** Most characters in the serialized result. */
  maxResultChars: number;
  /** Hard wall-clock limit per evaluation, in milliseconds. */
  timeoutMs: number;
  /** Requests waiting behind the one in flight before `evaluate` answers 'busy'. */
  maxQueued: number;
  /** Old-generation heap of the worker; exceeding it kills the worker ('evaluation'). */
  maxWorkerHeapMb: number;
}

export const DEFAULT_XPATH_LIMITS: Readonly<XPathLimits> = Object.freeze({
  maxExpressionChars: 512,
  maxNesting: 32,
  maxPredicateDepth: 2,
  maxDescendantSteps: 4,
  maxScanNesting: 2,
  maxPredicates: 8,
  maxUnions: 8,
  maxResultNodes: 1000,
  maxResultChars: 262144,
  timeoutMs: 100,
  maxQueued: 64,
  maxWorkerHeapMb: 32,
});

/** Fills in defaults and rejects nonsense values (a programming error, not a client error). */
export function resolveLimits(partial: Partial<XPathLimits> = {}): XPathLimits {
  const limits: XPathLimits = { ...DEFAULT_XPATH_LIMITS };
  for (const key of Object.keys(DEFAULT_XPATH_LIMITS) as (keyof XPathLimits)[]) {
    const value = partial[key];
    if (value === undefined) continue;
    // Zero is a meaningful budget ("no predicates"), except for these.
    const min = key === 'timeoutMs' || key === 'maxWorkerHeapMb' || key === 'maxExpressionChars' ? 1 : 0;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`XPath limit ${key} must be an integer >= ${min}, got ${String(value)}`);
    }
    limits[key] = value;
  }
  return limits;
}

/** XPath 1.0 core functions with their arity, except id() (it scans the document by ID). */
export const ALLOWED_FUNCTIONS: ReadonlyMap<string, readonly [number, number]> = new Map<
  string,
  readonly [number, number]
>([
  ['last', [0, 0]],
  ['position', [0, 0]],
  ['count', [1, 1]],
  ['local-name', [0, 1]],
  ['namespace-uri', [0, 1]],
  ['name', [0, 1]],
  ['string', [0, 1]],
  ['concat', [2, Infinity]],
  ['starts-with', [2, 2]],
  ['contains', [2, 2]],
  ['substring-before', [2, 2]],
  ['substring-after', [2, 2]],
  ['substring', [2, 3]],
  ['string-length', [0, 1]],
  ['normalize-space', [0, 1]],
  ['translate', [3, 3]],
  ['boolean', [1, 1]],
  ['not', [1, 1]],
  ['true', [0, 0]],
  ['false', [0, 0]],
  ['lang', [1, 1]],
  ['number', [0, 1]],
  ['sum', [1, 1]],
  ['floor', [1, 1]],
  ['ceiling', [1, 1]],
  ['round', [1, 1]],
]);

export const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace';

/**
 * The URI bound to `prefix`, or undefined. Own properties only (a prefix named `constructor`
 * must not resolve), and never an empty URI: the `xpath` package treats a falsy answer as
 * "not found" and falls back to the document's own declarations.
 */
export function lookupPrefix(
  namespaces: Readonly<Record<string, string>>,
  prefix: string,
): string | undefined {
  if (prefix === 'xml') return XML_NAMESPACE;
  if (!Object.hasOwn(namespaces, prefix)) return undefined;
  const uri = namespaces[prefix];
  return typeof uri === 'string' && uri !== '' ? uri : undefined;
}

// --- The `xpath` package (pinned: the walker below reads its internal AST fields) ------------

type Ctor = abstract new (...args: never[]) => object;

interface XPathValue {
  stringValue(): string;
  numberValue(): number;
  booleanValue(): boolean;
}

export interface XNodeSetValue extends XPathValue {
  /** Nodes in document order. */
  toArray(): unknown[];
}

export interface ParsedXPath {
  expression: { expression: object };
  evaluate(options: {
    node: unknown;
    namespaces?: (prefix: string) => string;
    functions?: (localName: string, namespace: string) => undefined;
    variables?: (name: string, namespace: string) => never;
  }): XPathValue;
}

export interface XPathPackage {
  parse(expression: string): ParsedXPath;
  PathExpr: Ctor;
  LocationPath: Ctor;
  Step: Ctor & Record<(typeof AXES)[number], number>;
  NodeTest: Ctor & {
    NAMETESTANY: number;
    NAMETESTPREFIXANY: number;
    NAMETESTQNAME: number;
    COMMENT: number;
    TEXT: number;
    PI: number;
    NODE: number;
  };
  FunctionCall: Ctor;
  VariableReference: Ctor;
  BarOperation: Ctor;
  UnaryMinusOperation: Ctor;
  XString: Ctor;
  XNumber: Ctor;
  XBoolean: Ctor;
  XNodeSet: Ctor;
  [binaryOperation: string]: unknown;
}

const AXES = [
  'ANCESTOR',
  'ANCESTORORSELF',
  'ATTRIBUTE',
  'CHILD',
  'DESCENDANT',
  'DESCENDANTORSELF',
  'FOLLOWING',
  'FOLLOWINGSIBLING',
  'NAMESPACE',
  'PARENT',
  'PRECEDING',
  'PRECEDINGSIBLING',
  'SELF',
] as const;

const BINARY_OPERATIONS = [
  'OrOperation',
  'AndOperation',
  'EqualsOperation',
  'NotEqualOperation',
  'LessThanOperation',
  'GreaterThanOperation',
  'LessThanOrEqualOperation',
  'GreaterThanOrEqualOperation',
  'PlusOperation',
  'MinusOperation',
  'MultiplyOperation',
  'DivOperation',
  'ModOperation',
] as const;

// Loaded untyped on purpose: the package's .d.ts pulls `lib="dom"` into the whole program and
// declares neither parse() nor the AST classes.
export const xpath = createRequire(__filename)('xpath') as XPathPackage;

// Fail closed at load time if a version bump renamed what the walker relies on.
(function assertPackageShape(): void {
  const classes = [
    'PathExpr',
    'LocationPath',
    'Step',
    'NodeTest',
    'FunctionCall',
    'VariableReference',
    'BarOperation',
    'UnaryMinusOperation',
    'XString',
    'XNumber',
    'XBoolean',
    'XNodeSet',
    ...BINARY_OPERATIONS,
  ];
  const missing = classes.filter((name) => typeof xpath[name] !== 'function');
  const numbers = [
    ...AXES.map((axis) => xpath.Step?.[axis]),
    xpath.NodeTest?.NAMETESTQNAME,
    xpath.NodeTest?.NAMETESTPREFIXANY,
  ];
  if (typeof xpath.parse !== 'function' || missing.length > 0 || !numbers.every(Number.isInteger)) {
    throw new Error(`unsupported xpath package: missing ${missing.join(', ') || 'parse or constants'}`);
  }
})();

const BINARY_CLASSES: readonly Ctor[] = BINARY_OPERATIONS.map((name) => xpath[name] as Ctor);
const DESCENDANT_AXES = new Set([xpath.Step.DESCENDANT, xpath.Step.DESCENDANTORSELF]);
const SCAN_AXES = new Set([
  xpath.Step.DESCENDANT,
  xpath.Step.DESCENDANTORSELF,
  xpath.Step.FOLLOWING,
  xpath.Step.PRECEDING,
]);
const KNOWN_AXES = new Set(AXES.map((axis) => xpath.Step[axis]));
const NODE_TEST_TYPES = new Set([
  xpath.NodeTest.NAMETESTANY,
  xpath.NodeTest.NAMETESTPREFIXANY,
  xpath.NodeTest.NAMETESTQNAME,
  xpath.NodeTest.COMMENT,
  xpath.NodeTest.TEXT,
  xpath.NodeTest.PI,
  xpath.NodeTest.NODE,
]);
/** Guards the recursive walk; unreachable with the default length limit. */
const MAX_AST_DEPTH = 1000;

// --- The checks -----------------------------------------------------------------------------

export interface ExpressionStats {
  chars: number;
  nesting: number;
  predicateDepth: number;
  descendantSteps: number;
  scanNesting: number;
  predicates: number;
  unionOperands: number;
  functions: string[];
  prefixes: string[];
}

/**
 * Throws XPathQueryError('invalid') if the expression is not XPath 1.0 or exceeds a limit;
 * returns what it measured. Cheap and bounded: safe to run on the calling thread.
 */
export function checkExpression(
  expression: string,
  namespaces: Readonly<Record<string, string>>,
  limits: Partial<XPathLimits> = {},
): ExpressionStats {
  const lim = resolveLimits(limits);
  if (typeof expression !== 'string') {
    throw new XPathQueryError('invalid', 'the query expression must be a string');
  }
  if (expression.length > lim.maxExpressionChars) {
    throw new XPathQueryError(
      'invalid',
      `the expression is ${expression.length} characters long; at most ${lim.maxExpressionChars} are allowed: shorten it or split it into several queries`,
    );
  }
  // Before parsing, so that a pathological expression never reaches the parser.
  const nesting = bracketNesting(expression);
  if (nesting > lim.maxNesting) {
    throw new XPathQueryError(
      'invalid',
      `the expression nests brackets and parentheses ${nesting} deep; at most ${lim.maxNesting} are allowed: remove redundant parentheses`,
    );
  }
  if (expression.trim() === '') {
    throw new XPathQueryError('invalid', 'the query expression is empty; send an XPath 1.0 expression');
  }
  let parsed: ParsedXPath;
  try {
    parsed = xpath.parse(expression);
  } catch (e) {
    throw new XPathQueryError(
      'invalid',
      `the expression is not valid XPath 1.0 (${errorText(e)}): check brackets, quotes, operators and axis names`,
      { cause: e },
    );
  }
  const stats: ExpressionStats = {
    chars: expression.length,
    nesting,
    predicateDepth: 0,
    descendantSteps: 0,
    scanNesting: 0,
    predicates: 0,
    unionOperands: 0,
    functions: [],
    prefixes: [],
  };
  new Walker(stats, namespaces).expr(parsed.expression.expression, 0, 0, 0);
  enforce(stats, lim);
  return stats;
}

function enforce(s: ExpressionStats, lim: XPathLimits): void {
  const refuse = (message: string): never => {
    throw new XPathQueryError('invalid', message);
  };
  if (s.predicateDepth > lim.maxPredicateDepth) {
    refuse(
      `the expression nests predicates ${s.predicateDepth} deep; at most ${lim.maxPredicateDepth} are allowed: move inner conditions out of nested predicates or split the query`,
    );
  }
  if (s.descendantSteps > lim.maxDescendantSteps) {
    refuse(
      `the expression has ${s.descendantSteps} descendant steps ('//', descendant::, descendant-or-self::); at most ${lim.maxDescendantSteps} are allowed: use explicit child paths such as /a/b instead of //b`,
    );
  }
  if (s.scanNesting > lim.maxScanNesting) {
    refuse(
      `the expression nests document scans ('//', descendant::, following::, preceding::) ${s.scanNesting} deep inside predicates; at most ${lim.maxScanNesting} are allowed: use child paths inside predicates, for example //a[b/c] instead of //a[//c]`,
    );
  }
  if (s.predicates > lim.maxPredicates) {
    refuse(
      `the expression has ${s.predicates} predicates; at most ${lim.maxPredicates} are allowed: combine conditions with 'and' inside one predicate or split the query`,
    );
  }
  if (s.unionOperands > lim.maxUnions) {
    refuse(
      `the expression unions ${s.unionOperands} operands with '|'; at most ${lim.maxUnions} are allowed: split it into several queries`,
    );
  }
}

/** Deepest nesting of ( and [ outside string literals. */
function bracketNesting(expression: string): number {
  let depth = 0;
  let max = 0;
  let quote: string | undefined;
  for (const ch of expression) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '(' || ch === '[') {
      depth += 1;
      if (depth > max) max = depth;
    } else if ((ch === ')' || ch === ']') && depth > 0) {
      depth -= 1;
    }
  }
  return max;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface PathExprNode {
  filter?: object;
  filterPredicates?: unknown;
  locationPath?: object;
}
interface StepNode {
  axis: unknown;
  nodeTest: { type?: unknown; prefix?: unknown } | undefined;
  predicates: unknown;
}

/**
 * Recursive walk over the package's AST. `pred` is the predicate depth, `scan` the number of
 * enclosing predicates that run once per node of a document-wide scan.
 */
class Walker {
  private readonly prefixes = new Set<string>();
  private readonly functions = new Set<string>();
  private scanSteps = 0;

  constructor(
    private readonly stats: ExpressionStats,
    private readonly namespaces: Readonly<Record<string, string>>,
  ) {}

  expr(node: unknown, pred: number, scan: number, depth: number): void {
    if (depth > MAX_AST_DEPTH) {
      throw new XPathQueryError('invalid', 'the expression is nested too deeply: simplify it');
    }
    const d = depth + 1;
    if (node instanceof xpath.PathExpr) {
      this.pathExpr(node as PathExprNode, pred, scan, d);
    } else if (node instanceof xpath.BarOperation) {
      const operands: unknown[] = [];
      flattenUnion(node, operands);
      this.stats.unionOperands += operands.length;
      for (const operand of operands) this.expr(operand, pred, scan, d);
    } else if (BINARY_CLASSES.some((cls) => node instanceof cls)) {
      const { lhs, rhs } = node as { lhs: unknown; rhs: unknown };
      this.expr(lhs, pred, scan, d);
      this.expr(rhs, pred, scan, d);
    } else if (node instanceof xpath.UnaryMinusOperation) {
      this.expr((node as { rhs: unknown }).rhs, pred, scan, d);
    } else if (node instanceof xpath.FunctionCall) {
      const { functionName, arguments: args } = node as { functionName: unknown; arguments: unknown };
      this.functionCall(String(functionName), list(args, 'FunctionCall.arguments'));
      for (const arg of list(args, 'FunctionCall.arguments')) this.expr(arg, pred, scan, d);
    } else if (node instanceof xpath.VariableReference) {
      const name = String((node as { variable: unknown }).variable);
      throw new XPathQueryError(
        'invalid',
        `variable references ($${name}) are not supported: write the value into the expression`,
      );
    } else if (node instanceof xpath.XString || node instanceof xpath.XNumber) {
      return;
    } else {
      throw new Error(`unexpected XPath AST node ${describe(node)}: is the xpath package still 0.0.33?`);
    }
  }

  private pathExpr(node: PathExprNode, pred: number, scan: number, depth: number): void {
    const scansBefore = this.scanSteps;
    if (node.filter !== undefined) this.expr(node.filter, pred, scan, depth);
    let scanned = this.scanSteps > scansBefore;
    if (node.filterPredicates !== undefined) {
      this.predicates(
        list(node.filterPredicates, 'PathExpr.filterPredicates'),
        pred,
        scan + (scanned ? 1 : 0),
        depth,
      );
    }
    if (node.locationPath === undefined) return;
    if (!(node.locationPath instanceof xpath.LocationPath)) {
      throw new Error(`unexpected PathExpr.locationPath ${describe(node.locationPath)}`);
    }
    const steps = list((node.locationPath as { steps: unknown }).steps, 'LocationPath.steps');
    for (const step of steps) {
      if (!(step instanceof xpath.Step)) throw new Error(`unexpected step ${describe(step)}`);
      const { axis, nodeTest, predicates } = step as StepNode;
      if (typeof axis !== 'number' || !KNOWN_AXES.has(axis)) {
        throw new XPathQueryError(
          'invalid',
          'the expression is not valid XPath 1.0 (unknown axis): use one of the thirteen XPath 1.0 axes, such as child:: or descendant::',
        );
      }
      if (DESCENDANT_AXES.has(axis)) this.stats.descendantSteps += 1;
      if (SCAN_AXES.has(axis)) {
        this.scanSteps += 1;
        scanned = true;
        this.stats.scanNesting = Math.max(this.stats.scanNesting, scan + 1);
      }
      this.nodeTest(nodeTest);
      this.predicates(list(predicates, 'Step.predicates'), pred, scan + (scanned ? 1 : 0), depth);
    }
  }

  private predicates(preds: unknown[], pred: number, scan: number, depth: number): void {
    for (const p of preds) {
      this.stats.predicates += 1;
      this.stats.predicateDepth = Math.max(this.stats.predicateDepth, pred + 1);
      this.expr(p, pred + 1, scan, depth);
    }
  }

  private nodeTest(test: StepNode['nodeTest']): void {
    const type = test?.type;
    if (typeof type !== 'number' || !NODE_TEST_TYPES.has(type)) {
      throw new XPathQueryError('invalid', 'the expression is not valid XPath 1.0 (unknown node test)');
    }
    if (type !== xpath.NodeTest.NAMETESTQNAME && type !== xpath.NodeTest.NAMETESTPREFIXANY) return;
    const prefix = test?.prefix;
    if (prefix === null || prefix === undefined || prefix === '') return;
    if (typeof prefix !== 'string') throw new Error(`unexpected NodeTest.prefix ${describe(prefix)}`);
    if (lookupPrefix(this.namespaces, prefix) === undefined) {
      throw new XPathQueryError(
        'invalid',
        `the namespace prefix '${prefix}' is not declared: declare xmlns:${prefix} on the query expression element (or an ancestor) with the namespace of the properties you select`,
      );
    }
    if (!this.prefixes.has(prefix)) {
      this.prefixes.add(prefix);
      this.stats.prefixes.push(prefix);
    }
  }

  private functionCall(name: string, args: unknown[]): void {
    const arity = ALLOWED_FUNCTIONS.get(name);
    if (arity === undefined) {
      const id = name === 'id' ? ' (id() is disabled: select elements by path instead)' : '';
      throw new XPathQueryError(
        'invalid',
        `the function '${name}()' is not allowed${id}; allowed functions are the XPath 1.0 core functions: ${[...ALLOWED_FUNCTIONS.keys()].join(', ')}`,
      );
    }
    const [min, max] = arity;
    if (args.length < min || args.length > max) {
      const expected = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      throw new XPathQueryError(
        'invalid',
        `the function '${name}()' takes ${expected} argument${min === 1 && max === 1 ? '' : 's'}, not ${args.length}`,
      );
    }
    if (!this.functions.has(name)) {
      this.functions.add(name);
      this.stats.functions.push(name);
    }
  }
}

/** `(a|b)|c` has three operands: parentheses leave a bare PathExpr around the inner union. */
function flattenUnion(node: unknown, out: unknown[]): void {
  if (node instanceof xpath.BarOperation) {
    const { lhs, rhs } = node as { lhs: unknown; rhs: unknown };
    flattenUnion(lhs, out);
    flattenUnion(rhs, out);
    return;
  }
  if (node instanceof xpath.PathExpr) {
    const p = node as PathExprNode;
    const bare =
      p.locationPath === undefined &&
      (p.filterPredicates === undefined ||
        (Array.isArray(p.filterPredicates) && p.filterPredicates.length === 0));
    if (bare && p.filter instanceof xpath.BarOperation) {
      flattenUnion(p.filter, out);
      return;
    }
  }
  out.push(node);
}

function list(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`unexpected XPath AST: ${field} is not an array`);
  return value;
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  return (value.constructor as { name?: string } | undefined)?.name || 'object';
}
