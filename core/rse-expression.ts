/**
 * RSE expressions: Rucio's language for naming a set of storage elements, with Rucio's meaning,
 * so that expressions users already have keep working. Pure: no I/O. The caller passes the RSEs
 * of the caller's VO and nothing else; nothing outside that list can ever be matched or named.
 *
 * Grammar (no whitespace anywhere, as in Rucio):
 *
 *   expression := operand (operator operand)*
 *   operator   := '|' (union) | '&' (intersection) | '\' (difference)
 *   operand    := '(' expression ')' | '*' | word | key ('=' | '<' | '>') value
 *   word       := [A-Za-z0-9]+ ([_-][A-Za-z0-9]+)*      RSE name or boolean attribute key
 *   key        := [A-Za-z0-9._-]+
 *   value      := [A-Za-z0-9._-]+                       after '<' or '>': -?digits[.digits]
 *
 * Meaning:
 * - No precedence: operators apply strictly left to right. `A&B|C` is `(A&B)|C`, `A|B&C` is
 *   `(A|B)&C`. Parentheses group.
 * - `*` is every candidate RSE.
 * - `word` matches the RSEs whose attribute `word` is true ('true' in any case, or '1').
 *   Every RSE implicitly carries `<its name>=true` (it wins over a stored attribute of the same
 *   key), so an RSE name selects that RSE.
 * - `key=value` compares strings exactly, except that a value of true/false (any case) compares
 *   as a boolean: `key=true` is the same set as the bare word `key`, `key=false` matches
 *   'false' (any case) or '0'.
 * - `key<n` / `key>n` compare numerically; attribute values that are not numbers never match.
 *
 * Differences from Rucio (deliberate):
 * - A word or key that is neither an RSE name nor an attribute key of any candidate RSE is an
 *   error (Rucio silently resolves it to nothing, which hides typos inside unions/differences).
 * - Values may contain '.', so `freespace>1.5` and `version=2.1` parse (Rucio rejects them).
 * - `key<abc` is a parse error (Rucio resolves it to nothing).
 * - The RSE's own-name attribute is always true, even if an admin stored something else.
 *
 * Errors (stable codes, all HTTP 400; positions are 1-based character positions):
 * - `InvalidRSEExpression`  (InvalidRseExpression)  syntax; details { expression, position, reason }
 *      reason: empty | tooLong | tooDeep | whitespace | unexpectedCharacter | danglingOperator |
 *              missingOperator | unbalancedParenthesis | emptyParentheses | invalidName |
 *              missingValue | notANumber
 * - `UnknownRSEOrAttribute` (UnknownRseOrAttribute) details { expression, position, name }
 * - `RSEExpressionEmpty`    (RseExpressionEmpty)    details { expression, position } where
 *      position is where the result became empty for good (top level), 1 if it never had RSEs.
 */
import { InvalidInput } from './errors.ts';

export interface RseCandidate {
  id: number;
  name: string;
  /** Attribute values as stored (strings). `<name>=true` is implied and need not be present. */
  attributes: Record<string, string>;
}

export type RseSetOperator = '|' | '&' | '\\';
export type RseCompareOperator = '=' | '<' | '>';

export type RseExpressionNode =
  | { kind: 'all'; position: number }
  | { kind: 'word'; name: string; position: number }
  | { kind: 'compare'; key: string; op: RseCompareOperator; value: string; position: number }
  | {
      kind: 'chain';
      position: number;
      first: RseExpressionNode;
      rest: Array<{ op: RseSetOperator; position: number; operand: RseExpressionNode }>;
    };

/** A parsed expression: the tree plus the text it came from (for error messages). */
export interface RseExpressionAst {
  source: string;
  root: RseExpressionNode;
}

export interface RseExpressionStep {
  /** Canonical text of the operand (a group prints as `(...)`). */
  term: string;
  /** Operator that combined this operand with the result so far; absent for the first operand. */
  operator?: RseSetOperator;
  /** 1-based position of the operand in the expression. */
  position: number;
  /** 0 for the top level, +1 per enclosing parenthesis. Inner steps come before their group. */
  depth: number;
  /** Names matched by the operand alone, sorted. */
  matched: string[];
  /** Names in the running result after this step, sorted. */
  result: string[];
}

