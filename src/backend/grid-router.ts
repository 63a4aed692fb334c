/**
 * Owns one GridClient per configured cluster, picks the cluster for connect, and turns
 * grid-side failures into catalogue errors so that services stay thin.
 */
import { GatewayError, type ErrorCodeName } from '../errors/catalogue';
import { GridCallError, GridClient } from '../backend/client';
import { ErrorCode, type Operation, type ReplyBodies, type RequestBodies } from '../backend/protocol';
import type { ClusterConfig } from '../config';
import { log } from '../log';
import { hostOf, isLoopbackHost, TlsMaterial, type TlsReload } from './grid-tls';

/** How one cluster's link travels, for the banner, /readyz and the logs. */
export interface GridLink {
  cluster: string;
  transport: 'tls' | 'plain-loopback' | 'plain-network';
  /** One line for an operator. */
  describe: string;
}

const GRID_TO_GATEWAY: Partial<Record<ErrorCode, ErrorCodeName>> = {
  [ErrorCode.UNKNOWN_CONNECTION]: 'SSP_UNKNOWN_CONNECTION',
  [ErrorCode.UNKNOWN_SESSION]: 'SSP_UNKNOWN_SESSION',
  [ErrorCode.INVALID_ARGUMENT]: 'SSP_INVALID_ARGUMENT',
  [ErrorCode.UNKNOWN_APPLICATION]: 'SSP_UNKNOWN_APPLICATION',
  [ErrorCode.AUTHENTICATION_FAILED]: 'SSP_GRID_AUTHENTICATION',
  [ErrorCode.SESSION_NOT_DETACHED]: 'SSP_SESSION_NOT_DETACHED',
  [ErrorCode.BUSY]: 'SSP_GRID_BUSY',
};

export function toGatewayError(e: unknown, cluster: string): GatewayError {
  if (e instanceof GatewayError) return e;
  if (e instanceof GridCallError) {
    if (e.kind === 'timeout') return new GatewayError('SSP_GRID_TIMEOUT', e.message, { cause: e });
    if (e.kind === 'unavailable') return new GatewayError('SSP_GRID_UNAVAILABLE', e.message, { cause: e });
    const code = GRID_TO_GATEWAY[e.gridCode];
    if (code) return new GatewayError(code, e.message, { cause: e });
    return new GatewayError(
      e.retryable ? 'SSP_GRID_UNAVAILABLE' : 'SSP_INTERNAL',
      `grid ${cluster} failed: ${e.message}`,
      { cause: e },
    );
  }
  return new GatewayError('SSP_INTERNAL', 'unexpected failure talking to the grid', { cause: e });
}

/** Where a call accounts the time it waited for the grid (the request context). */
export interface GridTiming {
  gridMs: number;
}

export class GridRouter {
  private readonly clients = new Map<string, GridClient>();
  private readonly byUrl = new Map<string, string>();
  private readonly tlsByCluster = new Map<string, TlsMaterial>();
  private readonly clusterConfigs: ClusterConfig[] = [];

  constructor(
    clusters: ClusterConfig[],
    readonly defaultCluster: string,
  ) {
    // All TLS material is read first: a bad file fails the start before any socket is opened.
    for (const c of clusters) {
      if (!c.tls) continue;
      this.tlsByCluster.set(
        c.name,
        new TlsMaterial({
          certFile: c.tls.certFile,
          keyFile: c.tls.keyFile,
          caFiles: c.tls.caFiles,
          minVersion: c.tls.minVersion,
        }),
      );
    }
    for (const c of clusters) {
      const material = this.tlsByCluster.get(c.name);
      const client = new GridClient({
        name: c.name,
        addresses: c.addresses,
        sharedSecret: c.sharedSecret,
        poolSize: c.poolSize,
        connectTimeoutMs: c.connectTimeoutMs,
        requestTimeoutMs: c.requestTimeoutMs,
        tls:
          material && c.tls
            ? {
                material,
                serverName: c.tls.serverName,
                pinnedFingerprints256: c.tls.pinnedFingerprints256,
              }
            : undefined,
      });
      this.watchLink(client, c.name);
      this.clients.set(c.name, client);
      this.clusterConfigs.push(c);
      this.byUrl.set(c.name, c.name);
      for (const u of c.urls) this.byUrl.set(u, c.name);
    }
  }

