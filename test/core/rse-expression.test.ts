import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InvalidInput, SluiceError } from '../../core/errors.ts';
import {
  RSE_EXPRESSION_MAX_DEPTH,
  RSE_EXPRESSION_MAX_LENGTH,
  createRseIndex,
  evaluateRseExpression,
  formatRseExpression,
  parseRseExpression,
  type RseCandidate,
} from '../../core/rse-expression.ts';

// A small VO: three countries, tiers 0-2, disk and tape, some odd attribute values.
const RSES: RseCandidate[] = [
  { id: 1, name: 'CERN-PROD_DISK', attributes: { tier: '0', country: 'CH', type: 'DISK', freespace: '500', version: '2.1' } },
  { id: 2, name: 'IN2P3_DISK', attributes: { tier: '1', country: 'FR', type: 'DISK', freespace: 'unknown', tape: 'false' } },
  { id: 3, name: 'FZK_TAPE', attributes: { tier: '1', country: 'DE', type: 'TAPE', freespace: '-3.5', tape: 'True' } },
  { id: 4, name: 'DESY_DISK', attributes: { tier: '2', country: 'DE', type: 'DISK', freespace: '1e3', tape: '0' } },
  { id: 5, name: 'LAPP_DISK', attributes: { tier: '2', country: 'FR', type: 'DISK', freespace: '20', tape: '1', nightly: 'TRUE' } },
];

function names(expr: string, rses: readonly RseCandidate[] = RSES): string[] {
  return evaluateRseExpression(expr, rses).rses.map((r) => r.name);
}

function errorOf(fn: () => unknown): SluiceError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SluiceError);
    return e as SluiceError;
  }
  throw new Error('expected an error');
}