export interface RseExpressionResult {
  /** Matching RSEs sorted by name (then id). Never empty: an empty result throws. */
  rses: RseCandidate[];
  steps?: RseExpressionStep[];
}

export const RSE_EXPRESSION_MAX_LENGTH = 8192;
export const RSE_EXPRESSION_MAX_DEPTH = 64;

export type InvalidRseExpressionReason =
  | 'empty'
  | 'tooLong'
  | 'tooDeep'
  | 'whitespace'
  | 'unexpectedCharacter'
  | 'danglingOperator'
  | 'missingOperator'
  | 'unbalancedParenthesis'
  | 'emptyParentheses'
  | 'invalidName'
  | 'missingValue'
  | 'notANumber';

/** Messages quote the expression; a huge one must not make a huge message (or log line). */
function clip(text: string): string {
  return text.length <= 200 ? text : `${text.slice(0, 200)}...`;
}

export class InvalidRseExpression extends InvalidInput {
  constructor(expression: string, position: number, reason: InvalidRseExpressionReason, message: string) {
    super('InvalidRSEExpression', message, { details: { expression, position, reason } });
  }
}

export class UnknownRseOrAttribute extends InvalidInput {
  constructor(expression: string, position: number, name: string) {
    super(
      'UnknownRSEOrAttribute',
      `RSE expression '${clip(expression)}' names '${name}' at position ${position}, which is neither an RSE ` +
        `nor an attribute of any RSE of this VO; check the spelling (names and keys are case-sensitive)`,
      { details: { expression, position, name } },
    );
  }
}

