import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const TYPES_URL = pathToFileURL(join(import.meta.dirname, '../../policies/types.ts')).href;

/** Policy packages written to a temporary directory; each is named by its absolute path. */
export async function packageDir() {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-policy-'));
  return {
    dir,
    /** A TypeScript package: `body` is the object literal's fields after apiVersion and name. */
    async ts(file: string, body: string, opts: { apiVersion?: number; name?: string; prelude?: string } = {}): Promise<string> {
      const path = join(dir, file);
      await writeFile(
        path,
        `import { definePolicy, type PolicyDid } from '${TYPES_URL}';\n${opts.prelude ?? ''}\n` +
          `export default definePolicy({ apiVersion: ${opts.apiVersion ?? 1}, name: '${opts.name ?? file.replace(/\.\w+$/, '')}',\n${body}\n});\n`,
      );
      return path;
    },
    async raw(file: string, text: string): Promise<string> {
      const path = join(dir, file);
      await writeFile(path, text);
      return path;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