describe('RSE expression semantics', () => {
  it('selects by RSE name (implicit <name>=true) and by attribute', () => {
    expect(names('FZK_TAPE')).toEqual(['FZK_TAPE']);
    expect(names('FZK_TAPE=true')).toEqual(['FZK_TAPE']);
    expect(names('country=DE')).toEqual(['DESY_DISK', 'FZK_TAPE']);
    expect(names('type=DISK')).toEqual(['CERN-PROD_DISK', 'DESY_DISK', 'IN2P3_DISK', 'LAPP_DISK']);
  });

  it('evaluates strictly left to right, without precedence', () => {
    // A = country=DE, B = type=DISK, C = tier=1
    // A&B|C = {DESY} | {IN2P3, FZK}; A|B&C = {DESY, FZK, CERN, IN2P3, LAPP} & {IN2P3, FZK}
    expect(names('country=DE&type=DISK|tier=1')).toEqual(['DESY_DISK', 'FZK_TAPE', 'IN2P3_DISK']);
    expect(names('country=DE|type=DISK&tier=1')).toEqual(['FZK_TAPE', 'IN2P3_DISK']);
    // With '&' binding tighter the second would include DESY_DISK: make sure it does not.
    expect(names('country=DE|(type=DISK&tier=1)')).toEqual(['DESY_DISK', 'FZK_TAPE', 'IN2P3_DISK']);
    expect(names('(country=DE|type=DISK)&tier=1')).toEqual(names('country=DE|type=DISK&tier=1'));
    // Difference is left to right too: (* \ tier=1) | FZK_TAPE, not * \ (tier=1 | FZK_TAPE)
    expect(names('*\\tier=1|FZK_TAPE')).toEqual(['CERN-PROD_DISK', 'DESY_DISK', 'FZK_TAPE', 'LAPP_DISK']);
    expect(names('*\\(tier=1|FZK_TAPE)')).toEqual(['CERN-PROD_DISK', 'DESY_DISK', 'LAPP_DISK']);
  });

  it('handles parentheses, nesting and difference', () => {
    expect(names('(tier=1|tier=2)\\(country=DE&type=TAPE)')).toEqual(['DESY_DISK', 'IN2P3_DISK', 'LAPP_DISK']);
    expect(names('((country=FR))')).toEqual(['IN2P3_DISK', 'LAPP_DISK']);
    expect(names('type=DISK\\country=FR\\CERN-PROD_DISK')).toEqual(['DESY_DISK']);
    expect(names('((tier=0|(tier=1&country=FR))|DESY_DISK)\\CERN-PROD_DISK')).toEqual(['DESY_DISK', 'IN2P3_DISK']);
  });

  it('* is every candidate and nothing else', () => {
    expect(names('*')).toEqual(RSES.map((r) => r.name).sort());
    expect(names('*', RSES.slice(0, 2))).toEqual(['CERN-PROD_DISK', 'IN2P3_DISK']);
  });

  it('compares numerically with < and >; non-numeric values never match', () => {
    expect(names('freespace>0')).toEqual(['CERN-PROD_DISK', 'DESY_DISK', 'LAPP_DISK']); // 1e3 is a number, 'unknown' is not
    expect(names('freespace<0')).toEqual(['FZK_TAPE']);
    expect(names('freespace<-3')).toEqual(['FZK_TAPE']);
    expect(names('freespace>-3.6')).toEqual(['CERN-PROD_DISK', 'DESY_DISK', 'FZK_TAPE', 'LAPP_DISK']);
    expect(names('freespace>20.5')).toEqual(['CERN-PROD_DISK', 'DESY_DISK']);
    expect(names('freespace>.5&freespace<500')).toEqual(['LAPP_DISK']);
    expect(names('tier<1')).toEqual(['CERN-PROD_DISK']);
    expect(names('version>2')).toEqual(['CERN-PROD_DISK']);
    // = compares strings: '1e3' is not '1000'
    expect(() => names('freespace=1000')).toThrow(expect.objectContaining({ code: 'RSEExpressionEmpty' }));
    expect(names('version=2.1')).toEqual(['CERN-PROD_DISK']);
  });

  it('treats true/True/TRUE/1 as true and false/0 as false for booleans', () => {
    expect(names('tape')).toEqual(['FZK_TAPE', 'LAPP_DISK']);
    expect(names('tape=true')).toEqual(['FZK_TAPE', 'LAPP_DISK']);
    expect(names('tape=True')).toEqual(['FZK_TAPE', 'LAPP_DISK']);
    expect(names('tape=false')).toEqual(['DESY_DISK', 'IN2P3_DISK']);
    expect(names('tape=FALSE')).toEqual(['DESY_DISK', 'IN2P3_DISK']);
    expect(names('nightly')).toEqual(['LAPP_DISK']);
    // '=1' is a string comparison, not a boolean one
    expect(names('tape=1')).toEqual(['LAPP_DISK']);
  });

  it('an RSE name always selects that RSE, even if a stored attribute says otherwise', () => {
    const rses = [
      { id: 1, name: 'SITE_A', attributes: { SITE_A: 'false' } },
      { id: 2, name: 'SITE_B', attributes: { SITE_A: 'true' } },
    ];
    expect(names('SITE_A', rses)).toEqual(['SITE_A', 'SITE_B']);
    expect(names('SITE_B', rses)).toEqual(['SITE_B']);
  });

  it('returns RSEs sorted by name whatever the input order, and reuses an index', () => {
    const shuffled = [RSES[3], RSES[0], RSES[4], RSES[2], RSES[1]];
    const index = createRseIndex(shuffled);
    expect(index.sorted.map((r) => r.name)).toEqual(RSES.map((r) => r.name).sort());
    for (let i = 0; i < 3; i++) {
      expect(evaluateRseExpression('type=DISK', index).rses.map((r) => r.id)).toEqual([1, 4, 2, 5]);
      expect(evaluateRseExpression(parseRseExpression('tier=1'), index).rses.map((r) => r.id)).toEqual([3, 2]);
    }
  });

  it('explains each step, inner groups before the group', () => {
    const { steps } = evaluateRseExpression('country=DE|(type=DISK&tier=1)\\FZK_TAPE', RSES, { explain: true });
    expect(steps).toEqual([
      { term: 'country=DE', position: 1, depth: 0, matched: ['DESY_DISK', 'FZK_TAPE'], result: ['DESY_DISK', 'FZK_TAPE'] },
      { term: 'type=DISK', position: 13, depth: 1, matched: ['CERN-PROD_DISK', 'DESY_DISK', 'IN2P3_DISK', 'LAPP_DISK'], result: ['CERN-PROD_DISK', 'DESY_DISK', 'IN2P3_DISK', 'LAPP_DISK'] },
      { term: 'tier=1', operator: '&', position: 23, depth: 1, matched: ['FZK_TAPE', 'IN2P3_DISK'], result: ['IN2P3_DISK'] },
      { term: '(type=DISK&tier=1)', operator: '|', position: 12, depth: 0, matched: ['IN2P3_DISK'], result: ['DESY_DISK', 'FZK_TAPE', 'IN2P3_DISK'] },
      { term: 'FZK_TAPE', operator: '\\', position: 31, depth: 0, matched: ['FZK_TAPE'], result: ['DESY_DISK', 'IN2P3_DISK'] },
    ]);
    expect(evaluateRseExpression('tier=0', RSES).steps).toBeUndefined();
    expect(evaluateRseExpression('tier=0', RSES, { explain: true }).steps).toEqual([
      { term: 'tier=0', position: 1, depth: 0, matched: ['CERN-PROD_DISK'], result: ['CERN-PROD_DISK'] },
    ]);
  });

  it('formats the AST back to canonical text', () => {
    expect(formatRseExpression(parseRseExpression('((tier=1|(tier=2)))&(country=DE)\\*'))).toEqual('(tier=1|tier=2)&country=DE\\*');
    expect(formatRseExpression(parseRseExpression('a.b-c=x_y.z'))).toEqual('a.b-c=x_y.z');
  });
});