export class RseExpressionEmpty extends InvalidInput {
  constructor(expression: string, position: number, tail: string) {
    const where =
      position <= 1
        ? ' (already its first term, at position 1, matches none)'
        : ` (it becomes empty at position ${position}, '${clip(tail)}')`;
    super(
      'RSEExpressionEmpty',
      `RSE expression '${clip(expression)}' matches no RSE${where}; check attribute values, or use the ` +
        `explain option to see the set after each step`,
      { details: { expression, position } },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

const WORD = /^[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*$/;
const NUMBER_LITERAL = /^-?(?:\d+(?:\.\d+)?|\.\d+)$/;
// Stored attribute values count as numbers in the same forms Python's float() takes for
// ordinary numbers (Rucio compares with float()); inf/nan are deliberately not numbers.
const NUMERIC_VALUE = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

function isNameChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || // 0-9
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    c === 95 || // _
    c === 45 || // -
    c === 46 // .
  );
}

function isOperator(ch: string | undefined): ch is RseSetOperator {
  return ch === '|' || ch === '&' || ch === '\\';
}

function describe(ch: string): string {
  return /\s/.test(ch) ? `whitespace (${JSON.stringify(ch)})` : `'${ch}'`;
}

class Parser {
  private pos = 0;
  constructor(private readonly src: string) {}

  private fail(reason: InvalidRseExpressionReason, index: number, what: string): never {
    const position = index + 1;
    throw new InvalidRseExpression(this.src, position, reason, `RSE expression '${clip(this.src)}' ${what.replace('@', `at position ${position}`)}`);
  }

  parse(): RseExpressionNode {
    const s = this.src;
    if (s.length === 0) this.fail('empty', 0, 'is empty @; give an RSE name, an attribute term such as tier=1, or *');
    if (s.length > RSE_EXPRESSION_MAX_LENGTH) {
      this.fail('tooLong', RSE_EXPRESSION_MAX_LENGTH, `is longer than ${RSE_EXPRESSION_MAX_LENGTH} characters (exceeds the limit @)`);
    }
    this.checkParentheses();
    const root = this.chain();
    // checkParentheses guarantees that anything left over is impossible; keep a guard anyway.
    if (this.pos < s.length) this.unexpected(this.pos, 'an operator');
    return root;
  }

  /** Parentheses are checked first, as Rucio does, so that the reported error is the root cause. */
  private checkParentheses(): void {
    const open: number[] = [];
    for (let i = 0; i < this.src.length; i++) {
      const ch = this.src[i];
      if (ch === '(') {
        open.push(i);
        if (open.length > RSE_EXPRESSION_MAX_DEPTH) {
          this.fail('tooDeep', i, `nests parentheses deeper than ${RSE_EXPRESSION_MAX_DEPTH} levels @; simplify it`);
        }
      } else if (ch === ')') {
        if (open.length === 0) this.fail('unbalancedParenthesis', i, "has a ')' @ without a matching '('; remove it or add the '('");
        open.pop();
      }
    }
    if (open.length > 0) {
      this.fail('unbalancedParenthesis', open[open.length - 1], "has a '(' @ that is never closed; add the ')'");
    }
  }

  private unexpected(index: number, expected: string): never {
    const ch = this.src[index];
    if (/\s/.test(ch)) this.fail('whitespace', index, 'contains whitespace @; RSE expressions have no spaces, remove it');
    this.fail('unexpectedCharacter', index, `has an unexpected ${describe(ch)} @; expected ${expected}`);
  }

  private chain(): RseExpressionNode {
    const s = this.src;
    const position = this.pos + 1;
    const first = this.operand();
    const rest: Array<{ op: RseSetOperator; position: number; operand: RseExpressionNode }> = [];
    while (this.pos < s.length && s[this.pos] !== ')') {
      const ch = s[this.pos];
      if (isOperator(ch)) {
        const opIndex = this.pos;
        this.pos++;
        if (this.pos >= s.length) {
          this.fail('danglingOperator', opIndex, `ends with an operator @; add a term after '${ch}' or remove it`);
        }
        const next = s[this.pos];
        if (isOperator(next)) {
          this.fail('danglingOperator', this.pos, `has two operators in a row ('${ch}${next}') @; put a term between them or remove one`);
        }
        if (next === ')') {
          this.fail('danglingOperator', opIndex, `has an operator @ with no term after it before ')'; add a term or remove '${ch}'`);
        }
        rest.push({ op: ch, position: opIndex + 1, operand: this.operand() });
      } else if (ch === '(' || ch === '*' || isNameChar(ch.charCodeAt(0))) {
        this.fail('missingOperator', this.pos, "has two terms without an operator between them @; join them with '|', '&' or '\\'");
      } else {
        this.unexpected(this.pos, "an operator ('|', '&', '\\') or ')'");
      }
    }
    return rest.length === 0 ? first : { kind: 'chain', position, first, rest };
  }

  private operand(): RseExpressionNode {
    const s = this.src;
    const i = this.pos;
    const ch = s[i];
    if (ch === '(') {
      if (s[i + 1] === ')') this.fail('emptyParentheses', i, "has empty parentheses '()' @; put a term inside or remove them");
      if (isOperator(s[i + 1])) {
        this.fail('danglingOperator', i + 1, `has an operator '${s[i + 1]}' right after '(' @; put a term before it`);
      }
      this.pos++;
      const inner = this.chain();
      // Balance was checked up front, so the chain stopped at this group's ')'.
      this.pos++;
      // A group's position is that of its '(' (what explain and errors point at).
      return inner.kind === 'chain' ? { ...inner, position: i + 1 } : inner;
    }
    if (ch === '*') {
      this.pos++;
      return { kind: 'all', position: i + 1 };
    }
    if (isOperator(ch)) {
      const what = i === 0 ? 'starts with an operator' : 'has an operator where a term is expected';
      this.fail('danglingOperator', i, `${what} ('${ch}') @; put an RSE name or attribute term before it`);
    }
    if (ch === ')') {
      // Unreachable after checkParentheses plus the checks in chain(); kept as a guard.
      this.fail('danglingOperator', i, "has ')' where a term is expected @");
    }
    if (!isNameChar(ch.charCodeAt(0))) this.unexpected(i, "an RSE name, an attribute term or '*'");
    return this.term();
  }

  private readName(): string {
    const start = this.pos;
    while (this.pos < this.src.length && isNameChar(this.src.charCodeAt(this.pos))) this.pos++;
    return this.src.slice(start, this.pos);
  }

  private term(): RseExpressionNode {
    const s = this.src;
    const start = this.pos;
    const key = this.readName();
    const opCh = s[this.pos];
    if (opCh === '=' || opCh === '<' || opCh === '>') {
      const opIndex = this.pos;
      this.pos++;
      const valueStart = this.pos;
      const value = this.readName();
      if (value.length === 0) {
        this.fail('missingValue', opIndex, `has no value after '${opCh}' @; write it as ${key}${opCh}<value>`);
      }
      if (opCh !== '=' && !NUMBER_LITERAL.test(value)) {
        this.fail('notANumber', valueStart, `compares '${key}' with '${value}' @, which is not a number; '<' and '>' take numbers such as 100 or -2.5`);
      }
      return { kind: 'compare', key, op: opCh, value, position: start + 1 };
    }
    if (!WORD.test(key)) {
      this.fail(
        'invalidName',
        start,
        `has '${key}' @, which is not a valid RSE name or attribute key (letters and digits, joined by single '_' or '-'); '.' is allowed only in key=value terms`,
      );
    }
    return { kind: 'word', name: key, position: start + 1 };
  }
}

/** Parse an expression. Throws InvalidRseExpression naming the 1-based position of the problem. */
export function parseRseExpression(expr: string): RseExpressionAst {
  if (typeof expr !== 'string') {
    throw new InvalidRseExpression(String(expr), 1, 'empty', 'RSE expression must be a string');
  }
  return { source: expr, root: new Parser(expr).parse() };
}

/** Canonical text: no whitespace, parentheses exactly around groups that are operands. */
export function formatRseExpression(ast: RseExpressionAst | RseExpressionNode): string {
  return formatNode('root' in ast ? ast.root : ast);
}

function formatNode(node: RseExpressionNode): string {
  switch (node.kind) {
    case 'all':
      return '*';
    case 'word':
      return node.name;
    case 'compare':
      return `${node.key}${node.op}${node.value}`;
    case 'chain': {
      let out = formatOperand(node.first);
      for (const r of node.rest) out += r.op + formatOperand(r.operand);
      return out;
    }
  }
}

function formatOperand(node: RseExpressionNode): string {
  return node.kind === 'chain' ? `(${formatNode(node)})` : formatNode(node);
}

// ---------------------------------------------------------------------------------------------
// Index and bitsets

function isTrueValue(v: string): boolean {
  return v === '1' || v.toLowerCase() === 'true';
}
/** true/false (any case) on the right of '=' compare as booleans; anything else as a string. */
function booleanLiteral(v: string): boolean | undefined {
  const l = v.toLowerCase();
  return l === 'true' ? true : l === 'false' ? false : undefined;
}
function isFalseValue(v: string): boolean {
  return v === '0' || v.toLowerCase() === 'false';
}

interface KeyInfo {
  /** value -> candidate indexes holding it (the implicit own-name 'true' included). */
  byValue: Map<string, number[]>;
  numbers?: Float64Array; // NaN where absent or not numeric; built on first '<'/'>'
}

const TERM_CACHE_LIMIT = 4096;

/**
 * Candidates sorted by name, with per-attribute-key lookups built lazily (on the first term that
 * uses a key) and term results cached. Build once (createRseIndex) and reuse it to resolve many
 * expressions against the same RSE list; build a new one when the list or attributes change.
 */
export class RseIndex {
  /** The candidates, sorted by name then id. */
  readonly sorted: readonly RseCandidate[];
  readonly words: number;
  readonly all: Uint32Array;
  private readonly byName = new Map<string, number[]>();
  private readonly keys = new Map<string, KeyInfo>();
  private readonly terms = new Map<string, Uint32Array | null>();

  constructor(rses: readonly RseCandidate[]) {
    this.sorted = [...rses].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id));
    const n = this.sorted.length;
    this.words = (n + 31) >>> 5;
    this.all = new Uint32Array(this.words);
    for (let i = 0; i < n; i++) {
      this.all[i >>> 5] |= 1 << (i & 31);
      const name = this.sorted[i].name;
      const list = this.byName.get(name);
      if (list) list.push(i);
      else this.byName.set(name, [i]);
    }
  }

