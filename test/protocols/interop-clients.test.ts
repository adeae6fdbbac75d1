import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { which, reportSkip, type Availability } from '../../fixtures/servers/common.ts';
import type { FixtureStorage } from '../../fixtures/storage-server.ts';
import { resources } from './helpers.ts';

const run = promisify(execFile);
const davix = which('davix-cp');
const gfal = which('gfal-copy');
const davixAvail: Availability = davix ? { ok: true } : { ok: false, reason: 'davix-cp is not installed (Debian: davix)' };
const gfalAvail: Availability = gfal && which('python3')
  ? { ok: true }
  : { ok: false, reason: 'gfal-copy is not installed (Debian: gfal2-util-scripts python3-gfal2-util gfal2-plugin-http)' };
reportSkip('davix-cp doing HTTP-TPC against the Sluice fixture', davixAvail);
reportSkip('gfal-copy doing HTTP-TPC against the Sluice fixture', gfalAvail);

// gfal-copy runs the first python3 on PATH that imports gfal2; a pyenv shim would win otherwise.
const gfalEnv = { ...process.env, GFAL_PYTHONBIN: '/usr/bin/python3' };

describe.skipIf(!davixAvail.ok && !gfalAvail.ok)('interop: third-party TPC clients against the Sluice fixture endpoint', () => {
  const r = resources();
  let A: FixtureStorage;
  let B: FixtureStorage;
  const data = randomBytes(2_000_000);

  beforeAll(async () => {
    A = await r.fixture();
    B = await r.fixture();
    await writeFile(join(A.root, 'src.bin'), data);
    await mkdir(join(B.root, 'in'));
  });
  afterAll(() => r.cleanup());

  it.skipIf(!davixAvail.ok).each(['pull', 'push'])('davix-cp --copy-mode %s', async (mode) => {
    await run(davix!, ['--copy-mode', mode, `${A.url}/src.bin`, `${B.url}/in/davix-${mode}.bin`], { timeout: 60_000 });
    expect((await readFile(join(B.root, `in/davix-${mode}.bin`))).equals(data)).toBe(true);
    expect(A.stats().requests.COPY ?? 0).toBe(mode === 'push' ? 1 : 0);
  });

  it.skipIf(!gfalAvail.ok).each(['pull', 'push'])('gfal-copy --copy-mode %s -K ADLER32', async (mode) => {
    const { stdout, stderr } = await run(gfal!, ['-f', '--copy-mode', mode, '-K', 'ADLER32', `${A.url}/src.bin`, `${B.url}/in/gfal-${mode}.bin`], {
      timeout: 90_000,
      env: gfalEnv,
    });
    expect((await readFile(join(B.root, `in/gfal-${mode}.bin`))).equals(data)).toBe(true);
    // gfal says which mode it actually used; a silent fallback to streaming would not test TPC.
    expect(`${stdout}${stderr}`).not.toMatch(/streamed/i);
  });

  it.skipIf(!davixAvail.ok)('davix-cp reports a failed pull (source missing) as an error', async () => {
    await expect(run(davix!, ['--copy-mode', 'pull', `${A.url}/missing.bin`, `${B.url}/in/never.bin`], { timeout: 60_000 })).rejects.toThrow();
  });
});
