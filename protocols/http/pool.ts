import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Agent, interceptors, type Dispatcher } from 'undici';

/**
 * One undici Agent per endpoint origin, shared by every client of that origin (many RSEs live on
 * one door), so thousands of small files reuse a handful of keep-alive connections instead of
 * paying a TCP (and TLS) handshake each. Reference-counted: the agent closes with its last client.
 */
interface Entry {
  dispatcher: Dispatcher;
  agent: Agent;
  refs: number;
}

const agents = new Map<string, Entry>();

export interface PoolOptions {
  connections?: number;
  connectTimeoutMs?: number;
}

export function acquireDispatcher(origin: string, opts: PoolOptions = {}): Dispatcher {
  const key = `${origin}|${opts.connections ?? ''}|${opts.connectTimeoutMs ?? ''}`;
  let entry = agents.get(key);
  if (!entry) {
    const agent = new Agent({
      connections: opts.connections ?? 32,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      connect: { timeout: opts.connectTimeoutMs ?? 10_000 },
      // Per-request values are set by the client; these only stop undici's 300 s defaults from
      // masking our own stall detection.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    // Doors (dCache, EOS) redirect GET/HEAD/COPY to the pool/FST that holds the data.
    const dispatcher = agent.compose(interceptors.redirect({ maxRedirections: 5 }));
    entry = { agent, dispatcher, refs: 0 };
    agents.set(key, entry);
  }
  entry.refs++;
  const held = entry;
  releaseKeys.set(held.dispatcher, key);
  return held.dispatcher;
}

const releaseKeys = new WeakMap<Dispatcher, string>();

export async function releaseDispatcher(dispatcher: Dispatcher): Promise<void> {
  const key = releaseKeys.get(dispatcher);
  if (!key) return;
  const entry = agents.get(key);
  if (!entry || --entry.refs > 0) return;
  agents.delete(key);
  await entry.agent.close().catch(() => entry.agent.destroy());
}

/**
 * node:http keep-alive agents, one per origin, for the one request undici cannot send the way
 * XRootD needs it: a PUT with a `Content-Length` header in that exact case (undici always writes
 * it in lower case, which XRootD 5.5.3 ignores, storing an empty file and answering 200).
 */
const nodeAgents = new Map<string, HttpAgent>();

export function nodeAgentFor(origin: string, maxSockets = 32): HttpAgent {
  let a = nodeAgents.get(origin);
  if (!a) {
    const opts = { keepAlive: true, maxSockets, keepAliveMsecs: 30_000 };
    a = origin.startsWith('https:') ? new HttpsAgent(opts) : new HttpAgent(opts);
    nodeAgents.set(origin, a);
  }
  return a;
}

export function releaseNodeAgent(origin: string): void {
  const a = nodeAgents.get(origin);
  if (!a) return;
  // Only idle sockets: a request in flight on another client of this origin finishes first.
  for (const list of Object.values(a.freeSockets)) for (const s of list ?? []) s.destroy();
}