  private key(key: string): KeyInfo {
    let info = this.keys.get(key);
    if (info) return info;
    const byValue = new Map<string, number[]>();
    const own = this.byName.get(key);
    for (let i = 0; i < this.sorted.length; i++) {
      const attrs = this.sorted[i].attributes;
      let v: string | undefined = Object.hasOwn(attrs, key) ? String(attrs[key]) : undefined;
      if (own !== undefined && this.sorted[i].name === key) v = 'true';
      if (v === undefined) continue;
      const list = byValue.get(v);
      if (list) list.push(i);
      else byValue.set(v, [i]);
    }
    info = { byValue };
    this.keys.set(key, info);
    return info;
  }

  private bits(indexes: Iterable<number>, into = new Uint32Array(this.words)): Uint32Array {
    for (const i of indexes) into[i >>> 5] |= 1 << (i & 31);
    return into;
  }

  /** Bitset of a term, or null when its key/name is unknown. Cached; callers must not mutate. */
  term(node: Exclude<RseExpressionNode, { kind: 'chain' }>): Uint32Array | null {
    if (node.kind === 'all') return this.all;
    const cacheKey = formatNode(node);
    const cached = this.terms.get(cacheKey);
    if (cached !== undefined) return cached;
    const result = this.computeTerm(node);
    if (this.terms.size >= TERM_CACHE_LIMIT) this.terms.clear();
    this.terms.set(cacheKey, result);
    return result;
  }

