/**
 * Runs inside a policy worker: imports one package, reports its shape, then answers hook calls
 * one message at a time. Batch hooks (lfn2pfn, validateDid, extractScope) loop here, so 10,000
 * files cost one message each way. Results are checked by the main thread, which trusts nothing
 * that comes back from here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { checkPackageShape } from './shape.ts';
import type { PolicyPackage } from './types.ts';

export interface WorkerInit {
  url: string;
  source: string;
}

export type WorkerRequest =
  | { id: number; hook: 'lfn2pfn'; dids: unknown[]; rse: unknown }
  | { id: number; hook: 'validateDid'; dids: unknown[] }
  | { id: number; hook: 'extractScope'; names: string[] }
  | { id: number; hook: 'permission' | 'rankDestinations' | 'rankSources' | 'ruleDefaults'; args: unknown[] };

export type WorkerReply =
  | { type: 'ready'; name: string; apiVersion: number; hooks: string[] }
  | { type: 'load-error'; code: string; message: string }
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; message: string; item?: number; invalid?: boolean };

const port = parentPort!;
const init = workerData as WorkerInit;

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => !!v && typeof (v as { then?: unknown }).then === 'function';

let pkg: PolicyPackage;
try {
  const mod = (await import(init.url)) as { default?: unknown };
  const shape = checkPackageShape(mod.default, init.source);
  if ('problem' in shape) {
    port.postMessage({ type: 'load-error', code: shape.code, message: shape.problem } satisfies WorkerReply);
    process.exit(0);
  }
  pkg = mod.default as PolicyPackage;
  port.postMessage({ type: 'ready', name: shape.name, apiVersion: shape.apiVersion, hooks: shape.hooks } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ type: 'load-error', code: 'PolicyImportFailed', message: `'${init.source}' failed to import: ${describe(e)}` } satisfies WorkerReply);
  process.exit(0);
}

/** Calls fn per item; awaits only when an item's result is a promise (most hooks are sync). */
async function each<T>(items: T[], fn: (item: T) => unknown): Promise<unknown[]> {
  const out = new Array<unknown>(items.length);
  for (let i = 0; i < items.length; i++) {
    try {
      const v = fn(items[i]);
      out[i] = isThenable(v) ? await v : v;
    } catch (e) {
      throw Object.assign(new Error(describe(e)), { item: i });
    }
  }
  return out;
}

async function run(req: WorkerRequest): Promise<unknown> {
  switch (req.hook) {
    case 'lfn2pfn':
      return each(req.dids, (d) => pkg.lfn2pfn!(d as never, req.rse as never));
    case 'validateDid':
      return each(req.dids, (d) => pkg.validateDid!(d as never));
    case 'extractScope':
      return each(req.names, (n) => pkg.extractScope!(n));
    default: {
      const fn = pkg[req.hook] as (...a: unknown[]) => unknown;
      return fn.apply(pkg, req.args);
    }
  }
}

port.on('message', async (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { type: 'result', id: req.id, ok: true, value: await run(req) };
  } catch (e) {
    reply = { type: 'result', id: req.id, ok: false, message: describe(e), item: (e as { item?: number }).item };
  }
  try {
    port.postMessage(reply);
  } catch (e) {
    // A value that cannot cross threads (a function, a class instance with methods, ...).
    port.postMessage({ type: 'result', id: req.id, ok: false, invalid: true, message: `returned a value that cannot be sent back: ${describe(e)}` } satisfies WorkerReply);
  }
});
