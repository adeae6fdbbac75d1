import { TransferError } from './errors.ts';
import { HttpStorageClient } from './http/client.ts';
import { NullStorageClient } from './null.ts';
import { S3StorageClient } from './s3/client.ts';
import type { StorageClient, StorageConfig } from './types.ts';

export * from './types.ts';
export { TransferError, TransferCodes, isTransferError, type TransferCode, type TransferPhase } from './errors.ts';
export { copyFile, plannedModes, type CopyMode, type CopyRequest, type CopyResult, type CopyAttempt } from './copy.ts';
export { HttpStorageClient } from './http/client.ts';
export { S3StorageClient } from './s3/client.ts';
export { NullStorageClient } from './null.ts';

const HTTP_SCHEMES: Record<string, string> = { 'http:': 'http:', 'https:': 'https:', 'dav:': 'http:', 'davs:': 'https:' };

/**
 * A client for one RSE (endpoint URL + prefix). Cheap to create: connections are pooled per
 * endpoint origin behind it, so any number of RSEs on one door share keep-alive sockets.
 * Call close() when done; the pool closes with its last client.
 */
export function createStorageClient(config: StorageConfig): StorageClient {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new TransferError('InvalidConfig', 'transfer', `storage URL '${config.url}' is not a URL (want scheme://host:port)`);
  }
  switch (config.kind) {
    case 'http': {
      const scheme = HTTP_SCHEMES[url.protocol];
      if (!scheme) {
        throw new TransferError('UnsupportedScheme', 'transfer', `'${url.protocol}' is not an HTTP/WebDAV scheme (use http, https, dav or davs)`);
      }
      // Not `url.protocol = ...`: WHATWG URLs refuse to switch dav: (non-special) to http: (special).
      return new HttpStorageClient({ ...config, url: `${scheme}//${url.host}${url.pathname.replace(/\/+$/, '')}` });
    }
    case 's3':
      if (!['http:', 'https:', 's3:'].includes(url.protocol)) {
        throw new TransferError('UnsupportedScheme', 'transfer', `'${url.protocol}' is not an S3 endpoint scheme (use http or https)`);
      }
      return new S3StorageClient(config);
    case 'null':
      return new NullStorageClient(config);
    default:
      throw new TransferError('UnsupportedScheme', 'transfer', `unknown storage kind '${(config as { kind: string }).kind}' (http, s3, null)`);
  }
}
