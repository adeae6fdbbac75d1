import { Option, type Command } from 'commander';
import { type Cli, type Row, collect, didPath, enc, int, keyValues, parseDid, typedValues } from '../cli.ts';

export function register(program: Command, cli: Cli): void {

  const didCmd = program.command('did').description('files, datasets and containers (scope:name)');
  didCmd
    .command('add <dids...>')
    .description('register DIDs (files need --bytes and --adler32)')
    .addOption(new Option('--type <type>').choices(['file', 'dataset', 'container']).default('file'))
    .option('--bytes <n>', 'file size', int)
    .option('--adler32 <hex>', 'file adler32 (8 hex digits)')
    .option('--md5 <hex>', 'file md5')
    .option('--meta <key=value>', 'metadata (repeatable)', collect)
    .action(async (names: string[], o: { type: string; bytes?: number; adler32?: string; md5?: string; meta?: string[] }) => {
      const dids = names.map((n) => ({ ...parseDid(n), type: o.type.toUpperCase(), bytes: o.bytes, adler32: o.adler32, md5: o.md5, meta: o.meta ? typedValues(o.meta) : undefined }));
      cli.print(await cli.client().request('POST', '/v1/dids', { dids }));
    });
  didCmd.command('show <did>').action(async (d: string) => cli.print(await cli.client().request('GET', didPath(parseDid(d)))));
  didCmd
    .command('list <scope-pattern>')
    .description("list DIDs: 'scope' or 'scope:pattern' with * and ?")
    .addOption(new Option('--type <type>').choices(['file', 'dataset', 'container']))
    .option('--filter <expr>', 'metadata filter key=value, key>n, key<n (repeatable)', collect)
    .option('--limit <n>', 'at most this many', int, 1000)
    .action(async (sp: string, o: { type?: string; filter?: string[]; limit: number }) => {
      const [s, pattern] = sp.includes(':') ? [sp.slice(0, sp.indexOf(':')), sp.slice(sp.indexOf(':') + 1)] : [sp, undefined];
      const q = new URLSearchParams({ scope: s });
      if (pattern) q.set('name', pattern);
      if (o.type) q.set('type', o.type.toUpperCase());
      for (const f of o.filter ?? []) q.append('filter', f);
      cli.print(await cli.client().list<Row>(`/v1/dids?${q}`, o.limit), ['scope', 'name', 'type', 'bytes', 'adler32', 'open']);
    });
  didCmd.command('attach <parent> <children...>').action(async (p: string, children: string[]) => cli.print(await cli.client().request('POST', `${didPath(parseDid(p))}/children`, { children: children.map(parseDid) })));
  didCmd.command('detach <parent> <children...>').action(async (p: string, children: string[]) => cli.print(await cli.client().request('DELETE', `${didPath(parseDid(p))}/children`, { children: children.map(parseDid) })));
  didCmd.command('children <did>').action(async (d: string) => cli.print(await cli.client().list<Row>(`${didPath(parseDid(d))}/children`), ['scope', 'name', 'type']));
  didCmd.command('files <did>').description('every file below a DID').action(async (d: string) => cli.print(await cli.client().list<Row>(`${didPath(parseDid(d))}/files`, 1_000_000), ['scope', 'name', 'bytes', 'adler32']));
  didCmd.command('close <did>').action(async (d: string) => cli.print(await cli.client().request('PATCH', didPath(parseDid(d)), { open: false })));
  didCmd
    .command('set-meta <did> <pairs...>')
    .description('merge metadata key=value (empty value removes the key)')
    .action(async (d: string, pairs: string[]) => {
      const meta = Object.fromEntries(Object.entries(typedValues(pairs)).map(([k, v]) => [k, v === '' ? null : v]));
      cli.print(await cli.client().request('PATCH', didPath(parseDid(d)), { meta }));
    });

  const replica = program.command('replica').description('replicas of files on RSEs');
  replica
    .command('add <dids...>')
    .description('register replicas of existing files on an RSE')
    .requiredOption('--rse <rse>')
    .option('--path <path>', 'path on a non-deterministic RSE (one DID only)')
    .action(async (dids: string[], o: { rse: string; path?: string }) => {
      if (o.path && dids.length > 1) throw new Error('--path goes with exactly one DID');
      cli.print(await cli.client().request('POST', '/v1/replicas', { rse: o.rse, replicas: dids.map((d) => ({ ...parseDid(d), path: o.path })) }));
    });
  replica.command('list <did>').description('replicas (with URLs) of every file below a DID').action(async (d: string) => {
    const files = await cli.client().list<{ scope: string; name: string; bytes: number; replicas: Row[] }>(`${didPath(parseDid(d))}/replicas`, 1_000_000);
    if (cli.globals().json) return cli.print(files as unknown as Row[]);
    cli.print(files.flatMap((f) => f.replicas.map((r) => ({ did: `${f.scope}:${f.name}`, bytes: f.bytes, rse: r.rse, state: r.state, url: r.url }))));
  });
  replica
    .command('declare-bad <dids...>')
    .requiredOption('--rse <rse>')
    .requiredOption('--reason <text>')
    .action(async (dids: string[], o: { rse: string; reason: string }) => cli.print(await cli.client().request('POST', '/v1/replicas/bad', { reason: o.reason, replicas: dids.map((d) => ({ ...parseDid(d), rse: o.rse })) })));
}