  private computeTerm(node: Extract<RseExpressionNode, { kind: 'word' | 'compare' }>): Uint32Array | null {
    const key = node.kind === 'word' ? node.name : node.key;
    const info = this.key(key);
    if (info.byValue.size === 0) return null;
    const out = new Uint32Array(this.words);
    const wanted = node.kind === 'word' ? true : node.op === '=' ? booleanLiteral(node.value) : undefined;
    if (wanted !== undefined) {
      // Bare word, key=true or key=false (any case): boolean comparison.
      for (const [v, idx] of info.byValue) if (wanted ? isTrueValue(v) : isFalseValue(v)) this.bits(idx, out);
      return out;
    }
    if (node.kind === 'word') return out; // unreachable: words always compare as booleans
    if (node.op === '=') {
      const idx = info.byValue.get(node.value);
      return idx ? this.bits(idx, out) : out;
    }
    if (!info.numbers) {
      const numbers = new Float64Array(this.sorted.length).fill(Number.NaN);
      for (const [v, idx] of info.byValue) {
        if (!NUMERIC_VALUE.test(v)) continue;
        const x = Number(v.trim());
        for (const i of idx) numbers[i] = x;
      }
      info.numbers = numbers;
    }
    const bound = Number(node.value);
    const nums = info.numbers;
    const less = node.op === '<';
    for (let i = 0; i < nums.length; i++) {
      const x = nums[i];
      // NaN (absent or non-numeric) fails both comparisons.
      if (less ? x < bound : x > bound) out[i >>> 5] |= 1 << (i & 31);
    }
    return out;
  }

  names(set: Uint32Array): string[] {
    return this.members(set).map((r) => r.name);
  }

  members(set: Uint32Array): RseCandidate[] {
    const out: RseCandidate[] = [];
    for (let w = 0; w < set.length; w++) {
      let word = set[w];
      while (word !== 0) {
        const bit = word & -word;
        out.push(this.sorted[(w << 5) + 31 - Math.clz32(bit)]);
        word ^= bit;
      }
    }
    return out;
  }
}

