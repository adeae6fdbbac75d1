import type { StorageConfig, StorageSettings } from '../protocols/types.ts';

/** What the protocol layer needs to know about an RSE: its endpoint, prefix and settings. */
export interface RseStorageRow {
  prefix: string;
  /** The RSE's protocol settings as the API stores them (snake_case; may hold secrets). */
  protocol_settings: Record<string, unknown> | null;
  url: string;
  kind: 'http' | 's3';
  tpc: StorageConfig['tpc'];
  /** The endpoint's own settings (token, connections, timeouts) under the RSE's. */
  settings?: Record<string, unknown> | null;
}

/**
 * The one mapping from an RSE (and its endpoint) to a protocol-layer StorageConfig, used by every
 * caller that talks to storage: the conveyor, the reaper, the probes and the upload/download
 * plans. RSE settings win over endpoint settings.
 */
export function storageConfigFor(row: RseStorageRow): StorageConfig {
  const p = row.protocol_settings ?? {};
  const e = row.settings ?? {};
  const str = (...vals: unknown[]) => vals.find((v): v is string => typeof v === 'string');
  const num = (...vals: unknown[]) => vals.find((v): v is number => typeof v === 'number');
  const bool = (...vals: unknown[]) => vals.find((v): v is boolean => typeof v === 'boolean');
  const mode = str(p.checksum_mode);
  const settings: StorageSettings = Object.fromEntries(
    Object.entries({
      bucket: str(p.bucket),
      region: str(p.region),
      accessKeyId: str(p.access_key_id),
      secretAccessKey: str(p.secret_access_key),
      forcePathStyle: bool(p.force_path_style),
      checksumMode: mode === 'when_required' || mode === 'when_supported' ? mode : undefined,
      token: str(p.token, e.token),
      timeoutMs: num(p.timeout_ms, e.timeout_ms),
      connections: num(e.connections),
    }).filter(([, v]) => v !== undefined),
  );
  return { kind: row.kind, url: row.url, prefix: row.prefix, tpc: row.tpc, settings };
}
