import { Option, type Command } from 'commander';
import { type Cli, type Row, int } from '../cli.ts';

const COLUMNS = ['id', 'state', 'scope', 'name', 'source_rse', 'dest_rse', 'progress', 'attempts', 'mode', 'why'];

function progress(r: Row): string {
  const bytes = Number(r.bytes) || 0;
  const done = Number(r.bytes_done) || 0;
  return bytes ? `${Math.floor((100 * Math.min(done, bytes)) / bytes)}%` : '';
}

/** One line per request: what it waits for, or why it failed. */
function rows(items: Row[]): Row[] {
  return items.map((r) => ({ ...r, progress: r.state === 'DONE' ? '100%' : progress(r), why: r.state === 'FAILED' ? r.error : (r.waiting_reason ?? '') }));
}

export function register(program: Command, cli: Cli): void {
  program
    .command('transfers')
    .description('transfer requests of your VO (root: every VO), newest first')
    .addOption(new Option('--state <state>').choices(['QUEUED', 'ACTIVE', 'DONE', 'FAILED']))
    .option('--rule <id>', 'requests of one rule')
    .option('--link <id>', 'requests on one link', int)
    .option('--activity <activity>')
    .option('--for-vo <vo>', 'root only: one VO')
    .option('--limit <n>', 'at most this many', int, 100)
    .option('--watch [seconds]', 'refresh every few seconds (default 2) until interrupted')
    .action(async (o: { state?: string; rule?: string; link?: number; activity?: string; forVo?: string; limit: number; watch?: string | boolean }) => {
      const q = new URLSearchParams();
      if (o.state) q.set('state', o.state);
      if (o.rule) q.set('rule', o.rule);
      if (o.link !== undefined) q.set('link', String(o.link));
      if (o.activity) q.set('activity', o.activity);
      if (o.forVo) q.set('vo', o.forVo);
      const path = `/v1/requests${q.size ? `?${q}` : ''}`;
      const show = async () => cli.print(rows(await cli.client().list<Row>(path, o.limit)), COLUMNS);
      if (o.watch === undefined || o.watch === false) return show();
      const every = (typeof o.watch === 'string' ? Number(o.watch) : 2) * 1000;
      for (;;) {
        if (!cli.globals().json) process.stdout.write('\x1b[2J\x1b[H');
        await show();
        await new Promise((r) => setTimeout(r, every));
      }
    });

  program
    .command('transfer')
    .description('one transfer request')
    .command('show <id>')
    .description('a request with every attempt: source, mode, bytes, duration, error')
    .action(async (id: string) => {
      const r = await cli.client().request<Row & { attempts_list: Row[] }>('GET', `/v1/requests/${encodeURIComponent(id)}`);
      if (cli.globals().json) return cli.print(r);
      const { attempts_list, ...req } = r;
      cli.print({ ...req, progress: progress(req) });
      cli.print(attempts_list, ['attempt', 'source_rse', 'mode', 'bytes', 'duration_ms', 'error_code', 'error_phase', 'message', 'finished_at']);
    });
}
