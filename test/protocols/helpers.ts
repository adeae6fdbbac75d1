import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStorageClient, type StorageClient, type TpcCapability } from '../../protocols/index.ts';
import { TransferError } from '../../protocols/errors.ts';
import { startFixtureStorage, type FixtureStorage, type FixtureStorageOptions } from '../../fixtures/storage-server.ts';

/** Temp dirs and servers made by a test file, torn down in afterAll via cleanup(). */
export function resources() {
  const dirs: string[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  return {
    async tmp(prefix = 'sluice-proto-'): Promise<string> {
      const d = await mkdtemp(join(tmpdir(), prefix));
      // Servers running as other users (xrootd, www-data) must be able to reach it.
      await chmod(d, 0o755);
      dirs.push(d);
      return d;
    },
    async fixture(opts: Partial<FixtureStorageOptions> = {}): Promise<FixtureStorage> {
      const root = opts.root ?? (await this.tmp('sluice-fixture-'));
      const s = await startFixtureStorage({ markerIntervalMs: 100, ...opts, root });
      closers.push(() => s.close());
      return s;
    },
    client(url: string, tpc: TpcCapability = 'both', settings: Record<string, unknown> = {}, prefix = '/rse'): StorageClient {
      const c = createStorageClient({ kind: 'http', url, prefix, tpc, settings });
      closers.push(() => c.close());
      return c;
    },
    onCleanup(fn: () => Promise<unknown>) {
      closers.push(fn);
    },
    async cleanup() {
      for (const c of closers.reverse()) await c().catch(() => {});
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
}

/** The TransferError a promise rejects with (fails the test if it resolves or throws something else). */
export async function transferError(p: Promise<unknown>): Promise<TransferError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TransferError) return e;
    throw new Error(`expected a TransferError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a TransferError, but the call succeeded');
}
