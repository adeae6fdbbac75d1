import { Command, Option } from 'commander';
import Table from 'cli-table3';
import { loadOrCreateLocalIssuer, mintToken } from '../core/auth.ts';
import { loadConfig, type Config } from '../core/config.ts';
import { createLogger } from '../core/log.ts';
import { openDatabase } from '../core/runtime.ts';
import { serveApi } from '../api/server.ts';
import { ApiError, createClient, type Client } from './client.ts';

const program = new Command();
program
  .name('sluice')
  .description('Sluice: replica catalogue, replication rules and transfers for scientific collaborations')
  .option('--url <url>', 'API base URL (SLUICE_URL)', process.env.SLUICE_URL ?? 'http://127.0.0.1:8080')
  .option('--token <jwt>', 'bearer token (SLUICE_TOKEN); default: minted from the local key in SLUICE_HOME')
  .option('--vo <vo>', 'act as an account of this VO (token minted from the local key)')
  .option('--account <account>', 'account to act as with --vo', 'admin')
  .option('--json', 'print JSON instead of tables')
  .showHelpAfterError();

interface Globals {
  url: string;
  token?: string;
  vo?: string;
  account: string;
  json?: boolean;
}

function globals(): Globals {
  return program.opts<Globals>();
}

function config(overrides: Partial<Config> = {}): Config {
  return loadConfig(process.env, overrides);
}

function client(): Client {
  const g = globals();
  return createClient({ url: g.url, token: g.token ?? process.env.SLUICE_TOKEN, vo: g.vo, account: g.vo ? g.account : undefined }, config());
}

type Row = Record<string, unknown>;

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') {
    return Object.entries(v as Row)
      .map(([k, x]) => `${k}=${typeof x === 'object' ? JSON.stringify(x) : String(x)}`)
      .join(' ');
  }
  return String(v);
}

/** Tables for people, JSON (the API's own shape) for scripts. */
function print(data: Row | Row[], columns?: string[]): void {
  if (globals().json) {
    console.log(JSON.stringify(data, null, 2));
    return;
  }
  if (!Array.isArray(data)) {
    const t = new Table({ style: { head: [], border: [] } });
    for (const [k, v] of Object.entries(data)) t.push({ [k]: cell(v) });
    console.log(t.toString());
    return;
  }
  if (data.length === 0) {
    console.log('(none)');
    return;
  }
  const cols = columns ?? Object.keys(data[0]);
  const t = new Table({ head: cols, style: { head: ['bold'], border: [] } });
  for (const r of data) t.push(cols.map((c) => cell(r[c])));
  console.log(t.toString());
}

function did(text: string): { scope: string; name: string } {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new Error(`'${text}' is not a DID; write scope:name`);
  return { scope: text.slice(0, i), name: text.slice(i + 1) };
}

const enc = encodeURIComponent;
const didPath = (d: { scope: string; name: string }) => `/v1/dids/${enc(d.scope)}/${enc(d.name)}`;

