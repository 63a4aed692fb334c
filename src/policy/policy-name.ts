/**
 * Policy names of the SLA control file pattern, e.g. SLA_5MessagesPer10Seconds_Throttle, and
 * the Policy attributes that override or supply their parts. Pure functions: the loader adds
 * line and element to the problems returned here.
 */
import type { IntervalType, LimitAction, LimitPolicy, StoreFailureMode } from './model';

export type PolicyScope = LimitPolicy['scope'];

/** What a conventional name says. */
export interface PolicyNameParts {
  scope: PolicyScope;
  threshold: number;
  intervalMs: number;
  action: LimitAction;
}

/** Policy attribute values as written in the file (absent when not given). */
export interface PolicyAttributes {
  threshold?: string;
  intervalSeconds?: string;
  intervalType?: string;
  action?: string;
  maxDelayMs?: string;
  onStoreFailure?: string;
}

export type PolicyBuild = { ok: true; policy: LimitPolicy } | { ok: false; problems: string[] };

export const MAX_SHAPE_DELAY_MS = 60_000;
export const DEFAULT_SHAPE_MAX_DELAY_MS = 2000;
export const DEFAULT_INTERVAL_TYPE: IntervalType = 'moving';
export const DEFAULT_STORE_FAILURE: StoreFailureMode = 'closed';

export const POLICY_NAME_CONVENTION =
  '(SLA|SLD)_<n>MessagesPer[<m>](Seconds|Minutes|Hours)_(Throttle|Shape|Notify), e.g. SLA_5MessagesPer10Seconds_Throttle';

const NAME =
  /^(SLA|SLD)_(\d+)(?:Message|Messages)Per(\d*)(Second|Seconds|Minute|Minutes|Hour|Hours)_(Throttle|Shape|Notify)$/;

const UNIT_MS: Record<string, number> = {
  Second: 1000,
  Seconds: 1000,
  Minute: 60_000,
  Minutes: 60_000,
  Hour: 3_600_000,
  Hours: 3_600_000,
};

const ACTIONS: readonly LimitAction[] = ['throttle', 'shape', 'notify'];
const INTERVAL_TYPES: readonly IntervalType[] = ['fixed', 'moving'];
const STORE_FAILURE_MODES: readonly StoreFailureMode[] = ['open', 'closed'];

/**
 * The parts of a name that follows the convention, or null. Numbers are returned as written
 * (a zero threshold included) so that buildPolicy can say what is wrong with them.
 */
export function parsePolicyName(name: string): PolicyNameParts | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const [, prefix, n, every, unit, action] = m as unknown as [string, string, string, string, string, string];
  return {
    scope: prefix === 'SLA' ? 'sla' : 'sld',
    threshold: Number(n),
    intervalMs: (every === '' ? 1 : Number(every)) * UNIT_MS[unit]!,
    action: action.toLowerCase() as LimitAction,
  };
}

/** The scope a name claims by its SLA_ / SLD_ prefix, whether or not the rest follows the convention. */
export function nameScope(name: string): PolicyScope | null {
  if (name.startsWith('SLA_')) return 'sla';
  if (name.startsWith('SLD_')) return 'sld';
  return null;
}

/**
 * Turns a Policy element's name and attributes into a limit. `scope` is where the Policy sits
 * (inside an SLA or the SLD); all problems are returned together.
 */
