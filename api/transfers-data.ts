/**
 * What a VO member's client needs to move bytes itself (`sluice upload` / `sluice download`),
 * without ever receiving an RSE's long-lived S3 keys:
 *
 * - `POST /v1/rses/{name}/upload-plan`: for each file, its path on the RSE (the VO policy's
 *   lfn2pfn), what the catalogue already knows about it, and where to PUT the bytes. S3 RSEs get
 *   presigned PUT/GET/DELETE URLs that expire (`expires_in`, default 1 h); HTTP/WebDAV RSEs get the
 *   plain URL plus the RSE's bearer token, if it has one. Only callers whom the policy lets
 *   register replicas in every scope named (`replica.add`) get a plan; the RSE must be writable.
 *   A file that already has a replica on the RSE gets no PUT/DELETE URL: a plan never lets a
 *   client overwrite or remove registered data.
 * - `GET /v1/dids/{scope}/{name}/download-plan`: every file below a DID with its AVAILABLE
 *   replicas on readable RSEs, best first (by distance from `from` when given, then by name), each
 *   with a URL to GET (presigned on S3; the bearer token on HTTP). Any member of the VO may read.
 *
 * Another VO's RSEs and DIDs are 404 as everywhere else. The HTTP bearer token is a VO-level
 * storage credential handed to the VO's own members; per-user, time-limited storage tokens
 * (macaroons, SciTokens) would replace it where the storage supports them.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { storageConfigFor } from '../core/storage.ts';
import { getEndpoint, type Endpoint } from '../core/endpoints.ts';
import { Conflict, InvalidInput } from '../core/errors.ts';
import type { Sql } from '../core/db.ts';
import { listReplicas } from '../core/replicas.ts';
import { getRse, listDistances, listRses, type Rse } from '../core/rses.ts';
import { createStorageClient, type StorageConfig, type StorageSettings, type TpcEndpoint } from '../protocols/index.ts';
import { splitPath } from '../protocols/paths.ts';
import { authorizeScopes } from './dids.ts';
import type { AppDeps } from './env.ts';
import { Cursor, DidName, DidRef, RseName, ScopeName, actorOf, body, createRouter, decodeCursor, errorResponses, json, paginate } from './http.ts';

export const MAX_PLAN_FILES = 1000;
const DEFAULT_EXPIRY_S = 3600;
const MAX_EXPIRY_S = 12 * 3600;

const Access = z.object({ url: z.string(), headers: z.record(z.string(), z.string()) }).openapi('StorageAccess');
const PlanFile = z
  .object({
    scope: z.string(),
    name: z.string(),
    path: z.string(),
    url: z.string().openapi({ description: 'public URL of the file (no credentials)' }),
    did: z.object({ type: z.string(), bytes: z.number().nullable(), adler32: z.string().nullable() }).nullable(),
    replica: z.string().nullable().openapi({ description: "state of the file's replica on this RSE, null when there is none" }),
    put: Access.nullable().openapi({ description: 'where to PUT the bytes; null when a replica is already registered' }),
    get: Access.openapi({ description: 'where to read the bytes back (verification)' }),
    delete: Access.nullable().openapi({ description: 'how to remove the bytes if registration fails (S3); null when a replica is registered' }),
  })
  .openapi('UploadPlanFile');
const UploadPlan = z
  .object({
    rse: z.string(),
    kind: z.enum(['http', 's3']),
    expires_at: z.string(),
    storage: z
      .object({ url: z.string(), prefix: z.string(), headers: z.record(z.string(), z.string()) })
      .nullable()
      .openapi({ description: 'HTTP/WebDAV RSEs: endpoint URL, RSE prefix and headers, for a WebDAV client (MKCOL of parents)' }),
    files: z.array(PlanFile),
  })
  .openapi('UploadPlan');
const Source = z.object({ rse: z.string(), kind: z.enum(['http', 's3']), distance: z.number().nullable(), url: z.string(), headers: z.record(z.string(), z.string()) });
const DownloadFile = z
  .object({ scope: z.string(), name: z.string(), bytes: z.number(), adler32: z.string(), md5: z.string().nullable(), sources: z.array(Source) })
  .openapi('DownloadPlanFile');
const Expiry = z.coerce.number().int().min(60).max(MAX_EXPIRY_S);

/** A presigned DELETE for an S3 object (the protocol layer presigns only GET and PUT). */
async function presignS3Delete(cfg: StorageConfig, path: string, expiresIn: number): Promise<TpcEndpoint> {
  const [{ S3Client, DeleteObjectCommand }, { getSignedUrl }] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/s3-request-presigner')]);
  const s = cfg.settings ?? {};
  const prefix = splitPath(cfg.prefix);
  // Same bucket/key rule as protocols/s3/client.ts: the bucket setting, else the first prefix segment.
  const bucket = s.bucket ?? prefix.shift()!;
  const client = new S3Client({
    endpoint: new URL(cfg.url).origin,
    region: s.region ?? 'us-east-1',
    forcePathStyle: s.forcePathStyle ?? true,
    ...(s.accessKeyId && s.secretAccessKey ? { credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } } : {}),
  });
  try {
    const url = await getSignedUrl(client, new DeleteObjectCommand({ Bucket: bucket, Key: [...prefix, ...splitPath(path)].join('/') }), { expiresIn });
    return { url, headers: {} };
  } finally {
    client.destroy();
  }
}