describe('RSE expression errors', () => {
  const cases: Array<[string, string, number, string?]> = [
    // expression, code, position (1-based), reason
    ['', 'InvalidRSEExpression', 1, 'empty'],
    ['&tier=1', 'InvalidRSEExpression', 1, 'danglingOperator'],
    ['tier=1&', 'InvalidRSEExpression', 7, 'danglingOperator'],
    ['tier=1&|tier=2', 'InvalidRSEExpression', 8, 'danglingOperator'],
    ['tier=1\\\\tier=2', 'InvalidRSEExpression', 8, 'danglingOperator'],
    ['(|tier=1)', 'InvalidRSEExpression', 2, 'danglingOperator'],
    ['(tier=1|)', 'InvalidRSEExpression', 8, 'danglingOperator'],
    ['(tier=1|tier=2', 'InvalidRSEExpression', 1, 'unbalancedParenthesis'],
    ['((tier=1)|(tier=2)', 'InvalidRSEExpression', 1, 'unbalancedParenthesis'],
    ['tier=1|tier=2)', 'InvalidRSEExpression', 14, 'unbalancedParenthesis'],
    [')tier=1(', 'InvalidRSEExpression', 1, 'unbalancedParenthesis'],
    ['()', 'InvalidRSEExpression', 1, 'emptyParentheses'],
    ['tier=1|()', 'InvalidRSEExpression', 8, 'emptyParentheses'],
    ['tier=1#', 'InvalidRSEExpression', 7, 'unexpectedCharacter'],
    ['tier=1|"x"', 'InvalidRSEExpression', 8, 'unexpectedCharacter'],
    ['=1', 'InvalidRSEExpression', 1, 'unexpectedCharacter'],
    ['tier=1=2', 'InvalidRSEExpression', 7, 'unexpectedCharacter'],
    ['tier = 1', 'InvalidRSEExpression', 5, 'whitespace'],
    [' tier=1', 'InvalidRSEExpression', 1, 'whitespace'],
    ['tier=1 ', 'InvalidRSEExpression', 7, 'whitespace'],
    ['tier<abc', 'InvalidRSEExpression', 6, 'notANumber'],
    ['tier>1.2.3', 'InvalidRSEExpression', 6, 'notANumber'],
    ['tier>1e3', 'InvalidRSEExpression', 6, 'notANumber'],
    ['tier=', 'InvalidRSEExpression', 5, 'missingValue'],
    ['country=FR|tier<', 'InvalidRSEExpression', 16, 'missingValue'],
    ['tier=1(tier=2)', 'InvalidRSEExpression', 7, 'missingOperator'],
    ['(tier=1)tier=2', 'InvalidRSEExpression', 9, 'missingOperator'],
    ['**', 'InvalidRSEExpression', 2, 'missingOperator'],
    ['A.B', 'InvalidRSEExpression', 1, 'invalidName'],
    ['tier=1|A__B', 'InvalidRSEExpression', 8, 'invalidName'],
    ['tier=1|_A', 'InvalidRSEExpression', 8, 'invalidName'],
    ['tier=1|A-', 'InvalidRSEExpression', 8, 'invalidName'],
    ['NO_SUCH_RSE', 'UnknownRSEOrAttribute', 1],
    ['tier=1|typo=DISK', 'UnknownRSEOrAttribute', 8],
    ['country=FR\\(tier=1&cuontry<3)', 'UnknownRSEOrAttribute', 20],
    ['tier=7', 'RSEExpressionEmpty', 1],
    ['tier=1&country=CH', 'RSEExpressionEmpty', 7],
    ['tier=1&country=CH|tier=5&type=DISK', 'RSEExpressionEmpty', 7],
    ['tier=0\\CERN-PROD_DISK|tier=5', 'RSEExpressionEmpty', 7],
    ['*\\*', 'RSEExpressionEmpty', 2],
  ];

  it.each(cases)('%j -> %s at position %i', (expr, code, position, reason) => {
    const e = errorOf(() => evaluateRseExpression(expr, RSES));
    expect(e).toBeInstanceOf(InvalidInput);
    expect(e.status).toBe(400);
    expect(e.code).toBe(code);
    expect(e.details).toMatchObject({ expression: expr, position });
    if (reason) expect(e.details?.reason).toBe(reason);
    expect(e.message).toContain(`position ${position}`);
    expect(e.message).toContain(`'${expr}'`);
  });

  it('words the example from the conventions as documented', () => {
    expect(errorOf(() => parseRseExpression('tier=1&')).message).toMatch(/^RSE expression 'tier=1&' ends with an operator at position 7/);
  });

  it('reports syntax errors from parse alone, without candidates', () => {
    expect(errorOf(() => parseRseExpression('tier=1&')).code).toBe('InvalidRSEExpression');
    expect(parseRseExpression('NO_SUCH_RSE').root).toEqual({ kind: 'word', name: 'NO_SUCH_RSE', position: 1 });
  });

  it('nothing matches against an empty VO', () => {
    expect(errorOf(() => evaluateRseExpression('*', [])).code).toBe('RSEExpressionEmpty');
    expect(errorOf(() => evaluateRseExpression('A', [])).code).toBe('UnknownRSEOrAttribute');
  });

  it('never names an RSE of another VO: unknown there means unknown here', () => {
    const mine = RSES.filter((r) => r.attributes.country === 'FR');
    expect(errorOf(() => evaluateRseExpression('FZK_TAPE', mine)).code).toBe('UnknownRSEOrAttribute');
    expect(names('country=FR|country=DE', mine)).toEqual(['IN2P3_DISK', 'LAPP_DISK']);
  });

  it('limits length and nesting instead of overflowing the stack', () => {
    const deep = '('.repeat(RSE_EXPRESSION_MAX_DEPTH + 1) + 'tier=1' + ')'.repeat(RSE_EXPRESSION_MAX_DEPTH + 1);
    const e = errorOf(() => parseRseExpression(deep));
    expect(e.details).toMatchObject({ reason: 'tooDeep', position: RSE_EXPRESSION_MAX_DEPTH + 1 });
    const ok = '('.repeat(RSE_EXPRESSION_MAX_DEPTH) + 'tier=1' + ')'.repeat(RSE_EXPRESSION_MAX_DEPTH);
    expect(names(ok)).toEqual(['FZK_TAPE', 'IN2P3_DISK']);
    expect(errorOf(() => parseRseExpression('A|'.repeat(RSE_EXPRESSION_MAX_LENGTH) + 'A')).details?.reason).toBe('tooLong');
    // A long flat chain is fine (no recursion per operator).
    const long = Array.from({ length: 1000 }, (_, i) => `tier=${i % 3}`).join('|');
    expect(names(long)).toHaveLength(5);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based: random RSE sets and expression trees against a naive reference evaluator.

type Term =
  | { kind: 'all' }
  | { kind: 'word'; name: string }
  | { kind: 'compare'; key: string; op: '=' | '<' | '>'; value: string };
type Tree = Term | { kind: 'chain'; first: Tree; rest: Array<{ op: '|' | '&' | '\\'; operand: Tree }> };

const NAME_POOL = ['SITE_A', 'SITE-B', 'C1', 'D_2_X', 'E'];
const KEY_POOL = ['tier', 'country', 'flag', 'size', 'SITE_A', 'x.y'];
const VALUE_POOL = ['0', '1', '2', '-1.5', '1e3', ' 7 ', 'true', 'True', 'false', 'FALSE', 'FR', 'DE', 'abc', 'v.1'];
const NUMBER_POOL = ['-2', '-1.5', '0', '1', '1.5', '2', '10', '1000'];

const rseSetArb = fc
  .uniqueArray(fc.constantFrom(...NAME_POOL), { maxLength: NAME_POOL.length })
  .chain((ns) =>
    fc.tuple(
      ...ns.map((name, i) =>
        fc.dictionary(fc.constantFrom(...KEY_POOL), fc.constantFrom(...VALUE_POOL), { maxKeys: 4 }).map(
          (attributes): RseCandidate => ({ id: 100 - i, name, attributes }),
        ),
      ),
    ),
  )
  .map((t) => [...t] as RseCandidate[]);

const termArb: fc.Arbitrary<Term> = fc.oneof(
  fc.constant<Term>({ kind: 'all' }),
  fc.constantFrom(...NAME_POOL, 'tier', 'flag', 'SITE_A', 'NOPE').map((name): Term => ({ kind: 'word', name })),
  fc
    .tuple(fc.constantFrom(...KEY_POOL, 'nokey'), fc.constantFrom(...VALUE_POOL.filter((v) => !v.includes(' '))))
    .map(([key, value]): Term => ({ kind: 'compare', key, op: '=', value })),
  fc
    .tuple(fc.constantFrom(...KEY_POOL), fc.constantFrom('<' as const, '>' as const), fc.constantFrom(...NUMBER_POOL))
    .map(([key, op, value]): Term => ({ kind: 'compare', key, op, value })),
);

const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    termArb,
    fc
      .tuple(
        tie('tree'),
        fc.array(fc.tuple(fc.constantFrom('|' as const, '&' as const, '\\' as const), tie('tree')), { minLength: 1, maxLength: 4 }),
      )
      .map(([first, rest]): Tree => ({ kind: 'chain', first, rest: rest.map(([op, operand]) => ({ op, operand })) })),
  ),
})).tree;

