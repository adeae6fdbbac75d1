import type { Command } from 'commander';
import { downloadDids, type DownloadEvent } from '../../core/download.ts';
import { uploadFiles, type UploadEvent } from '../../core/upload.ts';
import { type Cli, int, parseDid, progressBar } from '../cli.ts';

/**
 * Progress: on a terminal, one bar over all bytes (bin/cli.ts progressBar, on stderr) and the
 * failures listed at the end; elsewhere one plain line per file (on stderr under --json, so that
 * stdout stays one JSON document).
 */
function progress(json: boolean, label: string) {
  const tty = !json && process.stderr.isTTY === true;
  const done = new Map<string, number>();
  let total = 0;
  const bar = tty ? progressBar(0, { label, unit: 'bytes' }) : undefined;
  const failures: string[] = [];
  const sum = () => [...done.values()].reduce((a, b) => a + b, 0);
  return {
    add(bytes: number) {
      total += bytes;
      bar?.update(sum(), { total });
    },
    update(key: string, n: number) {
      done.set(key, n);
      bar?.update(sum(), { total });
    },
    line(text: string, failed = false) {
      if (tty) {
        if (failed) failures.push(text);
      } else if (json) console.error(text);
      else console.log(text);
    },
    close() {
      bar?.stop();
      for (const f of failures.splice(0)) console.error(f);
    },
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
      const bars = progress(json, `upload ${files.length} file${files.length === 1 ? '' : 's'} to ${o.rse}`);
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
            if (e.type === 'start') bars.add(e.bytes);
            else if (e.type === 'progress') bars.update(e.did, e.bytes);
            else {
              const r = e.result;
              bars.update(e.did, r.bytes);
              if (r.status === 'failed') bars.line(`failed   ${e.did}: ${r.error}${r.leftover ? ` (${r.leftover})` : ''}`, true);
              else bars.line(`${r.status.padEnd(8)} ${e.did} ${r.bytes} B adler32 ${r.adler32}`);
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
      const bars = progress(json, `download into ${o.dir}`);
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
            if (e.type === 'start') bars.add(e.bytes);
            else if (e.type === 'progress') bars.update(e.did, e.bytes);
            else if (e.type === 'retry') {
              bars.update(e.did, 0);
              bars.line(`retry    ${e.did}: ${e.rse} failed (${e.error}); trying the next replica`);
            } else {
              const r = e.result;
              bars.update(e.did, r.bytes);
              if (r.status === 'failed') bars.line(`failed   ${e.did}: ${r.error}`, true);
              else bars.line(`${r.status.padEnd(10)} ${e.did} -> ${r.path}${r.rse ? ` (from ${r.rse})` : ''}`);
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
