import { Option, type Command } from 'commander';
import { type Cli, type Row, enc, int, parseDid } from '../cli.ts';

interface RuleView {
  id: string;
  state: string;
  locks_ok_cnt: number;
  locks_replicating_cnt: number;
  locks_stuck_cnt: number;
  unplaced_cnt: number;
  error: string | null;
  progress: { bytes_total: number; bytes_ok: number; bytes_replicating: number; bytes_stuck: number };
}

function human(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) ((v /= 1000), i++);
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

function progressLine(r: RuleView): string {
  const p = r.progress;
  const pct = p.bytes_total ? ((100 * p.bytes_ok) / p.bytes_total).toFixed(1) : '100.0';
  return (
    `${new Date().toISOString().slice(11, 19)} ${r.state.padEnd(11)} locks ok ${r.locks_ok_cnt}, replicating ${r.locks_replicating_cnt}, ` +
    `stuck ${r.locks_stuck_cnt}${r.unplaced_cnt ? `, unplaced ${r.unplaced_cnt}` : ''}; ${human(p.bytes_ok)} of ${human(p.bytes_total)} (${pct}%)` +
    `${r.error ? `; last error: ${r.error}` : ''}`
  );
}

const lifetime = (v: string) => (v === 'none' ? null : int(v));

export function register(program: Command, cli: Cli): void {
  const rule = program.command('rule').description('replication rules: N copies of DIDs on RSEs matching an expression');
  rule
    .command('add <dids...>')
    .description('create one rule per DID (scope:name)')
    .requiredOption('--copies <n>', 'number of copies', int)
    .requiredOption('--rse-exp <expression>', "RSE expression, e.g. 'tier=1&country=FR' (left to right)")
    .addOption(new Option('--grouping <grouping>', 'ALL: same RSEs for all files; DATASET: per dataset; NONE: per file').choices(['ALL', 'DATASET', 'NONE']))
    .option('--weight <attribute>', 'RSE attribute weighting the random choice')
    .option('--lifetime <seconds>', 'expire after this many seconds', int)
    .option('--activity <name>', 'transfer activity')
    .option('--priority <1-5>', 'transfer priority (5 highest)', int)
    .option('--source-exp <expression>', 'only read from RSEs matching this expression')
    .option('--purge', 'delete replicas at once when the rule goes')
    .option('--locked', 'refuse deletion until unlocked')
    .option('--comment <text>')
    .action(async (dids: string[], o: { copies: number; rseExp: string; grouping?: string; weight?: string; lifetime?: number; activity?: string; priority?: number; sourceExp?: string; purge?: boolean; locked?: boolean; comment?: string }) => {
      const res = await cli.client().request<{ ids: string[]; rules: Row[] }>('POST', '/v1/rules', {
        dids: dids.map(parseDid),
        copies: o.copies,
        rse_expression: o.rseExp,
        grouping: o.grouping,
        weight: o.weight,
        lifetime: o.lifetime,
        activity: o.activity,
        priority: o.priority,
        source_replica_expression: o.sourceExp,
        purge_replicas: o.purge,
        locked: o.locked,
        comment: o.comment,
      });
      cli.print(res.rules, ['id', 'scope', 'name', 'copies', 'rse_expression', 'state', 'locks_ok_cnt', 'locks_replicating_cnt']);
    });
  rule
    .command('show <id>')
    .description('a rule with lock counters and bytes; --watch follows it until it is OK')
    .option('--watch', 'print progress every --interval seconds until the rule is OK')
    .option('--interval <seconds>', 'with --watch', int, 2)
    .action(async (id: string, o: { watch?: boolean; interval: number }) => {
      const client = cli.client();
      const get = () => client.request<RuleView>('GET', `/v1/rules/${enc(id)}`);
      if (!o.watch) return cli.print((await get()) as unknown as Row);
      for (;;) {
        const r = await get();
        console.log(progressLine(r));
        if (r.state === 'OK') return;
        if (r.state === 'SUSPENDED') {
          process.exitCode = 2;
          return;
        }
        await new Promise((res) => setTimeout(res, Math.max(1, o.interval) * 1000));
      }
    });
  rule
    .command('list')
    .option('--account <account>')
    .option('--did <scope:name>')
    .option('--scope <scope>')
    .addOption(new Option('--state <state>').choices(['REPLICATING', 'OK', 'STUCK', 'SUSPENDED']))
    .option('--limit <n>', 'at most this many', int, 1000)
    .action(async (o: { account?: string; did?: string; scope?: string; state?: string; limit: number }) => {
      const q = new URLSearchParams();
      if (o.account) q.set('account', o.account);
      if (o.did) {
        const d = parseDid(o.did);
        q.set('scope', d.scope);
        q.set('name', d.name);
      } else if (o.scope) q.set('scope', o.scope);
      if (o.state) q.set('state', o.state);
      cli.print(await cli.client().list<Row>(`/v1/rules?${q}`, o.limit), ['id', 'account', 'scope', 'name', 'copies', 'rse_expression', 'state', 'locks_ok_cnt', 'locks_replicating_cnt', 'locks_stuck_cnt', 'expires_at']);
    });
  rule
    .command('locks <id>')
    .addOption(new Option('--state <state>').choices(['OK', 'REPLICATING', 'STUCK']))
    .option('--limit <n>', 'at most this many', int, 1000)
    .action(async (id: string, o: { state?: string; limit: number }) => {
      cli.print(await cli.client().list<Row>(`/v1/rules/${enc(id)}/locks${o.state ? `?state=${o.state}` : ''}`, o.limit), ['scope', 'name', 'rse', 'state', 'bytes', 'error']);
    });
  rule
    .command('update <id>')
    .option('--lifetime <seconds|none>', "new lifetime from now ('none': never expires)", lifetime)
    .option('--priority <1-5>', 'transfer priority', int)
    .option('--activity <name>')
    .addOption(new Option('--locked <bool>').choices(['true', 'false']))
    .option('--comment <text>')
    .action(async (id: string, o: { lifetime?: number | null; priority?: number; activity?: string; locked?: string; comment?: string }) => {
      const body = { lifetime: o.lifetime, priority: o.priority, activity: o.activity, locked: o.locked === undefined ? undefined : o.locked === 'true', comment: o.comment };
      cli.print(await cli.client().request('PUT', `/v1/rules/${enc(id)}`, body));
    });
  rule.command('delete <id>').action(async (id: string) => cli.print(await cli.client().request('DELETE', `/v1/rules/${enc(id)}`)));

  // `sluice rse resolve EXPR`: a subcommand of the existing `rse` command (bin/commands/storage.ts).
  const rse = program.commands.find((c) => c.name() === 'rse') ?? program.command('rse');
  rse
    .command('resolve <expression>')
    .description("RSEs of your VO matching an expression; --explain shows the set after each step")
    .option('--explain')
    .action(async (expression: string, o: { explain?: boolean }) => {
      const q = new URLSearchParams({ expression, limit: '10000' });
      if (o.explain) q.set('explain', 'true');
      const res = await cli.client().request<{ items: Row[]; steps?: Array<{ term: string; operator?: string; depth: number; matched: string[]; result: string[] }> }>('GET', `/v1/rses?${q}`);
      if (cli.globals().json) return cli.print(res as unknown as Row);
      if (res.steps) {
        cli.print(res.steps.map((s) => ({ step: `${'  '.repeat(s.depth)}${s.operator ?? ' '} ${s.term}`, matched: s.matched.join(' '), result: s.result.join(' ') })));
      }
      cli.print(res.items, ['name', 'url', 'attributes']);
    });

  const account = program.commands.find((c) => c.name() === 'account') ?? program.command('account');
  account
    .command('set-limit <account> <rse> <bytes>')
    .description("quota: bytes the account's rules may lock on the RSE ('none' removes it)")
    .action(async (name: string, rseName: string, bytes: string) => {
      const res = await cli.client().request<{ items: Row[] }>('PUT', `/v1/accounts/${enc(name)}/limits/${enc(rseName)}`, { bytes: bytes === 'none' ? null : int(bytes) });
      cli.print(res.items);
    });
  account.command('usage <account>').description('bytes locked per RSE, with limits').action(async (name: string) => {
    cli.print((await cli.client().request<{ items: Row[] }>('GET', `/v1/accounts/${enc(name)}/usage`)).items, ['rse', 'files', 'bytes', 'limit_bytes', 'remaining_bytes']);
  });
}
