/**
 * `npm run bench`: every benchmark the issues ask for, one table, and bench/results.json with
 * each figure, its unit, the machine and the commit.
 *
 *   npm run bench                 # all
 *   npm run bench -- catalogue    # only the named groups (see GROUPS)
 *
 * Each group is also runnable alone: npx tsx bench/<file>.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { machine, printResults, type BenchResult } from './lib.ts';

type Group = () => Promise<Array<{ name: string; value: number | null; unit: string; target?: string | number; pass?: boolean; note?: string }>>;

const GROUPS: Record<string, Group> = {
  catalogue: async () => (await import('./catalogue.ts')).runCatalogueBench(),
  'rse-expression': async () => (await import('./rse-expression.ts')).runRseExpressionBench(),
  links: async () => (await import('./links-sim.ts')).runLinksSimulation(),
  conveyor: async () => (await import('./conveyor.ts')).runConveyorBench(),
  'api-load': async () => (await import('./api-load.ts')).runApiLoadBench(),
};

async function main() {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !(w in GROUPS));
  if (unknown.length) {
    console.error(`unknown benchmark group(s): ${unknown.join(', ')}; known: ${Object.keys(GROUPS).join(', ')}`);
    process.exit(2);
  }
  const started = Date.now();
  const all: Array<BenchResult & { group: string }> = [];
  for (const name of wanted.length ? wanted : Object.keys(GROUPS)) {
    const t0 = Date.now();
    try {
      const results = await GROUPS[name]();
      const rows = results.map((r) => ({ ...r, value: r.value ?? NaN, group: name }));
      all.push(...rows);
      printResults(`${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`, rows);
    } catch (e) {
      console.error(`benchmark group '${name}' failed: ${(e as Error).stack}`);
      all.push({ group: name, name: `${name} failed`, value: NaN, unit: '', note: (e as Error).message, pass: false });
    }
  }
  const report = { machine: machine(), startedAt: new Date(started).toISOString(), seconds: Math.round((Date.now() - started) / 1000), results: all };
  await mkdir(new URL('.', import.meta.url), { recursive: true });
  await writeFile(new URL('./results.json', import.meta.url), JSON.stringify(report, null, 2));
  printResults(`all benchmarks (${report.seconds} s, ${report.machine.cpus} cores, commit ${report.machine.commit})`, all.map((r) => ({ ...r, name: r.name.startsWith(r.group) ? r.name : `${r.group}: ${r.name}` })));
  console.log('\nwritten to bench/results.json');
}

await main();
