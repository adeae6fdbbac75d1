import { describe, expect, it } from 'vitest';
import { classifyCopyStatus, classifyTpcFailure } from '../../protocols/http/client.ts';
import { parseDigestHeader, parseMultistatus } from '../../protocols/http/dav.ts';
import { PerfMarkerParser, type PerfMarker } from '../../protocols/http/perf-markers.ts';

const marker = (bytes: number, stripe = 0, extra = '') =>
  `Perf Marker\nTimestamp: 1795303258\nStripe Index: ${stripe}\nStripe Bytes Transferred: ${bytes}\nTotal Stripe Count: 2\n${extra}End\n`;

function parse(body: string, chunk = body.length) {
  const seen: PerfMarker[] = [];
  const p = new PerfMarkerParser((m) => seen.push(m));
  for (let i = 0; i < body.length; i += chunk) p.feed(body.slice(i, i + chunk));
  return { out: p.end(), seen };
}

describe('perf-marker parser', () => {
  it('reads XRootD markers and a final success line without newline, in any chunking', () => {
    const body = marker(0, 0, 'RemoteConnections: tcp:127.0.0.1:18080\n') + marker(8_333_330) + 'success: Created';
    for (const chunk of [1, 3, 7, 64, body.length]) {
      const { out, seen } = parse(body, chunk);
      expect(out).toEqual({ outcome: 'success', message: 'Created', bytes: 8_333_330, markers: 2 });
      expect(seen.map((m) => m.totalBytes)).toEqual([0, 8_333_330]);
      expect(seen[0].remoteConnections).toBe('tcp:127.0.0.1:18080');
    }
  });

  it('sums the latest count of every stripe', () => {
    const { out } = parse(marker(100, 0) + marker(50, 1) + marker(300, 0) + 'success: Created\n');
    expect(out.bytes).toBe(350);
  });

  it('lets a failure line win even though the status was 201', () => {
    const msg = 'Remote side failed with status code 404; error message: "Unable to open /nope; no such file or directory "';
    const { out } = parse(`${marker(0)}failure: ${msg}`);
    expect(out).toMatchObject({ outcome: 'failure', message: msg });
  });

  it('reports a stream cut inside a marker or before the final line as incomplete', () => {
    expect(parse(marker(10) + 'Perf Marker\nStripe Index: 0\nStripe By').out).toMatchObject({ outcome: 'incomplete', bytes: 10 });
    expect(parse(marker(10)).out.outcome).toBe('incomplete');
    expect(parse('').out.outcome).toBe('incomplete');
    // A half-written outcome word is not an outcome.
    expect(parse(`${marker(1)}succ`).out.outcome).toBe('incomplete');
  });

  it('handles CRLF line ends', () => {
    expect(parse(marker(5).replace(/\n/g, '\r\n') + 'success: Created\r\n').out).toMatchObject({ outcome: 'success', bytes: 5 });
  });
});

describe('TPC outcome classification', () => {
  it('maps remote statuses to the passive side with the right retry flag', () => {
    const nf = classifyTpcFailure('Remote side failed with status code 404; error message: "x"', 'pull', 'w');
    expect([nf.code, nf.phase, nf.retryable]).toEqual(['NotFound', 'source', false]);
    const s5 = classifyTpcFailure('Remote side failed with status code 503', 'pull', 'w');
    expect([s5.code, s5.phase, s5.retryable]).toEqual(['ServerError', 'source', true]);
    const pm = classifyTpcFailure('Remote side failed with status code 409', 'push', 'w');
    expect([pm.code, pm.phase]).toEqual(['ParentMissing', 'destination']);
    const un = classifyTpcFailure("Couldn't connect to server", 'push', 'w');
    expect([un.code, un.phase, un.retryable]).toEqual(['Unreachable', 'destination', true]);
    const other = classifyTpcFailure('something odd happened', 'pull', 'w');
    expect([other.code, other.phase, other.retryable]).toEqual(['TpcFailed', 'transfer', true]);
  });

  it('maps refusals before the transfer', () => {
    expect(classifyCopyStatus(400, 'Unable to create /x/y; no such file or directory', 'pull', 'w').code).toBe('ParentMissing');
    expect(classifyCopyStatus(400, 'COPY requested an unsupported credential type', 'pull', 'w').code).toBe('TpcUnsupported');
    expect(classifyCopyStatus(405, '', 'pull', 'w').code).toBe('TpcUnsupported');
    expect(classifyCopyStatus(412, '', 'pull', 'w').code).toBe('Exists');
    const nf = classifyCopyStatus(400, 'Unable to open /nope; no such file or directory', 'push', 'w');
    expect([nf.code, nf.phase, nf.retryable]).toEqual(['NotFound', 'source', false]);
    const s = classifyCopyStatus(503, 'busy', 'pull', 'w');
    expect([s.code, s.phase, s.retryable]).toEqual(['ServerError', 'destination', true]);
  });
});

describe('WebDAV parsing', () => {
  it('parses Apache-style multistatus with other prefixes and 404 propstats', () => {
    const xml = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response xmlns:lp1="DAV:"><D:href>/dir/</D:href><D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype>
<lp1:getlastmodified>Fri, 21 Nov 2025 10:00:00 GMT</lp1:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><D:getcontentlength/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response xmlns:lp1="DAV:"><D:href>/dir/a%20b.bin</D:href><D:propstat><D:prop><lp1:resourcetype/><lp1:getcontentlength>1234</lp1:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>`;
    const entries = parseMultistatus(xml);
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({ href: '/dir/', isDirectory: true });
    expect(entries[0].size).toBeUndefined();
    expect(entries[1]).toMatchObject({ href: '/dir/a%20b.bin', isDirectory: false, size: 1234 });
  });

  it('parses Digest headers (hex adler32, base64 md5)', () => {
    expect(parseDigestHeader('adler32=83fcd34f')).toEqual({ adler32: '83fcd34f' });
    expect(parseDigestHeader('ADLER32=FCD34F, md5=kAFQmDzST7DWlj99KOF/cg==')).toEqual({
      adler32: '00fcd34f',
      md5: '900150983cd24fb0d6963f7d28e17f72',
    });
    expect(parseDigestHeader('sha-256=abc')).toEqual({});
    expect(parseDigestHeader(undefined)).toEqual({});
  });
});
