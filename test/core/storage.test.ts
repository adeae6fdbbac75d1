import { describe, expect, it } from 'vitest';
import { storageConfigFor } from '../../core/storage.ts';

describe('storageConfigFor', () => {
  it('maps API settings to protocol settings, RSE over endpoint, and drops junk', () => {
    const cfg = storageConfigFor({
      prefix: '/atlas/',
      url: 'http://127.0.0.1:9000',
      kind: 's3',
      tpc: 'none',
      protocol_settings: { bucket: 'atlas', region: 'eu-1', access_key_id: 'AK', secret_access_key: 'SK', force_path_style: true, checksum_mode: 'bogus', token: 'rse-token', timeout_ms: '12' },
      settings: { token: 'endpoint-token', timeout_ms: 5000, connections: 32 },
    });
    expect(cfg).toEqual({
      kind: 's3',
      url: 'http://127.0.0.1:9000',
      prefix: '/atlas/',
      tpc: 'none',
      settings: { bucket: 'atlas', region: 'eu-1', accessKeyId: 'AK', secretAccessKey: 'SK', forcePathStyle: true, token: 'rse-token', timeoutMs: 5000, connections: 32 },
    });
    expect(storageConfigFor({ prefix: '/', url: 'http://h:1', kind: 'http', tpc: 'both', protocol_settings: null }).settings).toEqual({});
  });
});
