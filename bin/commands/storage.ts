import { Option, type Command } from 'commander';
import { type Cli, type Row, collect, didPath, enc, int, keyValues, parseDid, typedValues } from '../cli.ts';

export function register(program: Command, cli: Cli): void {

  const endpoint = program.command('endpoint').description('storage endpoints (root manages, everyone reads)');
  endpoint
    .command('add <name> <url>')
    .addOption(new Option('--kind <kind>').choices(['http', 's3']).default('http'))
    .addOption(new Option('--tpc <mode>', 'third-party copy roles').choices(['pull', 'push', 'both', 'none']))
    .option('--max-inbound <n>', 'max concurrent transfers into the endpoint', int)
    .option('--max-outbound <n>', 'max concurrent transfers out of the endpoint', int)
    .action(async (name: string, url: string, o: { kind: string; tpc?: string; maxInbound?: number; maxOutbound?: number }) =>
      cli.print(await cli.client().request('POST', '/v1/endpoints', { name, url, kind: o.kind, tpc: o.tpc, max_inbound: o.maxInbound, max_outbound: o.maxOutbound })),
    );
  endpoint.command('list').action(async () => cli.print((await cli.client().request<{ items: Row[] }>('GET', '/v1/endpoints')).items, ['name', 'url', 'kind', 'tpc', 'max_inbound', 'max_outbound']));
  endpoint.command('show <name>').action(async (name: string) => cli.print(await cli.client().request('GET', `/v1/endpoints/${enc(name)}`)));
  endpoint
    .command('update <name>')
    .addOption(new Option('--tpc <mode>').choices(['pull', 'push', 'both', 'none']))
    .option('--max-inbound <n>', '', int)
    .option('--max-outbound <n>', '', int)
    .action(async (name: string, o: { tpc?: string; maxInbound?: number; maxOutbound?: number }) =>
      cli.print(await cli.client().request('PATCH', `/v1/endpoints/${enc(name)}`, { tpc: o.tpc, max_inbound: o.maxInbound, max_outbound: o.maxOutbound })),
    );
  endpoint.command('delete <name>').action(async (name: string) => {
    await cli.client().request('DELETE', `/v1/endpoints/${enc(name)}`);
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
      cli.print(
        await cli.client().request('POST', '/v1/rses', {
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
  rse.command('list').action(async () => cli.print(await cli.client().list<Row>('/v1/rses'), ['name', 'url', 'availability', 'attributes']));
  rse.command('show <name>').action(async (name: string) => cli.print(await cli.client().request('GET', `/v1/rses/${enc(name)}`)));
  rse
    .command('update <name>')
    .option('--read <bool>', 'available for reading (true/false)')
    .option('--write <bool>', 'available for writing (true/false)')
    .option('--delete <bool>', 'available for deletion (true/false)')
    .option('--quota <bytes>', 'bytes the VO may use here', int)
    .action(async (name: string, o: { read?: string; write?: string; delete?: string; quota?: number }) => {
      const bool = (v?: string) => (v === undefined ? undefined : v === 'true');
      const availability = { read: bool(o.read), write: bool(o.write), delete: bool(o.delete) };
      cli.print(await cli.client().request('PATCH', `/v1/rses/${enc(name)}`, { availability, quota_bytes: o.quota }));
    });
  rse.command('delete <name>').action(async (name: string) => {
    await cli.client().request('DELETE', `/v1/rses/${enc(name)}`);
    console.log(`deleted RSE ${name}`);
  });
  rse.command('set-attr <name> <pair>').description('set attribute key=value').action(async (name: string, pair: string) => {
    const [[k, v]] = Object.entries(keyValues([pair]));
    cli.print(await cli.client().request('PUT', `/v1/rses/${enc(name)}/attributes/${enc(k)}`, { value: v }));
  });
  rse.command('del-attr <name> <key>').action(async (name: string, key: string) => cli.print(await cli.client().request('DELETE', `/v1/rses/${enc(name)}/attributes/${enc(key)}`)));
  rse.command('distance <source> <destination> <distance>').description('set the distance between two RSEs').action(async (s: string, d: string, n: string) => {
    cli.print(await cli.client().request('PUT', `/v1/rses/${enc(s)}/distances/${enc(d)}`, { distance: int(n) }));
  });
}
