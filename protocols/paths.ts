import { TransferError } from './errors.ts';

/**
 * RSE-relative paths as segments. `..` is refused rather than resolved: a path that climbs out of
 * an RSE's prefix would read or delete another VO's files on a shared endpoint.
 */
export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new TransferError('BadRequest', 'transfer', `path '${path}' contains '..'; paths are relative to the RSE root`, {
      retryable: false,
    });
  }
  return parts;
}

export function joinUrlPath(parts: string[]): string {
  return `/${parts.map((p) => encodeURIComponent(p)).join('/')}`;
}

/** `abs` (a decoded URL path) relative to `prefix`, or undefined when it lies outside it. */
export function relativePath(abs: string, prefix: string[]): string | undefined {
  const parts = abs.split('/').filter((p) => p !== '');
  for (let i = 0; i < prefix.length; i++) if (parts[i] !== prefix[i]) return undefined;
  return parts.slice(prefix.length).join('/');
}
