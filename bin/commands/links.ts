import type { Command } from 'commander';
import { ApiError } from '../client.ts';
import { type Cli, type Row, humanBytes } from '../cli.ts';

type Link = {
  id: number; source: string; destination: string; limit: number; min: number; max: number; pinned: boolean;
  active: number; queued: number; bytes_per_second: number; success_rate: number | null; vos: Array<{ vo: string; active: number; queued: number }>;
};

export const formatRate = (bps: number): string => `${humanBytes(bps)}/s`;

/** A table row per link: what `sluice links` shows (the API's own shape with --json). */
export function linkRows(links: Link[]): Row[] {
  return links.map((l) => ({
    id: l.id,
    link: `${l.source} -> ${l.destination}`,
    throughput: formatRate(l.bytes_per_second),
    'active/limit': `${l.active}/${l.limit}${l.pinned ? ' (pinned)' : ''}`,
    queued: l.queued,
    success: l.success_rate === null ? '-' : `${(l.success_rate * 100).toFixed(1)}%`,
    vos: l.vos.map((v) => `${v.vo}:${v.active}/${v.queued}`).join(' '),
  }));
}

export function register(program: Command, cli: Cli): void {
  program
    .command('links')
    .description('links between storage endpoints: throughput, active/limit, queue, success rate (root: every VO; a VO: its own figures)')
    .option('--watch [seconds]', 'refresh the table every few seconds (default 2) until interrupted')
    .action(async (o: { watch?: string | boolean }) => {
      const show = async () => {
        let links: Link[];
        try {
          links = (await cli.client().request<{ items: Link[] }>('GET', '/v1/links')).items;
        } catch (e) {
          if (e instanceof ApiError && e.status === 404 && e.code === 'RouteNotFound') {
            console.log('this Sluice server has no link API (/v1/links) yet; upgrade the server');
            return false;
          }
          throw e;
        }
        if (cli.globals().json) cli.print(links as unknown as Row[]);
        else cli.print(linkRows(links), ['id', 'link', 'throughput', 'active/limit', 'queued', 'success', 'vos']);
        return true;
      };
      if (o.watch === undefined || o.watch === false) {
        await show();
        return;
      }
      const every = (typeof o.watch === 'string' ? Number(o.watch) : 2) * 1000;
      if (!Number.isFinite(every) || every <= 0) throw new Error(`--watch takes a number of seconds, got '${o.watch}'`);
      for (;;) {
        if (!cli.globals().json && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
        if (!cli.globals().json) console.log(`sluice links, every ${every / 1000} s (Ctrl-C to stop) - ${new Date().toLocaleTimeString()}`);
        if (!(await show())) return;
        await new Promise((r) => setTimeout(r, every));
      }
    });
}
