import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChecksumStream,
  adler32Combine,
  adler32Hex,
  adler32Update,
  createAdler32,
  createMd5,
  md5Hex,
  normalizeAdler32,
} from '../../core/checksum.ts';

/** Textbook adler32, one modulo per byte: slow and obviously right. */
function reference(buf: Uint8Array): string {
  let a = 1;
  let b = 0;
  for (const x of buf) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b * 65536 + a) >>> 0).toString(16).padStart(8, '0');
}

describe('adler32', () => {
  it('matches published vectors', () => {
    expect(adler32Hex('')).toBe('00000001');
    expect(adler32Hex('a')).toBe('00620062');
    expect(adler32Hex('abc')).toBe('024d0127');
    expect(adler32Hex('Wikipedia')).toBe('11e60398');
    expect(adler32Hex('message digest')).toBe('29750586');
    expect(adler32Hex('abcdefghijklmnopqrstuvwxyz')).toBe('90860b20');
  });

  it('handles sums that need the deferred modulo (long runs of 0xff)', () => {
    const buf = Buffer.alloc(1_000_003, 0xff);
    expect(adler32Hex(buf)).toBe(reference(buf));
  });

  it('equals the reference on random data split into random chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 20_000 }), fc.array(fc.nat(9000), { maxLength: 8 }), (data, cuts) => {
        const a = createAdler32();
        let off = 0;
        for (const c of [...cuts].sort((x, y) => x - y)) {
          const end = Math.min(c, data.length);
          if (end < off) continue;
          a.update(data.subarray(off, end));
          off = end;
        }
        a.update(data.subarray(off));
        expect(a.hex()).toBe(reference(data));
        expect(a.length).toBe(data.length);
      }),
      { numRuns: 150 },
    );
  });

  it('combines independently computed parts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 10_000 }), fc.uint8Array({ maxLength: 10_000 }), (x, y) => {
        const joined = Buffer.concat([x, y]);
        const combined = adler32Combine(adler32Update(1, x), adler32Update(1, y), y.length);
        expect(combined.toString(16).padStart(8, '0')).toBe(reference(joined));
      }),
      { numRuns: 100 },
    );
  });

  const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
  it.skipIf(!python)('agrees with zlib.adler32 (via python3) on 4 MiB of random data', () => {
    const data = randomBytes(4 * 1024 * 1024 + 17);
    const out = execFileSync(python!, ['-c', 'import sys,zlib; print("%08x" % zlib.adler32(sys.stdin.buffer.read()))'], { input: data });
    expect(adler32Hex(data)).toBe(out.toString().trim());
  });

  it('normalises checksum spellings and rejects non-checksums', () => {
    expect(normalizeAdler32('0x1A2b')).toBe('00001a2b');
    expect(normalizeAdler32(' 83FCD34F ')).toBe('83fcd34f');
    expect(() => normalizeAdler32('xyz')).toThrow(TypeError);
    expect(() => normalizeAdler32('123456789')).toThrow(TypeError);
  });
});

describe('md5 and the checksum stream', () => {
  it('md5 matches RFC 1321 vectors incrementally', () => {
    expect(md5Hex('')).toBe('d41d8cd98f00b204e9800998ecf8427e');
    expect(createMd5().update(Buffer.from('ab')).update(Buffer.from('c')).hex()).toBe('900150983cd24fb0d6963f7d28e17f72');
  });

  it('passes bytes through unchanged while checksumming them', async () => {
    const data = randomBytes(300_000);
    const tap = new ChecksumStream({ md5: true });
    const seen: Buffer[] = [];
    await pipeline(
      Readable.from([data.subarray(0, 1), data.subarray(1, 70_001), data.subarray(70_001)]),
      tap,
      new Writable({
        write(c, _e, cb) {
          seen.push(c);
          cb();
        },
      }),
    );
    expect(Buffer.concat(seen).equals(data)).toBe(true);
    expect(tap.result()).toEqual({ size: data.length, adler32: reference(data), md5: md5Hex(data) });
  });
});
