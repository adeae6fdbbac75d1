import { Option, type Command } from 'commander';
import { type Cli, type Row, collect, didPath, enc, int, keyValues, parseDid, typedValues } from '../cli.ts';

// Policy packages (docs/policy-packages.md): the server loads the package before saving it.
const POLICY_HELP = "policy package: a built-in (default, identity), a file (absolute, or relative to the server's policies/, e.g. examples/run-number.ts) or an installed module; checked before it is saved";

export function register(program: Command, cli: Cli): void {

  const vo = program.command('vo').description('virtual organisations (root)');
  vo.command('add <name>')
    .description('create a VO and its first admin account')
    .option('--description <text>')
    .option('--policy <package>', POLICY_HELP)
    .option('--share <weight>', 'fair-share weight on links', int)
    .option('--admin <account>', "first admin account (default 'admin')")
    .action(async (name: string, o: { description?: string; policy?: string; share?: number; admin?: string }) => {
      cli.print(await cli.client().request('POST', '/v1/vos', { name, description: o.description, policy_package: o.policy, share: o.share, admin: o.admin }));
    });
  vo.command('list').action(async () => cli.print((await cli.client().request<{ items: Row[] }>('GET', '/v1/vos')).items, ['name', 'policy_package', 'share', 'description']));
  vo.command('show <name>').action(async (name: string) => cli.print(await cli.client().request('GET', `/v1/vos/${enc(name)}`)));
  vo.command('update <name>')
    .option('--description <text>')
    .option('--policy <package>', POLICY_HELP)
    .option('--share <weight>', 'fair-share weight', int)
    .action(async (name: string, o: { description?: string; policy?: string; share?: number }) => {
      cli.print(await cli.client().request('PATCH', `/v1/vos/${enc(name)}`, { description: o.description, policy_package: o.policy, share: o.share }));
    });
  vo.command('add-issuer <vo> <issuer>')
    .description("trust a VO's identity provider (JWKS URL)")
    .requiredOption('--jwks-url <url>')
    .option('--audience <aud>')
    .option('--account-claim <claim>', 'claim naming the account', 'sub')
    .action(async (v: string, issuer: string, o: { jwksUrl: string; audience?: string; accountClaim: string }) => {
      cli.print(await cli.client().request('POST', `/v1/vos/${enc(v)}/issuers`, { issuer, jwks_url: o.jwksUrl, audience: o.audience, account_claim: o.accountClaim }));
    });

  const account = program.command('account').description('accounts of your VO');
  account
    .command('add <name>')
    .option('--role <role>', 'user or admin')
    .option('--type <type>', 'user, group or service')
    .option('--email <email>')
    .action(async (name: string, o: { role?: string; type?: string; email?: string }) => cli.print(await cli.client().request('POST', '/v1/accounts', { name, ...o })));
  account.command('list').action(async () => cli.print(await cli.client().list<Row>('/v1/accounts'), ['name', 'role', 'type', 'status', 'email']));
  account.command('show <name>').action(async (name: string) => cli.print(await cli.client().request('GET', `/v1/accounts/${enc(name)}`)));
  account.command('whoami').action(async () => cli.print(await cli.client().request('GET', '/v1/accounts/whoami')));
  account
    .command('update <name>')
    .option('--role <role>')
    .option('--status <status>', 'active or suspended')
    .option('--email <email>')
    .action(async (name: string, o: Row) => cli.print(await cli.client().request('PATCH', `/v1/accounts/${enc(name)}`, o)));

  const scope = program.command('scope').description('scopes of your VO');
  scope
    .command('add <name>')
    .option('--account <owner>', 'owning account (default: you)')
    .action(async (name: string, o: { account?: string }) => cli.print(await cli.client().request('POST', '/v1/scopes', { name, account: o.account })));
  scope.command('list').action(async () => cli.print(await cli.client().list<Row>('/v1/scopes'), ['name', 'account', 'created_at']));
}