function keyValues(pairs: string[] = []): Record<string, string> {
  return Object.fromEntries(
    pairs.map((p) => {
      const i = p.indexOf('=');
      if (i <= 0) throw new Error(`'${p}' is not key=value`);
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );
}

/** Metadata values: numbers and booleans keep their type, as users expect from `run=1234`. */
function typedValues(pairs: string[] = []): Record<string, string | number | boolean> {
  return Object.fromEntries(
    Object.entries(keyValues(pairs)).map(([k, v]) => [k, /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v]),
  );
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`'${v}' is not an integer`);
  return n;
};

// ---- service -------------------------------------------------------------------------------

program
  .command('server')
  .description('run everything in one process: embedded PostgreSQL (unless DATABASE_URL), migrations, API')
  .option('--port <port>', 'API port (PORT, default 8080)', int)
  .option('--host <host>', 'API address (HOST, default 127.0.0.1)')
  .action(async (opts: { port?: number; host?: string }) => {
    const cfg = config({ port: opts.port, host: opts.host });
    const log = createLogger({ level: cfg.logLevel });
    const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-server' });
    const api = await serveApi(db.sql, cfg, log);
    log.info({ home: cfg.home, database: db.embedded ? 'embedded' : 'DATABASE_URL' }, `Sluice is up at ${api.url} (try: npx sluice vo list)`);
    await untilSignal(log, async () => {
      await api.close();
      await db.close();
    });
  });

program
  .command('api')
  .description('run only the API against DATABASE_URL (production layout; does not migrate)')
  .option('--port <port>', 'API port (PORT, default 8080)', int)
  .option('--host <host>', 'API address (HOST, default 127.0.0.1)')
  .action(async (opts: { port?: number; host?: string }) => {
    const cfg = config({ port: opts.port, host: opts.host });
    if (!cfg.databaseUrl) throw new Error("'sluice api' needs DATABASE_URL; for a laptop use 'sluice server'");
    const log = createLogger({ level: cfg.logLevel });
    const db = await openDatabase(cfg, { log, migrate: 'require', applicationName: 'sluice-api' });
    const api = await serveApi(db.sql, cfg, log);
    await untilSignal(log, async () => {
      await api.close();
      await db.close();
    });
  });

program
  .command('migrate')
  .description('apply pending database migrations (DATABASE_URL, or the embedded database)')
  .action(async () => {
    const cfg = config();
    const log = createLogger({ level: cfg.logLevel });
    const db = await openDatabase(cfg, { log, migrate: 'apply', applicationName: 'sluice-migrate', poolMax: 2 });
    await db.close();
    console.log('database schema is up to date');
  });

program
  .command('token')
  .description('print a token signed by the local key in SLUICE_HOME (root unless --vo is given)')
  .option('--lifetime <seconds>', 'token lifetime', int)
  .action(async (opts: { lifetime?: number }) => {
    const cfg = config();
    const g = globals();
    const issuer = await loadOrCreateLocalIssuer(cfg.home);
    console.log(
      await mintToken(issuer, {
        vo: g.vo,
        account: g.vo ? g.account : undefined,
        lifetimeSeconds: opts.lifetime ?? cfg.tokenLifetimeSeconds,
        audience: cfg.tokenAudience,
      }),
    );
  });

async function untilSignal(log: ReturnType<typeof createLogger>, stop: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        log.warn('second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      stop().then(resolve, (e) => {
        log.error({ err: e }, 'shutdown failed');
        resolve();
      });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

// ---- VOs, accounts, scopes ---------------------------------------------------------------------

const vo = program.command('vo').description('virtual organisations (root)');
vo.command('add <name>')
  .description('create a VO and its first admin account')
  .option('--description <text>')
  .option('--policy <package>', 'policy package (default: default)')
  .option('--share <weight>', 'fair-share weight on links', int)
  .option('--admin <account>', "first admin account (default 'admin')")
  .action(async (name: string, o: { description?: string; policy?: string; share?: number; admin?: string }) => {
    print(await client().request('POST', '/v1/vos', { name, description: o.description, policy_package: o.policy, share: o.share, admin: o.admin }));
  });
vo.command('list').action(async () => print((await client().request<{ items: Row[] }>('GET', '/v1/vos')).items, ['name', 'policy_package', 'share', 'description']));
vo.command('show <name>').action(async (name: string) => print(await client().request('GET', `/v1/vos/${enc(name)}`)));
vo.command('update <name>')
  .option('--description <text>')
  .option('--policy <package>')
  .option('--share <weight>', 'fair-share weight', int)
  .action(async (name: string, o: { description?: string; policy?: string; share?: number }) => {
    print(await client().request('PATCH', `/v1/vos/${enc(name)}`, { description: o.description, policy_package: o.policy, share: o.share }));
  });
vo.command('add-issuer <vo> <issuer>')
  .description("trust a VO's identity provider (JWKS URL)")
  .requiredOption('--jwks-url <url>')
  .option('--audience <aud>')
  .option('--account-claim <claim>', 'claim naming the account', 'sub')
  .action(async (v: string, issuer: string, o: { jwksUrl: string; audience?: string; accountClaim: string }) => {
    print(await client().request('POST', `/v1/vos/${enc(v)}/issuers`, { issuer, jwks_url: o.jwksUrl, audience: o.audience, account_claim: o.accountClaim }));
  });

const account = program.command('account').description('accounts of your VO');
account
  .command('add <name>')
  .option('--role <role>', 'user or admin')
  .option('--type <type>', 'user, group or service')
  .option('--email <email>')
  .action(async (name: string, o: { role?: string; type?: string; email?: string }) => print(await client().request('POST', '/v1/accounts', { name, ...o })));
account.command('list').action(async () => print(await client().list<Row>('/v1/accounts'), ['name', 'role', 'type', 'status', 'email']));
account.command('show <name>').action(async (name: string) => print(await client().request('GET', `/v1/accounts/${enc(name)}`)));
account.command('whoami').action(async () => print(await client().request('GET', '/v1/accounts/whoami')));
account
  .command('update <name>')
  .option('--role <role>')
  .option('--status <status>', 'active or suspended')
  .option('--email <email>')
  .action(async (name: string, o: Row) => print(await client().request('PATCH', `/v1/accounts/${enc(name)}`, o)));

const scope = program.command('scope').description('scopes of your VO');
scope
  .command('add <name>')
  .option('--account <owner>', 'owning account (default: you)')
  .action(async (name: string, o: { account?: string }) => print(await client().request('POST', '/v1/scopes', { name, account: o.account })));
scope.command('list').action(async () => print(await client().list<Row>('/v1/scopes'), ['name', 'account', 'created_at']));

// ---- storage -------------------------------------------------------------------------------------

const endpoint = program.command('endpoint').description('storage endpoints (root manages, everyone reads)');
endpoint
  .command('add <name> <url>')
  .addOption(new Option('--kind <kind>').choices(['http', 's3']).default('http'))
  .addOption(new Option('--tpc <mode>', 'third-party copy roles').choices(['pull', 'push', 'both', 'none']))
  .option('--max-inbound <n>', 'max concurrent transfers into the endpoint', int)
  .option('--max-outbound <n>', 'max concurrent transfers out of the endpoint', int)
  .action(async (name: string, url: string, o: { kind: string; tpc?: string; maxInbound?: number; maxOutbound?: number }) =>
    print(await client().request('POST', '/v1/endpoints', { name, url, kind: o.kind, tpc: o.tpc, max_inbound: o.maxInbound, max_outbound: o.maxOutbound })),
  );
endpoint.command('list').action(async () => print((await client().request<{ items: Row[] }>('GET', '/v1/endpoints')).items, ['name', 'url', 'kind', 'tpc', 'max_inbound', 'max_outbound']));
endpoint.command('show <name>').action(async (name: string) => print(await client().request('GET', `/v1/endpoints/${enc(name)}`)));
endpoint
  .command('update <name>')
  .addOption(new Option('--tpc <mode>').choices(['pull', 'push', 'both', 'none']))
  .option('--max-inbound <n>', '', int)
  .option('--max-outbound <n>', '', int)
  .action(async (name: string, o: { tpc?: string; maxInbound?: number; maxOutbound?: number }) =>
    print(await client().request('PATCH', `/v1/endpoints/${enc(name)}`, { tpc: o.tpc, max_inbound: o.maxInbound, max_outbound: o.maxOutbound })),
  );
endpoint.command('delete <name>').action(async (name: string) => {
  await client().request('DELETE', `/v1/endpoints/${enc(name)}`);
  console.log(`deleted endpoint ${name}`);
});

const rse = program.command('rse').description('storage elements of your VO');
rse
  .command('add <name>')
  .requiredOption('--endpoint <endpoint>', 'storage endpoint name')
  .option('--prefix <path>', 'path prefix on the endpoint', '/')
  .option('--attr <key=value>', 'attribute (repeatable)', collect)
  .option('--non-deterministic', 'paths are given at registration instead of derived')
  .option('--quota <bytes>', 'bytes the VO may use here', int)
  .option('--bucket <bucket>', 'S3 bucket')
  .option('--region <region>', 'S3 region')
  .option('--access-key-id <id>', 'S3 access key id')
  .option('--secret-access-key <key>', 'S3 secret key')
  .action(async (name: string, o: { endpoint: string; prefix: string; attr?: string[]; nonDeterministic?: boolean; quota?: number; bucket?: string; region?: string; accessKeyId?: string; secretAccessKey?: string }) => {
    const s3 = { bucket: o.bucket, region: o.region, access_key_id: o.accessKeyId, secret_access_key: o.secretAccessKey };
    const hasS3 = Object.values(s3).some((v) => v !== undefined);
    print(
      await client().request('POST', '/v1/rses', {
        name,
        endpoint: o.endpoint,
        prefix: o.prefix,
        attributes: keyValues(o.attr),
        deterministic: o.nonDeterministic ? false : undefined,
        quota_bytes: o.quota,
        protocol_settings: hasS3 ? s3 : undefined,
      }),
    );
  });
rse.command('list').action(async () => print(await client().list<Row>('/v1/rses'), ['name', 'url', 'availability', 'attributes']));
rse.command('show <name>').action(async (name: string) => print(await client().request('GET', `/v1/rses/${enc(name)}`)));
rse
  .command('update <name>')
  .option('--read <bool>', 'available for reading (true/false)')
  .option('--write <bool>', 'available for writing (true/false)')
  .option('--delete <bool>', 'available for deletion (true/false)')
  .option('--quota <bytes>', 'bytes the VO may use here', int)
  .action(async (name: string, o: { read?: string; write?: string; delete?: string; quota?: number }) => {
    const bool = (v?: string) => (v === undefined ? undefined : v === 'true');
    const availability = { read: bool(o.read), write: bool(o.write), delete: bool(o.delete) };
    print(await client().request('PATCH', `/v1/rses/${enc(name)}`, { availability, quota_bytes: o.quota }));
  });
rse.command('delete <name>').action(async (name: string) => {
  await client().request('DELETE', `/v1/rses/${enc(name)}`);
  console.log(`deleted RSE ${name}`);
});
rse.command('set-attr <name> <pair>').description('set attribute key=value').action(async (name: string, pair: string) => {
  const [[k, v]] = Object.entries(keyValues([pair]));
  print(await client().request('PUT', `/v1/rses/${enc(name)}/attributes/${enc(k)}`, { value: v }));
});
rse.command('del-attr <name> <key>').action(async (name: string, key: string) => print(await client().request('DELETE', `/v1/rses/${enc(name)}/attributes/${enc(key)}`)));
rse.command('distance <source> <destination> <distance>').description('set the distance between two RSEs').action(async (s: string, d: string, n: string) => {
  print(await client().request('PUT', `/v1/rses/${enc(s)}/distances/${enc(d)}`, { distance: int(n) }));
});

// ---- DIDs and replicas ---------------------------------------------------------------------------

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
    const dids = names.map((n) => ({ ...did(n), type: o.type.toUpperCase(), bytes: o.bytes, adler32: o.adler32, md5: o.md5, meta: o.meta ? typedValues(o.meta) : undefined }));
    print(await client().request('POST', '/v1/dids', { dids }));
  });