export function buildPolicy(
  name: string,
  attrs: PolicyAttributes,
  scope: PolicyScope,
  line: number,
): PolicyBuild {
  const problems: string[] = [];
  const parts = parsePolicyName(name);

  const claimed = nameScope(name);
  if (claimed && claimed !== scope) {
    problems.push(
      `policy "${name}" is named for an ${claimed.toUpperCase()} but sits inside an ${scope.toUpperCase()}; ` +
        `rename it ${scope.toUpperCase()}_${name.slice(4)} (${scope === 'sla' ? 'an SLA policy limits one consumer' : 'an SLD policy limits all consumers together'})`,
    );
  }

  const threshold =
    attrs.threshold !== undefined ? positiveInt('threshold', attrs.threshold, problems) : undefined;
  const intervalMs =
    attrs.intervalSeconds !== undefined ? intervalFromSeconds(attrs.intervalSeconds, problems) : undefined;
  const action = attrs.action !== undefined ? oneOf('action', attrs.action, ACTIONS, problems) : undefined;
  const intervalType =
    attrs.intervalType !== undefined
      ? oneOf('intervalType', attrs.intervalType, INTERVAL_TYPES, problems)
      : DEFAULT_INTERVAL_TYPE;
  const onStoreFailure =
    attrs.onStoreFailure !== undefined
      ? oneOf('onStoreFailure', attrs.onStoreFailure, STORE_FAILURE_MODES, problems)
      : DEFAULT_STORE_FAILURE;
  const maxDelay =
    attrs.maxDelayMs !== undefined ? nonNegativeInt('maxDelayMs', attrs.maxDelayMs, problems) : undefined;

  if (!parts) {
    const missing = [
      attrs.threshold === undefined ? 'threshold' : null,
      attrs.intervalSeconds === undefined ? 'intervalSeconds' : null,
      attrs.action === undefined ? 'action' : null,
    ].filter((x): x is string => x !== null);
    if (missing.length) {
      problems.push(
        `policy name "${name}" does not follow the convention ${POLICY_NAME_CONVENTION}; ` +
          `rename it, or give the ${missing.join(', ')} attribute${missing.length > 1 ? 's' : ''}`,
      );
    }
  }

  const finalThreshold = threshold ?? parts?.threshold;
  const finalIntervalMs = intervalMs ?? parts?.intervalMs;
  const finalAction = action ?? parts?.action;
  // Only a name can yield these; attribute values were checked above.
  if (attrs.threshold === undefined && finalThreshold !== undefined && !isPositiveSafeInt(finalThreshold)) {
    problems.push(
      `policy name "${name}" gives a threshold of ${finalThreshold}; it must be a positive integer`,
    );
  }
  if (
    attrs.intervalSeconds === undefined &&
    finalIntervalMs !== undefined &&
    !isPositiveSafeInt(finalIntervalMs)
  ) {
    problems.push(`policy name "${name}" gives an interval of zero or out of range; it must be positive`);
  }

  let maxDelayMs = 0;
  if (maxDelay !== undefined && finalAction !== undefined && finalAction !== 'shape') {
    problems.push(`maxDelayMs applies only to action shape (this policy's action is ${finalAction})`);
  } else if (finalAction === 'shape') {
    maxDelayMs = maxDelay ?? DEFAULT_SHAPE_MAX_DELAY_MS;
    // Holding a request longer than this ties up the client's connection for little gain.
    if (maxDelayMs > MAX_SHAPE_DELAY_MS) {
      problems.push(`maxDelayMs ${maxDelayMs} is above the largest allowed, ${MAX_SHAPE_DELAY_MS}`);
    }
  }

  if (
    problems.length ||
    finalThreshold === undefined ||
    finalIntervalMs === undefined ||
    finalAction === undefined ||
    intervalType === undefined ||
    onStoreFailure === undefined
  ) {
    return { ok: false, problems: problems.length ? problems : [`policy "${name}" is incomplete`] };
  }
  return {
    ok: true,
    policy: {
      name,
      scope,
      threshold: finalThreshold,
      intervalMs: finalIntervalMs,
      intervalType,
      action: finalAction,
      maxDelayMs,
      onStoreFailure,
      line,
    },
  };
}

/** One line for summaries and logs, e.g. "5 per 10 s (moving), throttle". */
export function describePolicy(p: LimitPolicy): string {
  const shape = p.action === 'shape' ? ` up to ${p.maxDelayMs} ms` : '';
  const store = p.onStoreFailure === 'open' ? ', admits when the store is down' : '';
  return `${p.threshold} per ${describeInterval(p.intervalMs)} (${p.intervalType}), ${p.action}${shape}${store}`;
}

/** e.g. "10 s", "minute", "2 h": the largest whole unit. */
export function describeInterval(ms: number): string {
  const [n, unit, one] =
    ms % 3_600_000 === 0
      ? [ms / 3_600_000, 'h', 'hour']
      : ms % 60_000 === 0
        ? [ms / 60_000, 'min', 'minute']
        : [ms / 1000, 's', 'second'];
  return n === 1 ? one : `${n} ${unit}`;
}

function isPositiveSafeInt(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0;
}

function positiveInt(attr: string, raw: string, problems: string[]): number | undefined {
  const v = raw.trim();
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!isPositiveSafeInt(n)) {
    problems.push(`${attr}="${raw}" must be a positive integer`);
    return undefined;
  }
  return n;
}

function nonNegativeInt(attr: string, raw: string, problems: string[]): number | undefined {
  const v = raw.trim();
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) {
    problems.push(`${attr}="${raw}" must be a non-negative integer`);
    return undefined;
  }
  return n;
}

function intervalFromSeconds(raw: string, problems: string[]): number | undefined {
  const v = raw.trim();
  const seconds = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  // Counters work in whole milliseconds; anything that rounds to 0 ms is no interval at all.
  const ms = Math.round(seconds * 1000);
  if (!isPositiveSafeInt(ms)) {
    problems.push(`intervalSeconds="${raw}" must be a positive number of seconds (at least 0.001)`);
    return undefined;
  }
  return ms;
}

function oneOf<T extends string>(
  attr: string,
  raw: string,
  allowed: readonly T[],
  problems: string[],
): T | undefined {
  const v = raw.trim();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  problems.push(`${attr}="${raw}" must be one of ${allowed.join(', ')}`);
  return undefined;
}