/** Independent printer: parentheses exactly around chain operands; records term positions. */
function print(tree: Tree): { text: string; terms: Array<{ term: Term; position: number }>; topOps: number[] } {
  const terms: Array<{ term: Term; position: number }> = [];
  const topOps: number[] = [];
  let text = '';
  const emit = (t: Tree, top: boolean, asOperand: boolean): void => {
    if (t.kind !== 'chain') {
      terms.push({ term: t, position: text.length + 1 });
      text += t.kind === 'all' ? '*' : t.kind === 'word' ? t.name : `${t.key}${t.op}${t.value}`;
      return;
    }
    if (asOperand) text += '(';
    emit(t.first, false, true);
    for (const r of t.rest) {
      if (top) topOps.push(text.length + 1);
      text += r.op;
      emit(r.operand, false, true);
    }
    if (asOperand) text += ')';
  };
  emit(tree, true, false);
  return { text, terms, topOps };
}

function refAttr(r: RseCandidate, key: string): string | undefined {
  if (r.name === key) return 'true';
  return Object.prototype.hasOwnProperty.call(r.attributes, key) ? r.attributes[key] : undefined;
}
const refTrue = (v: string | undefined) => v !== undefined && (v === '1' || v.toLowerCase() === 'true');
const refFalse = (v: string | undefined) => v !== undefined && (v === '0' || v.toLowerCase() === 'false');
const refNumber = (v: string | undefined) =>
  v !== undefined && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;

