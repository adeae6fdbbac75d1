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
  protocols: runProtocolsBench,
  rules: async () => (await import('./rules.ts')).runRulesBench(),
  conveyor: async () => (await import('./conveyor.ts')).runConveyorBench(),
  'api-load': async () => (await import('./api-load.ts')).runApiLoadBench(),
};

/**
 * bench/protocols.ts is a script (it forks children to measure their own peak RSS, and starts
 * XRootD servers): run it as a child and turn its JSON into results.
 */
async function runProtocolsBench(): Promise<BenchResult[]> {
  const { execFile } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  const script = new URL('./protocols.ts', import.meta.url).pathname;
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', script, '--rounds', '2'], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr.slice(-2000)}`)) : (process.stdout.write(stdout), resolve()),
    ),
  );
  const p = JSON.parse(await readFile(new URL('./out/protocols.json', import.meta.url), 'utf8'));
  const out: BenchResult[] = [];
  const lc = p.largeCopy;
  if (lc) {
    const best = (xs: number[]) => Math.max(...xs);
    out.push({ name: `${lc.sizeMiB} MiB stream copy, curl GET | curl PUT (best)`, value: best(lc.curlMBps), unit: 'MB/s' });
    out.push({ name: `${lc.sizeMiB} MiB stream copy, Sluice copyFile (best)`, value: best(lc.sluiceMBps), unit: 'MB/s' });
    out.push({ name: 'stream copy, Sluice / curl', value: lc.ratioBest, unit: 'x', target: '>= 0.8', pass: lc.ratioBest >= 0.8 });
    const rss = Math.max(...lc.sluicePeakRssMiB);
    out.push({ name: 'peak RSS of the copying process', value: rss, unit: 'MiB', target: '< 150', pass: rss < 150 });
  }
  const sf = p.smallFilesTpc;
  if (sf) {
    out.push({ name: `${sf.files} x 4 KiB TPC between XRootD, curl -X COPY per file (c=${sf.concurrency})`, value: sf.curlFilesPerSec, unit: 'files/s' });
    out.push({ name: `${sf.files} x 4 KiB TPC between XRootD, Sluice copyFile (c=${sf.concurrency})`, value: sf.sluiceFilesPerSec, unit: 'files/s' });
    out.push({ name: 'small-file TPC, Sluice / process per file', value: sf.ratio, unit: 'x', target: '>= 3', pass: sf.ratio >= 3 });
  } else {
    out.push({ name: 'small-file TPC between XRootD', value: NaN, unit: 'files/s', note: 'XRootD not installed: skipped' });
  }
  return out;
}

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