interface Signer {
  kind: 'http' | 's3';
  publicUrl(path: string): string;
  get(path: string): Promise<TpcEndpoint>;
  put(path: string): Promise<TpcEndpoint>;
  delete(path: string): Promise<TpcEndpoint>;
  storage: { url: string; prefix: string; headers: Record<string, string> } | null;
  close(): Promise<void>;
}

/** Presigns (S3) or hands out URL + bearer (HTTP) for paths on one RSE; no storage I/O. */
function signerFor(rse: Rse, endpoint: Endpoint, expiresIn: number): Signer {
  const cfg = storageConfigFor({ ...rse, url: endpoint.url, tpc: endpoint.tpc, settings: endpoint.settings });
  let client;
  try {
    client = createStorageClient(cfg);
  } catch (e) {
    throw new Conflict('RseMisconfigured', `RSE '${rse.name}' cannot be accessed: ${(e as Error).message}`);
  }
  const http = cfg.kind === 'http';
  const headers: Record<string, string> = http && cfg.settings?.token ? { Authorization: `Bearer ${cfg.settings.token}` } : {};
  const plain = (path: string): TpcEndpoint => ({ url: client.url(path), headers });
  return {
    kind: cfg.kind as 'http' | 's3',
    publicUrl: (path) => client.url(path),
    get: async (path) => (http ? plain(path) : client.tpcSource(path, { expiresInSeconds: expiresIn })),
    put: async (path) => (http ? plain(path) : client.tpcDestination(path, { expiresInSeconds: expiresIn })),
    delete: async (path) => (http ? plain(path) : presignS3Delete(cfg, path, expiresIn)),
    storage: http ? { url: endpoint.url, prefix: rse.prefix, headers } : null,
    close: () => client.close(),
  };
}

interface FileState {
  scope: string;
  name: string;
  type: string | null;
  bytes: number | null;
  adler32: string | null;
  replica: string | null;
}

/** What the catalogue knows of each file, and the state of its replica on one RSE. */
async function fileStates(sql: Sql, vo: string, rseId: number, files: Array<{ scope: string; name: string }>): Promise<FileState[]> {
  return sql<FileState[]>`
    select t.scope, t.name, d.type, d.bytes, d.adler32, r.state as replica
    from unnest(${files.map((f) => f.scope)}::text[], ${files.map((f) => f.name)}::text[]) with ordinality as t(scope, name, i)
    left join dids d on d.vo = ${vo} and d.scope = t.scope and d.name = t.name
    left join replicas r on r.vo = ${vo} and r.scope = t.scope and r.name = t.name and r.rse_id = ${rseId}
    order by t.i`;
}