/** Build a reusable index over one VO's RSEs. */
export function createRseIndex(rses: readonly RseCandidate[]): RseIndex {
  return new RseIndex(rses);
}

function isEmpty(set: Uint32Array): boolean {
  for (let w = 0; w < set.length; w++) if (set[w] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

class Evaluator {
  constructor(
    private readonly ix: RseIndex,
    private readonly source: string,
    private readonly steps: RseExpressionStep[] | undefined,
  ) {}

  /** Result of a node; may return a shared (cached) bitset, so callers copy before mutating. */
  node(node: RseExpressionNode, depth: number): Uint32Array {
    if (node.kind !== 'chain') {
      const set = this.ix.term(node);
      if (set === null) throw new UnknownRseOrAttribute(this.source, node.position, node.kind === 'word' ? node.name : (node as { key: string }).key);
      return set;
    }
    return this.chain(node, depth).result;
  }

  chain(node: Extract<RseExpressionNode, { kind: 'chain' }>, depth: number): { result: Uint32Array; history: boolean[] } {
    const acc = Uint32Array.from(this.node(node.first, depth + 1));
    const history = [isEmpty(acc)];
    this.record(node.first, undefined, depth, acc, acc);
    for (const r of node.rest) {
      const m = this.node(r.operand, depth + 1);
      const w = acc.length;
      if (r.op === '|') for (let i = 0; i < w; i++) acc[i] |= m[i];
      else if (r.op === '&') for (let i = 0; i < w; i++) acc[i] &= m[i];
      else for (let i = 0; i < w; i++) acc[i] &= ~m[i];
      history.push(isEmpty(acc));
      this.record(r.operand, r.op, depth, m, acc);
    }
    return { result: acc, history };
  }

  record(operand: RseExpressionNode, operator: RseSetOperator | undefined, depth: number, matched: Uint32Array, result: Uint32Array): void {
    if (!this.steps) return;
    this.steps.push({
      term: formatOperand(operand),
      ...(operator === undefined ? {} : { operator }),
      position: operand.position,
      depth,
      matched: this.ix.names(matched),
      result: this.ix.names(result),
    });
  }
}

/**
 * Resolve an expression against the caller's VO's RSEs (a list, or an index from createRseIndex).
 * Returns the matching RSEs sorted by name; with `explain`, also the set after every step.
 * Throws InvalidRseExpression, UnknownRseOrAttribute or RseExpressionEmpty (all 400).
 */
export function evaluateRseExpression(
  expression: RseExpressionAst | string,
  rses: readonly RseCandidate[] | RseIndex,
  options: { explain?: boolean } = {},
): RseExpressionResult {
  const ast = typeof expression === 'string' ? parseRseExpression(expression) : expression;
  const ix = rses instanceof RseIndex ? rses : new RseIndex(rses);
  const steps = options.explain ? ([] as RseExpressionStep[]) : undefined;
  const ev = new Evaluator(ix, ast.source, steps);
  const root = ast.root;
  let result: Uint32Array;
  let emptyFrom = 1;
  if (root.kind === 'chain') {
    const r = ev.chain(root, 0);
    result = r.result;
    if (isEmpty(result)) {
      // Where the result became empty and stayed so: the most useful place to point a user at.
      // history[0] is the first operand, history[k] the step of rest[k - 1].
      let k = r.history.length - 1;
      while (k > 0 && r.history[k - 1]) k--;
      emptyFrom = k === 0 ? 1 : root.rest[k - 1].position;
    }
  } else {
    result = ev.node(root, 0);
    ev.record(root, undefined, 0, result, result);
  }
  if (isEmpty(result)) {
    const tail = ast.source.slice(emptyFrom - 1);
    throw new RseExpressionEmpty(ast.source, emptyFrom, tail);
  }
  const out: RseExpressionResult = { rses: ix.members(result) };
  if (steps) out.steps = steps;
  return out;
}
