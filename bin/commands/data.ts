import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { downloadDids, type DownloadEvent } from '../../core/download.ts';
import { uploadFiles, type UploadEvent } from '../../core/upload.ts';
import { type Cli, int, parseDid } from '../cli.ts';

/**
 * Progress for people, plain lines for logs and scripts: bars (cli-progress, on stderr) when
 * stderr is a TTY and --json is off, else one line per finished file.
 */
function progress(json: boolean) {
  if (json || process.stderr.isTTY !== true) {
    // Plain lines: on stdout for logs, on stderr under --json so that stdout stays one JSON document.
    const log = (s: string) => (json ? console.error(s) : console.log(s));
    return { start: (_k: string, _t: number) => {}, update: (_k: string, _n: number) => {}, stop: (_k: string) => {}, log, close: () => {} };
  }
  const multi = new cliProgress.MultiBar(
    { format: ' {bar} {percentage}% | {value}/{total} B | {did}', hideCursor: true, clearOnComplete: false, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    start: (key: string, total: number) => bars.set(key, multi.create(Math.max(total, 1), 0, { did: key })),
    update: (key: string, n: number) => bars.get(key)?.update(n),
    stop: (key: string) => {
      const b = bars.get(key);
      if (b) b.update(b.getTotal());
    },
    log: (s: string) => multi.log(`${s}\n`),
    close: () => multi.stop(),
  };
}

/** Ctrl-C aborts the transfers in flight; they clean up after themselves before the process exits. */
function interruptible(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function register(program: Command, cli: Cli): void {
  program
    .command('upload <files...>')
    .description('upload local files to an RSE and register them (adler32 computed while streaming; storage is checked before anything is registered)')
    .requiredOption('--rse <rse>', 'destination RSE (deterministic, writable)')
    .requiredOption('--scope <scope>', 'scope of the new DIDs (their names are the file names)')
    .option('--dataset <scope:name>', 'attach the files to this dataset (created if missing)')
    .option('--concurrency <n>', 'files in flight at once', int, 2)
    .action(async (files: string[], o: { rse: string; scope: string; dataset?: string; concurrency: number }) => {
      const json = cli.globals().json ?? false;
      const bars = progress(json);
      const stop = interruptible();
      try {
        const report = await uploadFiles(cli.client(), {
          rse: o.rse,
          scope: o.scope,
          dataset: o.dataset ? parseDid(o.dataset) : undefined,
          files,
          concurrency: o.concurrency,
          signal: stop.signal,
          onEvent: (e: UploadEvent) => {
            if (e.type === 'start') bars.start(e.did, e.bytes);
            else if (e.type === 'progress') bars.update(e.did, e.bytes);
            else {
              bars.stop(e.did);
              const r = e.result;
              bars.log(r.status === 'failed' ? `failed   ${e.did}: ${r.error}${r.leftover ? ` (${r.leftover})` : ''}` : `${r.status.padEnd(8)} ${e.did} ${r.bytes} B adler32 ${r.adler32}`);
            }
          },
        });
        bars.close();
        if (json) console.log(JSON.stringify(report, null, 2));
        else {
          const n = (s: string) => report.files.filter((f) => f.status === s).length;
          console.log(
            `${n('uploaded')} uploaded, ${n('replica-added')} replica added, ${n('skipped')} already there, ${n('failed')} failed on ${report.rse}` +
              (report.dataset ? `; ${report.attached} attached to ${report.dataset}` : ''),
          );
        }
        if (report.files.some((f) => f.status === 'failed')) process.exitCode = 1;
      } finally {
        bars.close();
        stop.dispose();
      }
    });

  program
    .command('download <dids...>')
    .description('download every file below the DIDs into DIR/scope/name, verifying size and adler32; a bad replica falls over to the next')
    .requiredOption('--dir <dir>', 'local directory')
    .option('--from <rse>', 'prefer replicas closest to this RSE (by distance)')
    .option('--flat', 'DIR/name instead of DIR/scope/name')
    .option('--concurrency <n>', 'files in flight at once', int, 2)
    .action(async (dids: string[], o: { dir: string; from?: string; flat?: boolean; concurrency: number }) => {
      const json = cli.globals().json ?? false;
      const bars = progress(json);
      const stop = interruptible();
      try {
        const results = await downloadDids(cli.client(), {
          dids: dids.map(parseDid),
          dir: o.dir,
          from: o.from,
          flat: o.flat,
          concurrency: o.concurrency,
          signal: stop.signal,
          onEvent: (e: DownloadEvent) => {
            if (e.type === 'start') bars.start(e.did, e.bytes);
            else if (e.type === 'progress') bars.update(e.did, e.bytes);
            else if (e.type === 'retry') bars.log(`retry    ${e.did}: ${e.rse} failed (${e.error}); trying the next replica`);
            else {
              bars.stop(e.did);
              const r = e.result;
              bars.log(r.status === 'failed' ? `failed   ${e.did}: ${r.error}` : `${r.status.padEnd(10)} ${e.did} -> ${r.path}${r.rse ? ` (from ${r.rse})` : ''}`);
            }
          },
        });
        bars.close();
        if (json) console.log(JSON.stringify(results, null, 2));
        else {
          const n = (s: string) => results.filter((f) => f.status === s).length;
          console.log(`${n('downloaded')} downloaded, ${n('present')} already present, ${n('failed')} failed into ${o.dir}`);
        }
        if (results.some((f) => f.status === 'failed')) process.exitCode = 1;
      } finally {
        bars.close();
        stop.dispose();
      }
    });
}
