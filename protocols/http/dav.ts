/**
 * The small amount of WebDAV/HTTP text parsing the client needs. Multistatus replies differ in
 * namespace prefixes between servers (Apache "D:"/"lp1:", XRootD "D:"/"lp1:", dCache "d:", others
 * "ns0:"), so matching is prefix-agnostic rather than tied to one server's output.
 */

export interface DavEntry {
  href: string;
  size?: number;
  isDirectory: boolean;
  mtime?: Date;
  /** Checksums some servers put in PROPFIND (dCache, EOS): adler32 hex if present. */
  adler32?: string;
}

const tag = (name: string) => new RegExp(`<(?:[A-Za-z0-9_-]+:)?${name}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[A-Za-z0-9_-]+:)?${name}>`, 'i');
const RESPONSE = /<(?:[A-Za-z0-9_-]+:)?response(?:\s[^>]*)?>([\s\S]*?)<\/(?:[A-Za-z0-9_-]+:)?response>/gi;
const HREF = tag('href');
const LENGTH = tag('getcontentlength');
const MODIFIED = tag('getlastmodified');
const RESOURCETYPE = /<(?:[A-Za-z0-9_-]+:)?resourcetype(?:\s[^>]*)?(?:\/>|>([\s\S]*?)<\/(?:[A-Za-z0-9_-]+:)?resourcetype>)/i;
const COLLECTION = /<(?:[A-Za-z0-9_-]+:)?collection\b/i;
const STATUS_OK = /<(?:[A-Za-z0-9_-]+:)?propstat>[\s\S]*?HTTP\/1\.[01] 200/i;

export function parseMultistatus(xml: string): DavEntry[] {
  const out: DavEntry[] = [];
  for (const m of xml.matchAll(RESPONSE)) {
    const body = m[1];
    const href = HREF.exec(body)?.[1]?.trim();
    if (!href) continue;
    // Only the 200 propstat carries values; a 404 propstat lists properties the server lacks.
    const ok = STATUS_OK.test(body) || !/propstat/i.test(body) ? body : '';
    const rt = RESOURCETYPE.exec(ok);
    const isDirectory = !!rt?.[1] && COLLECTION.test(rt[1]);
    const len = LENGTH.exec(ok)?.[1]?.trim();
    const mod = MODIFIED.exec(ok)?.[1]?.trim();
    const mtime = mod ? new Date(mod) : undefined;
    out.push({
      href: decodeEntities(href),
      isDirectory,
      ...(len && /^\d+$/.test(len) ? { size: Number(len) } : {}),
      ...(mtime && !Number.isNaN(mtime.getTime()) ? { mtime } : {}),
    });
  }
  return out;
}

function decodeEntities(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/**
 * RFC 3230 `Digest:` header, e.g. `adler32=83fcd34f, md5=HUXZLQLMuI/KZ5KDcJPcOA==`.
 * Returns adler32 as 8 lower-case hex digits and md5 as lower-case hex.
 */
export function parseDigestHeader(value: string | string[] | undefined): { adler32?: string; md5?: string } {
  if (!value) return {};
  const text = Array.isArray(value) ? value.join(',') : value;
  const out: { adler32?: string; md5?: string } = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const alg = part.slice(0, eq).trim().toLowerCase();
    const val = part.slice(eq + 1).trim();
    if (alg === 'adler32' && /^[0-9a-fA-F]{1,8}$/.test(val)) out.adler32 = val.toLowerCase().padStart(8, '0');
    if (alg === 'md5') {
      const hex = /^[0-9a-fA-F]{32}$/.test(val) ? val.toLowerCase() : Buffer.from(val, 'base64').toString('hex');
      if (hex.length === 32) out.md5 = hex;
    }
  }
  return out;
}