didCmd.command('show <did>').action(async (d: string) => print(await client().request('GET', didPath(did(d)))));
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
    print(await client().list<Row>(`/v1/dids?${q}`, o.limit), ['scope', 'name', 'type', 'bytes', 'adler32', 'open']);
  });
didCmd.command('attach <parent> <children...>').action(async (p: string, children: string[]) => print(await client().request('POST', `${didPath(did(p))}/children`, { children: children.map(did) })));
didCmd.command('detach <parent> <children...>').action(async (p: string, children: string[]) => print(await client().request('DELETE', `${didPath(did(p))}/children`, { children: children.map(did) })));
didCmd.command('children <did>').action(async (d: string) => print(await client().list<Row>(`${didPath(did(d))}/children`), ['scope', 'name', 'type']));
didCmd.command('files <did>').description('every file below a DID').action(async (d: string) => print(await client().list<Row>(`${didPath(did(d))}/files`, 1_000_000), ['scope', 'name', 'bytes', 'adler32']));
didCmd.command('close <did>').action(async (d: string) => print(await client().request('PATCH', didPath(did(d)), { open: false })));
didCmd
  .command('set-meta <did> <pairs...>')
  .description('merge metadata key=value (empty value removes the key)')
  .action(async (d: string, pairs: string[]) => {
    const meta = Object.fromEntries(Object.entries(typedValues(pairs)).map(([k, v]) => [k, v === '' ? null : v]));
    print(await client().request('PATCH', didPath(did(d)), { meta }));
  });