function refTerm(t: Term, rses: RseCandidate[]): Set<string> {
  if (t.kind === 'all') return new Set(rses.map((r) => r.name));
  const key = t.kind === 'word' ? t.name : t.key;
  const hits = rses.filter((r) => {
    const v = refAttr(r, key);
    if (t.kind === 'word') return refTrue(v);
    if (t.op === '=') {
      if (t.value.toLowerCase() === 'true') return refTrue(v);
      if (t.value.toLowerCase() === 'false') return refFalse(v);
      return v === t.value;
    }
    const x = refNumber(v);
    return x !== undefined && (t.op === '<' ? x < Number(t.value) : x > Number(t.value));
  });
  return new Set(hits.map((r) => r.name));
}

function refEval(t: Tree, rses: RseCandidate[]): Set<string> {
  if (t.kind !== 'chain') return refTerm(t, rses);
  let acc = refEval(t.first, rses);
  for (const r of t.rest) {
    const m = refEval(r.operand, rses);
    acc = new Set(r.op === '|' ? [...acc, ...m] : r.op === '&' ? [...acc].filter((x) => m.has(x)) : [...acc].filter((x) => !m.has(x)));
  }
  return acc;
}

type Outcome = { names: string[] } | { code: string; position: number };

function reference(tree: Tree, rses: RseCandidate[]): Outcome {
  const { terms, topOps } = print(tree);
  for (const { term, position } of terms) {
    if (term.kind === 'all') continue;
    const key = term.kind === 'word' ? term.name : term.key;
    if (!rses.some((r) => refAttr(r, key) !== undefined)) return { code: 'UnknownRSEOrAttribute', position };
  }
  const result = refEval(tree, rses);
  if (result.size > 0) return { names: [...result].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
  // Position where the top-level result became empty for good.
  let position = 1;
  if (tree.kind === 'chain') {
    const prefix: Tree = { kind: 'chain', first: tree.first, rest: [] };
    const empties = [refEval(tree.first, rses).size === 0];
    for (const r of tree.rest) {
      prefix.rest.push(r);
      empties.push(refEval(prefix, rses).size === 0);
    }
    let k = empties.length - 1;
    while (k > 0 && empties[k - 1]) k--;
    position = k === 0 ? 1 : topOps[k - 1];
  }
  return { code: 'RSEExpressionEmpty', position };
}

function actual(text: string, rses: RseCandidate[], viaIndex: boolean): Outcome {
  try {
    const target = viaIndex ? createRseIndex(rses) : rses;
    return { names: evaluateRseExpression(text, target).rses.map((r) => r.name) };
  } catch (e) {
    if (!(e instanceof SluiceError)) throw e;
    return { code: e.code, position: e.details?.position as number };
  }
}

describe('RSE expression properties', () => {
  it('matches a naive reference evaluator on random expressions and RSE sets', () => {
    fc.assert(
      fc.property(treeArb, rseSetArb, fc.boolean(), (tree, rses, viaIndex) => {
        const { text } = print(tree);
        expect(actual(text, rses, viaIndex)).toEqual(reference(tree, rses));
      }),
      { numRuns: 3000 },
    );
  });

  it('a shared index gives the same answers as fresh evaluation, in any order', () => {
    fc.assert(
      fc.property(fc.array(treeArb, { minLength: 1, maxLength: 8 }), rseSetArb, (trees, rses) => {
        const index = createRseIndex(rses);
        for (const t of trees) {
          const { text } = print(t);
          const viaIndex = (() => {
            try {
              return evaluateRseExpression(text, index, { explain: true }).rses.map((r) => r.name);
            } catch (e) {
              return (e as SluiceError).code;
            }
          })();
          const fresh = actual(text, rses, false);
          expect(viaIndex).toEqual('names' in fresh ? fresh.names : fresh.code);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('format(parse(text)) is the text for canonical text', () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        const { text } = print(tree);
        expect(formatRseExpression(parseRseExpression(text))).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('any input string either resolves or fails with a 400 naming a position inside it', () => {
    const alphabet = ['A', 'b', '1', '_', '-', '.', '=', '<', '>', '|', '&', '\\', '(', ')', '*', ' ', '#', 'tier', 'SITE_A'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 20 }).map((a) => a.join('')), rseSetArb, (text, rses) => {
        try {
          const r = evaluateRseExpression(text, rses, { explain: true });
          expect(r.rses.length).toBeGreaterThan(0);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidInput);
          const err = e as InvalidInput;
          expect(['InvalidRSEExpression', 'UnknownRSEOrAttribute', 'RSEExpressionEmpty']).toContain(err.code);
          const position = err.details?.position as number;
          expect(position).toBeGreaterThanOrEqual(1);
          expect(position).toBeLessThanOrEqual(Math.max(1, text.length));
        }
      }),
      { numRuns: 3000 },
    );
  });
});
