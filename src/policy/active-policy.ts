/**
 * A loaded control file ready for requests: SLAs indexed by consumer, limits turned into store
 * keys, payload schemas compiled. Each request holds the snapshot it started with, so a reload
 * never changes the rules under a request in flight; compiled schemas live in wasm memory and
 * are freed only when the last request using a retired snapshot ends.
 */
import type { RateLimit } from '../store/store';
import type { ControlFile, LimitPolicy, PayloadRules, PolicyProblem, ServiceVersion, Sla } from './model';
import { PolicyLoadError } from './model';
import { PayloadSchema } from './payload-schema';

/** A limit as the limiter stage applies it: the store's view plus what to do when reached. */
export interface BoundLimit extends RateLimit {
  policy: LimitPolicy;
}

export interface CompiledVersion {
  version: ServiceVersion;
  /** consumerId → SLAs (one per contextId, '' when the SLA has none). */
  slas: Map<string, Map<string, Sla>>;
  /** Each SLA's limit, bound to its counter key; absent for an SLA without a Policy. */
  slaLimits: Map<Sla, BoundLimit>;
  sld: BoundLimit | null;
  /** Task inputs must pass every schema, in order (Request InputSchemaURL, then OutputSchemaURL). */
  requestSchemas: PayloadSchema[];
  /** Task outputs likewise (Response InputSchemaURL, then OutputSchemaURL). */
  responseSchemas: PayloadSchema[];
}

export function bindLimit(policy: LimitPolicy, key: string): BoundLimit {
  return {
    key,
    threshold: policy.threshold,
    intervalMs: policy.intervalMs,
    intervalType: policy.intervalType,
    enforce: policy.action !== 'notify',
    policy,
  };
}

/** The store key of an SLA counter: per service version, consumer, context and policy. */
export function slaKey(uri: string, sla: Sla, policy: LimitPolicy): string {
  return JSON.stringify(['sla', uri, sla.consumerId, sla.contextId ?? '', ...limitShape(policy)]);
}

/** The effective parameters are part of a key, so two definitions never share one counter. */
function limitShape(p: LimitPolicy): (string | number)[] {
  return [p.name, p.threshold, p.intervalMs, p.intervalType];
}

/**
 * The store key of an SLD counter. Versions that share an endpoint and name the same SLD
 * policy share one count, as the pattern intends for a backend reached by several versions.
 */
export function sldKey(endpointUrls: string[], policy: LimitPolicy): string {
  return JSON.stringify(['sld', [...endpointUrls].sort(), ...limitShape(policy)]);
}

export class ActivePolicy {
  private inFlight = 0;
  private retired = false;
  private disposed = false;

  private constructor(
    readonly control: ControlFile,
    private readonly versions: Map<string, CompiledVersion>,
    private readonly schemas: PayloadSchema[],
  ) {}

  /** Compiles every payload schema once (shared between versions naming the same file). */
  static async compile(control: ControlFile): Promise<ActivePolicy> {
    const byFile = new Map<string, PayloadSchema>();
    const problems: PolicyProblem[] = [];
    const schemaFor = async (file: string, line: number, element: string): Promise<PayloadSchema | null> => {
      const known = byFile.get(file);
      if (known) return known;
      try {
        const s = await PayloadSchema.compile(file);
        byFile.set(file, s);
        return s;
      } catch (e) {
        problems.push({ line, element, message: (e as Error).message });
        return null;
      }
    };
    const rules = async (r: PayloadRules, line: number): Promise<PayloadSchema[]> => {
      const out: PayloadSchema[] = [];
      if (r.inputSchema) {
        const s = await schemaFor(r.inputSchema, r.inputSchemaLine ?? line, 'InputSchemaURL');
        if (s) out.push(s);
      }
      if (r.outputSchema) {
        const s = await schemaFor(r.outputSchema, r.outputSchemaLine ?? line, 'OutputSchemaURL');
        if (s) out.push(s);
      }
      return out;
    };

    const versions = new Map<string, CompiledVersion>();
    for (const v of control.versions.values()) {
      const slas = new Map<string, Map<string, Sla>>();
      const slaLimits = new Map<Sla, BoundLimit>();
      for (const sla of v.slas) {
        if (sla.policy) slaLimits.set(sla, bindLimit(sla.policy, slaKey(v.uri, sla, sla.policy)));
        let byContext = slas.get(sla.consumerId);
        if (!byContext) slas.set(sla.consumerId, (byContext = new Map()));
        byContext.set(sla.contextId ?? '', sla);
      }
      const ep = v.sld.endpoint;
      versions.set(v.uri, {
        version: v,
        slas,
        slaLimits,
        sld: v.sld.policy ? bindLimit(v.sld.policy, sldKey(ep.urls, v.sld.policy)) : null,
        requestSchemas: await rules(ep.request, ep.line),
        responseSchemas: await rules(ep.response, ep.line),
      });
    }
    const compiled = [...byFile.values()];
    if (problems.length) {
      for (const s of compiled) s.dispose();
      throw new PolicyLoadError(control.file, problems);
    }
    return new ActivePolicy(control, versions, compiled);
  }

  version(uri: string): CompiledVersion | undefined {
    return this.versions.get(uri);
  }

  /** The idle time the file names for an application's sessions or connections, if any. */
  idleMs(kind: 'session' | 'connection', application: string): number | undefined {
    for (const v of this.control.versions.values()) {
      if (v.application !== application || !v.idle) continue;
      const ms = kind === 'session' ? v.idle.sessionMs : v.idle.connectionMs;
      if (ms !== undefined) return ms;
    }
    return undefined;
  }

  get uris(): string[] {
    return [...this.versions.keys()];
  }

  /**
   * The SLA that admits this consumer at this version: the one for its context if it sent
   * one and such an SLA exists, else the one without a context.
   */
  slaFor(v: CompiledVersion, consumerId: string, contextId: string | undefined): Sla | undefined {
    const byContext = v.slas.get(consumerId);
    if (!byContext) return undefined;
    return (contextId !== undefined ? byContext.get(contextId) : undefined) ?? byContext.get('');
  }

  acquire(): void {
    this.inFlight++;
  }

  release(): void {
    this.inFlight--;
    this.maybeDispose();
  }

  /** Called when a newer snapshot replaces this one. */
  retire(): void {
    this.retired = true;
    this.maybeDispose();
  }

  private maybeDispose(): void {
    if (!this.retired || this.inFlight > 0 || this.disposed) return;
    this.disposed = true;
    for (const s of this.schemas) s.dispose();
  }
}