const replica = program.command('replica').description('replicas of files on RSEs');
replica
  .command('add <dids...>')
  .description('register replicas of existing files on an RSE')
  .requiredOption('--rse <rse>')
  .option('--path <path>', 'path on a non-deterministic RSE (one DID only)')
  .action(async (dids: string[], o: { rse: string; path?: string }) => {
    if (o.path && dids.length > 1) throw new Error('--path goes with exactly one DID');
    print(await client().request('POST', '/v1/replicas', { rse: o.rse, replicas: dids.map((d) => ({ ...did(d), path: o.path })) }));
  });
replica.command('list <did>').description('replicas (with URLs) of every file below a DID').action(async (d: string) => {
  const files = await client().list<{ scope: string; name: string; bytes: number; replicas: Row[] }>(`${didPath(did(d))}/replicas`, 1_000_000);
  if (globals().json) return print(files as unknown as Row[]);
  print(files.flatMap((f) => f.replicas.map((r) => ({ did: `${f.scope}:${f.name}`, bytes: f.bytes, rse: r.rse, state: r.state, url: r.url }))));
});
replica
  .command('declare-bad <dids...>')
  .requiredOption('--rse <rse>')
  .requiredOption('--reason <text>')
  .action(async (dids: string[], o: { rse: string; reason: string }) => print(await client().request('POST', '/v1/replicas/bad', { reason: o.reason, replicas: dids.map((d) => ({ ...did(d), rse: o.rse })) })));

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ApiError) console.error(`error ${e.code}: ${e.message}`);
  else console.error(`error: ${(e as Error).message}`);
  process.exitCode = 1;
});
