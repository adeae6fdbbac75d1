/**
 * RSE expression resolution: 1,000 RSEs with 20 attributes each, a 10-term expression.
 * Target (issue 4): under 5 ms per resolution. Measures, does not assert.
 *
 *   npx tsx bench/rse-expression.ts
 */
import { pathToFileURL } from 'node:url';
import {
  createRseIndex,
  evaluateRseExpression,
  parseRseExpression,
  type RseCandidate,
} from '../core/rse-expression.ts';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  target?: number;
  pass?: boolean;
}

const RSE_COUNT = 1000;
const TARGET_MS = 5;

// 10 terms: names, string equality, booleans, numeric comparisons, all three operators, groups.
export const BENCH_EXPRESSION =
  '(tier=1|tier=2)&type=DISK\\country=FR|(cloud=DE&freespace>500)\\RSE_0042&istape=false|RSE_0007\\quota<1.5';

/** Deterministic fixture (no Math.random): the same figures run to run. */
export function makeRses(count = RSE_COUNT): RseCandidate[] {
  const countries = ['CH', 'FR', 'DE', 'IT', 'ES', 'UK', 'NL', 'US', 'JP', 'CA', 'PL', 'CZ'];
  const clouds = ['CERN', 'FR', 'DE', 'IT', 'ES', 'UK', 'NL', 'US', 'ND', 'CA'];
  const rses: RseCandidate[] = [];
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < count; i++) {
    const name = `RSE_${String(i).padStart(4, '0')}`;
    const attributes: Record<string, string> = {
      tier: String(i % 4),
      country: countries[i % countries.length],
      cloud: clouds[(i * 7) % clouds.length],
      type: i % 5 === 0 ? 'TAPE' : 'DISK',
      istape: i % 5 === 0 ? 'True' : 'false',
      freespace: i % 17 === 0 ? 'unknown' : String(Math.floor(next() * 1000)),
      quota: (next() * 3).toFixed(2),
      region: `EU-${i % 6}`,
      site: `SITE${Math.floor(i / 3)}`,
      weight: String(1 + (i % 10)),
      availability_read: 'true',
      availability_write: i % 13 === 0 ? 'false' : 'true',
      protocol: i % 3 === 0 ? 's3' : 'http',
      spacetoken: i % 2 === 0 ? 'ATLASDATADISK' : 'ATLASSCRATCHDISK',
      fts: 'https://fts3.example.org:8446',
      lfn2pfn: 'hash',
      deterministic: i % 11 === 0 ? 'false' : 'true',
      pledged: String(Math.floor(next() * 5000)),
      latitude: (next() * 180 - 90).toFixed(4),
      longitude: (next() * 360 - 180).toFixed(4),
    };
    rses.push({ id: i + 1, name, attributes });
  }
  return rses;
}

function measure(fn: () => void, iterations: number, warmup = Math.ceil(iterations / 5)): { median: number; p99: number } {
  for (let i = 0; i < warmup; i++) fn();
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    samples[i] = performance.now() - t0;
  }
  samples.sort();
  const at = (q: number) => samples[Math.min(iterations - 1, Math.floor(q * iterations))];
  return { median: at(0.5), p99: at(0.99) };
}

export async function runRseExpressionBench(): Promise<BenchResult[]> {
  const rses = makeRses();
  if (Object.keys(rses[0].attributes).length !== 20) throw new Error('fixture must have 20 attributes per RSE');
  const ast = parseRseExpression(BENCH_EXPRESSION);
  const matched = evaluateRseExpression(ast, rses).rses.length; // also proves the expression resolves

  const iterations = 2000;
  const parse = measure(() => parseRseExpression(BENCH_EXPRESSION), iterations);
  // The API path: parse + build the index + resolve, every call from scratch.
  const fresh = measure(() => evaluateRseExpression(BENCH_EXPRESSION, rses), iterations);
  const explain = measure(() => evaluateRseExpression(BENCH_EXPRESSION, rses, { explain: true }), iterations);
  // The judge path: one index, many expressions; per-key lookups and term results stay cached.
  const index = createRseIndex(rses);
  const shared = measure(() => evaluateRseExpression(ast, index), iterations);
  const build = measure(() => createRseIndex(rses), iterations);

  const ms = (name: string, value: number, target?: number): BenchResult =>
    target === undefined ? { name, value, unit: 'ms' } : { name, value, unit: 'ms', target, pass: value < target };
  return [
    ms('rse-expression: parse, median', parse.median),
    ms('rse-expression: resolve incl. index build, median', fresh.median, TARGET_MS),
    ms('rse-expression: resolve incl. index build, p99', fresh.p99, TARGET_MS),
    ms('rse-expression: resolve with explain, median', explain.median),
    ms('rse-expression: resolve with explain, p99', explain.p99),
    ms('rse-expression: resolve with prebuilt index, median', shared.median, TARGET_MS),
    ms('rse-expression: resolve with prebuilt index, p99', shared.p99, TARGET_MS),
    ms('rse-expression: createRseIndex alone (key lookups are lazy), median', build.median),
    { name: 'rse-expression: RSEs matched (of 1000)', value: matched, unit: 'rses' },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await runRseExpressionBench();
  console.log(`RSE expression: ${RSE_COUNT} RSEs x 20 attributes, 10 terms: ${BENCH_EXPRESSION}`);
  console.table(
    results.map((r) => ({
      name: r.name,
      value: r.unit === 'ms' ? r.value.toFixed(4) : r.value,
      unit: r.unit,
      target: r.target === undefined ? '' : `< ${r.target}`,
      pass: r.pass === undefined ? '' : r.pass ? 'yes' : 'NO',
    })),
  );
}