  /** Logs why a cluster cannot be reached, once per distinct reason until a socket comes up. */
  private watchLink(client: GridClient, cluster: string): void {
    let last = '';
    const warn = (reason: string): void => {
      if (reason === last) return;
      last = reason;
      log.warn('grid link refused', { cluster, reason });
    };
    client.on('refused', (m: string) => warn(`grid refused the handshake: ${m}`));
    client.on('linkError', warn);
    client.on('up', () => {
      last = '';
    });
  }

  /** How each cluster's link travels, with the TLS material in effect now. */
  links(): GridLink[] {
    return this.clusterConfigs.map((c) => describeLink(c, this.tlsByCluster.get(c.name) ?? null));
  }

  /** Files behind every TLS link (for watching). */
  tlsFiles(): string[] {
    return [...new Set([...this.tlsByCluster.values()].flatMap((m) => m.paths))];
  }

  /**
   * Reads every cluster's TLS certificate, key and CAs again. New sockets use the new material;
   * open sockets, and the grid sessions on them, are not touched.
   */
  reloadTls(): { cluster: string; result: TlsReload }[] {
    return [...this.tlsByCluster].map(([cluster, m]) => {
      const result = m.reload();
      if (result.ok) log.info('grid TLS material reloaded', { cluster, notAfter: result.notAfter });
      else
        log.error('grid TLS reload failed; the material in effect stays', { cluster, error: result.error });
      return { cluster, result };
    });
  }

  /** The cluster a connect call goes to: its clusterURL if given, else the default. */
  clusterFor(clusterURL: string | undefined): string {
    if (clusterURL === undefined || clusterURL === '') return this.defaultCluster;
    const name = this.byUrl.get(clusterURL);
    if (!name) {
      throw new GatewayError(
        'SSP_UNKNOWN_CLUSTER',
        `unknown clusterURL '${clusterURL}'; known: ${[...this.byUrl.keys()].join(', ')}`,
      );
    }
    return name;
  }

  /** The cluster a URL (or name) stands for, without throwing: for checking control files. */
  resolve(url: string): string | undefined {
    return this.byUrl.get(url);
  }

  client(cluster: string): GridClient {
    const c = this.clients.get(cluster);
    if (!c)
      throw new GatewayError('SSP_GRID_UNAVAILABLE', `cluster ${cluster} is not configured on this proxy`);
    return c;
  }

  /**
   * Calls the grid, accounting the wait in ctx.gridMs and mapping failures to faults. A call
   * marked retrySafe (its repeat has no further effect) is sent once more when its grid
   * connection dropped under it, so that a lost socket costs the client nothing.
   */
  async call<K extends Operation>(
    ctx: GridTiming,
    cluster: string,
    op: K,
    body: RequestBodies[K],
    timeoutMs?: number,
    opts: { retrySafe?: boolean } = {},
  ): Promise<ReplyBodies[K]> {
    const client = this.client(cluster);
    const t0 = performance.now();
    try {
      try {
        return await client.call(op, body, timeoutMs);
      } catch (e) {
        if (!opts.retrySafe || !(e instanceof GridCallError) || e.kind !== 'unavailable') throw e;
        return await client.call(op, body, timeoutMs);
      }
    } catch (e) {
      throw toGatewayError(e, cluster);
    } finally {
      ctx.gridMs += performance.now() - t0;
    }
  }

  /** Clusters with at least one live grid connection. */
  status(): { cluster: string; connected: number }[] {
    return [...this.clients].map(([cluster, c]) => ({ cluster, connected: c.connectedCount }));
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}

function describeLink(c: ClusterConfig, material: TlsMaterial | null): GridLink {
  if (material && c.tls) {
    const pins = c.tls.pinnedFingerprints256.length;
    return {
      cluster: c.name,
      transport: 'tls',
      describe: `mutual TLS (${c.tls.minVersion} or later${pins ? `, ${pins} pinned certificate(s)` : ''}), client certificate ${material.summary.subject} valid until ${material.summary.notAfter}`,
    };
  }
  if (c.addresses.every((a) => isLoopbackHost(hostOf(a)))) {
    return { cluster: c.name, transport: 'plain-loopback', describe: 'plain TCP on loopback' };
  }
  return {
    cluster: c.name,
    transport: 'plain-network',
    describe:
      'PLAIN TCP across the network (plaintext: true in config): task payloads and grid passwords travel in clear',
  };
}
