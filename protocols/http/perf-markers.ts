/**
 * Parser for the body of an HTTP-TPC COPY reply (WLCG HTTP-TPC, as XRootD and dCache send it):
 *
 *   Perf Marker
 *   Timestamp: 1795303258
 *   Stripe Index: 0
 *   Stripe Bytes Transferred: 8333330
 *   Total Stripe Count: 1
 *   End
 *   ...
 *   success: Created          (or "failure: <why>", often with no trailing newline)
 *
 * The HTTP status is 201/202 as soon as the transfer starts, so the outcome is only in the last
 * line. A body that ends without one (connection cut, server crash) is "incomplete": the copy may
 * or may not have finished, so it must be treated as failed and the destination cleaned up.
 */

export interface PerfMarker {
  timestamp?: number;
  stripeIndex: number;
  stripeBytes: number;
  totalStripes?: number;
  remoteConnections?: string;
  /** Sum of the latest byte count of every stripe seen so far. */
  totalBytes: number;
}

export type TpcOutcome =
  | { outcome: 'success'; message: string; bytes: number; markers: number }
  | { outcome: 'failure'; message: string; bytes: number; markers: number }
  | { outcome: 'incomplete'; message: string; bytes: number; markers: number };

export class PerfMarkerParser {
  private buffer = '';
  private current: Partial<PerfMarker> | undefined;
  private readonly stripes = new Map<number, number>();
  private markers = 0;
  private final: { outcome: 'success' | 'failure'; message: string } | undefined;

  constructor(private readonly onMarker?: (m: PerfMarker) => void) {}

  get bytes(): number {
    let sum = 0;
    for (const v of this.stripes.values()) sum += v;
    return sum;
  }

  feed(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
    // Guards against a server streaming one endless line at us.
    if (this.buffer.length > 64 * 1024) this.buffer = this.buffer.slice(-64 * 1024);
  }

  end(): TpcOutcome {
    if (this.buffer.length) {
      const rest = this.buffer;
      this.buffer = '';
      this.line(rest);
    }
    const base = { bytes: this.bytes, markers: this.markers };
    if (this.final) return { ...this.final, ...base };
    return {
      outcome: 'incomplete',
      message:
        this.current !== undefined
          ? 'the COPY reply ended inside a perf marker, without a success/failure line'
          : 'the COPY reply ended without a success/failure line',
      ...base,
    };
  }

  private line(raw: string): void {
    const line = raw.replace(/\r$/, '').trim();
    if (!line) return;
    if (line === 'Perf Marker') {
      this.current = {};
      return;
    }
    if (line === 'End') {
      if (this.current) this.emit(this.current);
      this.current = undefined;
      return;
    }
    const m = /^([A-Za-z][A-Za-z ]*?):\s*(.*)$/.exec(line);
    if (!m) return;
    const key = m[1].toLowerCase();
    const value = m[2];
    if (this.current) {
      switch (key) {
        case 'timestamp':
          this.current.timestamp = Number(value);
          return;
        case 'stripe index':
          this.current.stripeIndex = Number(value);
          return;
        case 'stripe bytes transferred':
          this.current.stripeBytes = Number(value);
          return;
        case 'total stripe count':
          this.current.totalStripes = Number(value);
          return;
        case 'remoteconnections':
          this.current.remoteConnections = value;
          return;
      }
    }
    // Outcome lines. Anything after the first one is ignored: the first is what the server decided.
    if (this.final) return;
    if (key === 'success') this.final = { outcome: 'success', message: value };
    else if (key === 'failure' || key === 'aborted') this.final = { outcome: 'failure', message: value || key };
  }

  private emit(p: Partial<PerfMarker>): void {
    const stripeIndex = Number.isFinite(p.stripeIndex) ? p.stripeIndex! : 0;
    const stripeBytes = Number.isFinite(p.stripeBytes) ? p.stripeBytes! : 0;
    this.stripes.set(stripeIndex, stripeBytes);
    this.markers++;
    this.onMarker?.({
      timestamp: p.timestamp,
      stripeIndex,
      stripeBytes,
      totalStripes: p.totalStripes,
      remoteConnections: p.remoteConnections,
      totalBytes: this.bytes,
    });
  }
}