export function transferDataRoutes(deps: AppDeps) {
  const app = createRouter();
  const { sql, policies } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/rses/{name}/upload-plan',
      tags: ['rses'],
      summary: `Paths and (presigned) URLs to upload up to ${MAX_PLAN_FILES} files to a writable RSE; needs the right to register replicas in their scopes`,
      request: {
        params: z.object({ name: RseName }),
        body: body(z.object({ files: z.array(DidRef).min(1).max(MAX_PLAN_FILES), expires_in: Expiry.optional() }).strict()),
      },
      responses: { 200: json(UploadPlan, 'The plan'), ...errorResponses },
    }),
    async (c) => {
      const actor = actorOf(c.get('caller'));
      const { files, expires_in } = c.req.valid('json');
      const rse = await getRse(sql, actor.vo, c.req.valid('param').name, { secrets: true });
      const seen = new Set<string>();
      for (const f of files) {
        const k = `${f.scope}:${f.name}`;
        if (seen.has(k)) throw new InvalidInput('DuplicateDid', `'${k}' appears twice in the request`);
        seen.add(k);
      }
      await authorizeScopes(deps, actor, 'replica.add', files.map((f) => f.scope));
      if (!rse.availability.write) throw new Conflict('RseNotWritable', `RSE '${rse.name}' is not available for writing; choose another RSE`);
      if (!rse.deterministic) throw new Conflict('RseNotDeterministic', `RSE '${rse.name}' is not deterministic: upload to it with explicit paths is not supported`);
      const policy = await policies.forVo(actor.vo);
      // One batch through the VO's lfn2pfn: the registry checks every path and throws PolicyError.
      const paths = await policy.lfn2pfn(files.map((f) => ({ scope: f.scope, name: f.name })), { name: rse.name, prefix: rse.prefix, attributes: rse.attributes });
      const states = await fileStates(sql, actor.vo, rse.id, files);
      const expiresIn = expires_in ?? DEFAULT_EXPIRY_S;
      const signer = signerFor(rse, await getEndpoint(sql, rse.endpoint), expiresIn);
      try {
        const planned = await Promise.all(
          states.map(async (s, i) => {
            const path = paths[i];
            const registered = s.replica !== null;
            return {
              scope: s.scope,
              name: s.name,
              path,
              url: signer.publicUrl(path),
              did: s.type === null ? null : { type: s.type, bytes: s.bytes === null ? null : Number(s.bytes), adler32: s.adler32 },
              replica: s.replica,
              put: registered ? null : await signer.put(path),
              get: await signer.get(path),
              delete: registered ? null : await signer.delete(path),
            };
          }),
        );
        return c.json(
          { rse: rse.name, kind: signer.kind, expires_at: new Date(Date.now() + expiresIn * 1000).toISOString(), storage: signer.storage, files: planned },
          200,
        );
      } finally {
        await signer.close();
      }
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/dids/{scope}/{name}/download-plan',
      tags: ['dids'],
      summary: 'Every file below a DID with URLs to read it from, best replica first (AVAILABLE, on readable RSEs)',
      request: {
        params: z.object({ scope: ScopeName, name: DidName }),
        query: z.object({
          from: RseName.optional().openapi({ description: 'rank sources by their distance to this RSE of your VO' }),
          expires_in: Expiry.optional(),
          limit: z.coerce.number().int().min(1).max(MAX_PLAN_FILES).default(100),
          cursor: Cursor,
        }),
      },
      responses: { 200: json(z.object({ items: z.array(DownloadFile), next: z.string().nullable() }), 'Files with sources'), ...errorResponses },
    }),
    async (c) => {
      const { vo } = actorOf(c.get('caller'));
      const did = c.req.valid('param');
      const { from, limit, cursor, expires_in } = c.req.valid('query');
      const after = decodeCursor(cursor, 2) as [string, string] | undefined;
      const distance = new Map<string, number>();
      if (from) {
        for (const d of await listDistances(sql, vo, from)) {
          // Distances are directed; a source's distance is source -> `from`, else the reverse.
          if (d.destination === from) distance.set(d.source, d.distance);
          else if (!distance.has(d.destination)) distance.set(d.destination, d.distance);
        }
        distance.set(from, -1);
      }
      const rows = await listReplicas(sql, vo, did, { after, limit, state: 'AVAILABLE' });
      const readable = new Map((await listRses(sql, vo)).filter((r) => r.availability.read).map((r) => [r.name, r]));
      const signers = new Map<string, Signer>();
      const expiresIn = expires_in ?? DEFAULT_EXPIRY_S;
      try {
        const signer = async (name: string) => {
          let s = signers.get(name);
          if (!s) {
            const rse = await getRse(sql, vo, name, { secrets: true });
            s = signerFor(rse, await getEndpoint(sql, rse.endpoint), expiresIn);
            signers.set(name, s);
          }
          return s;
        };
        const page = paginate(rows, limit, (r) => [r.scope, r.name]);
        const items = [];
        for (const f of page.items) {
          const usable = f.replicas
            .filter((r) => readable.has(r.rse))
            .sort((a, b) => (distance.get(a.rse) ?? Infinity) - (distance.get(b.rse) ?? Infinity) || (a.rse < b.rse ? -1 : a.rse > b.rse ? 1 : 0));
          const sources = [];
          for (const r of usable) {
            const s = await signer(r.rse);
            const access = await s.get(r.path);
            const d = distance.get(r.rse);
            sources.push({ rse: r.rse, kind: s.kind, distance: d === undefined ? null : Math.max(0, d), ...access });
          }
          items.push({ scope: f.scope, name: f.name, bytes: Number(f.bytes), adler32: f.adler32, md5: f.md5, sources });
        }
        return c.json({ items, next: page.next }, 200);
      } finally {
        await Promise.all([...signers.values()].map((s) => s.close()));
      }
    },
  );

  return app;
}
